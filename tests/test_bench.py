"""`maed bench` end to end through the CLI, on a tiny configuration."""

import json

from maed.cli import main


def test_bench_writes_results(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(
        ["bench", "--seqlen", "2", "--iters", "1", "--warmup", "0", "--out", str(out), "MODEL.ENCODER.NUM_BLOCKS=1"]
    )
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["output_shapes"]["verts"] == [1, 2, 6890, 3] and res["output_shapes"]["theta"] == [1, 2, 85]
    impls = {r["impl"] for r in res["results"]}
    assert impls == {"maed", "reference (eager attention)"}
    assert all(r["frames_per_s"] > 0 for r in res["results"])
    assert "frames/s" in capsys.readouterr().out


def test_bench_rejects_unknown_dtype(tmp_path, capsys):
    rc = main(
        [
            "bench",
            "--seqlen",
            "1",
            "--iters",
            "1",
            "--warmup",
            "0",
            "--dtypes",
            "fp8",
            "--out",
            str(tmp_path / "b.json"),
            "MODEL.ENCODER.NUM_BLOCKS=1",
        ]
    )
    assert rc == 2 and "fp8" in capsys.readouterr().err
