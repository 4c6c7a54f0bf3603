"""``benchmarks/bench_loader.py``: reusing ``--data`` across settings must not mix their generated files."""

from __future__ import annotations

import cv2

from tests.benchmarks import load_script


def _bench():
    return load_script("bench_loader")


def test_reused_data_dir_keeps_settings_apart(tmp_path, capsys):
    bench = _bench()
    common = ["--data", str(tmp_path), "--frames", "8", "--clips", "1", "--warmup", "1", "--cache-size", "32"]
    first = bench.main([*common, "--width", "96", "--height", "64"])
    second = bench.main([*common, "--width", "128", "--height", "80", "--cache-size", "48"])
    capsys.readouterr()
    assert first["setup"]["frame_size"] == [96, 64] and second["setup"]["frame_size"] == [128, 80]
    for w, h in ((96, 64), (128, 80)):  # each run read frames of its own size
        frames = sorted((tmp_path / f"{w}x{h}_8f" / "images").rglob("*.jpg"))
        assert len(frames) == 8 and cv2.imread(str(frames[0])).shape[:2] == (h, w)
    assert second["rows"]["crop cache"]["clips"] == 1
