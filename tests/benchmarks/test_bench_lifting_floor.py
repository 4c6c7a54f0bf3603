"""``benchmarks/bench_lifting_floor.py``: its alignment and reference numbers, and a tiny run end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import torch

from tests.benchmarks import load_script


def _bench():
    return load_script("bench_lifting_floor")


def _turn(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64)


def test_pa_mpjpe_ignores_rotation_scale_and_shift_but_not_articulation():
    bench = _bench()
    g = torch.Generator().manual_seed(0)
    skeleton = torch.randn(3, 14, 3, generator=g, dtype=torch.float64) * 0.3
    moved = 1.7 * skeleton @ _turn(0.9).T + torch.tensor([0.2, -1.0, 3.0], dtype=torch.float64)
    assert bench.pa_mpjpe(moved, skeleton) < 1e-6
    bent = moved.clone()
    bent[:, 5] += torch.tensor([0.0, 0.17, 0.0], dtype=torch.float64)  # one joint 10 cm off at the truth's scale
    error = bench.pa_mpjpe(bent, skeleton)
    assert 1.0 < error < 100  # an error, in mm, smaller than the joint's own (alignment spreads it)
    # a mirror image is no rotation: it stays an error
    assert bench.pa_mpjpe(skeleton * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64), skeleton) > 10


def test_procrustes_mean_of_turned_copies_is_the_skeleton():
    bench = _bench()
    skeleton = torch.randn(14, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.3
    copies = torch.stack([(0.8 + 0.1 * i) * skeleton @ _turn(0.5 * i).T for i in range(6)])
    mean = bench.procrustes_mean(copies)
    assert bench.pa_mpjpe(mean[None], skeleton[None]) < 1e-6


def test_residual_correlation_reads_persistence_along_tracks():
    bench = _bench()
    rng = np.random.default_rng(0)
    track = np.repeat(np.arange(4), 30)
    offset = rng.normal(size=(4, 1, 33, 2))  # a constant error per track and landmark
    persistent = np.broadcast_to(offset, (4, 30, 33, 2)).reshape(120, 33, 2)

    class Pool:  # the LandmarkMap fields the function reads
        residual_track = track
        residual_seen = np.ones((120, 33), np.float32)

    Pool.residuals = persistent
    stats = bench.residual_correlation(Pool)
    assert stats["lag_1"] > 0.99 and stats["track_constant_share"] > 0.99
    Pool.residuals = rng.normal(size=(120, 33, 2))  # independent from frame to frame
    stats = bench.residual_correlation(Pool)
    assert abs(stats["lag_1"]) < 0.1 and stats["track_constant_share"] < 0.2


def test_a_tiny_run_reports_every_number(tmp_path, capsys):
    bench = _bench()
    out = tmp_path / "floor.json"
    tiny = ["KEYPOINTS.BANK_SIZE=6", "KEYPOINTS.BANK_FRAMES=32", "KEYPOINTS.VAL_SIZE=8"]
    args = ["--db-dir", str(tmp_path / "db"), "--steps", "6", "--pool", "24", "--val", "4", "--width", "32"]
    summary = bench.main([*args, "--evals", "2", "--json", str(out), *tiny])
    printed = capsys.readouterr().out
    assert json.loads(out.read_text()) == summary
    assert [e["step"] for e in summary["evals"]] == [3, 6]
    assert all(e["frame"] > 0 and e["window"] > 0 for e in summary["evals"])
    assert summary["procrustes_mean_pose"] > 0
    assert 0 < summary["residual_correlation"]["lag_1"] <= 1  # the shipped pool: BlazePose's errors persist
    assert "Procrustes mean pose" in printed and "step 6" in printed
