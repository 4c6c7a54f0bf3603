"""Validation during training: frame-weighted metrics across ranks, and ranks whose shard is empty."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from maed.errors import DataError
from maed.train.distributed import DistEnv
from maed.train.validation import METRIC_KEYS, Validator

REPO = Path(__file__).resolve().parents[2]
T = 4  # frames per window (two 2-frame clips)


class PixelModel(nn.Module):
    """Predictions that depend on the input frames: every joint at the frame's first pixels."""

    def forward(self, images, J_regressor=None):
        N, T = images.shape[:2]
        v = images[:, :, :, 0, 0]  # (N, T, 3)
        return {
            "theta": v[..., :1].expand(N, T, 85),
            "verts": v[:, :, None, :].expand(N, T, 5, 3),
            "kp_3d": v[:, :, None, :].expand(N, T, 17, 3) * torch.linspace(0.5, 1.5, 17)[:, None],
        }


def make_window(seed: int) -> dict:
    """One 3DPW-style evaluation batch of one window (the 14 LSP joints 25..38 confident)."""
    g = torch.Generator().manual_seed(seed)
    kp_3d = torch.zeros(1, T, 49, 4)
    kp_3d[..., 25:39, :3] = torch.randn(1, T, 14, 3, generator=g)
    kp_3d[..., 25:39, 3] = 1.0
    return {
        "images": torch.randn(1, T, 3, 2, 2, generator=g),
        "valid": torch.ones(1, T, dtype=torch.bool),
        "kp_3d": kp_3d,
        "theta": torch.zeros(1, T, 85),
        "bbox": torch.ones(1, T, 4),
        "paths": [(f"img{t}.jpg",) for t in range(T)],
        "instance_id": [(f"seq{seed}/{t}",) for t in range(T)],
    }


def make_validator(loader, env: DistEnv) -> Validator:
    return Validator(loader=loader, dataset="3dpw", env=env, seqlen=2, progress=False)


def test_no_window_on_any_rank_is_a_data_error():
    with pytest.raises(DataError, match="no evaluation windows"):
        make_validator([], DistEnv())(PixelModel())


SCRIPT = textwrap.dedent(
    """\
    import json, pathlib, sys
    sys.path.insert(0, {repo!r})
    from tests.train.test_validation import PixelModel, make_validator, make_window
    from maed.train.distributed import cleanup, init_distributed

    env = init_distributed("cpu")
    loader = [make_window(1), make_window(2)] if env.rank == 0 else []  # more ranks than windows
    metrics = make_validator(loader, env)(PixelModel())
    pathlib.Path(sys.argv[1], f"rank{{env.rank}}.json").write_text(json.dumps(metrics))
    cleanup(env)
    """
)


@pytest.mark.slow
def test_rank_with_an_empty_shard_joins_the_reduction(tmp_path):
    script = tmp_path / "validate.py"
    script.write_text(SCRIPT.format(repo=str(REPO)))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(script),
        str(tmp_path),
    ]
    env = {**_clean_env(), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert len(results) == 2 and results[0] == results[1]  # every rank sees the same metrics

    expected = make_validator([make_window(1), make_window(2)], DistEnv())(PixelModel())
    assert results[0]["num_frames"] == expected["num_frames"] == 2 * T
    for k in METRIC_KEYS:
        if expected[k] is None:
            assert results[0][k] is None
        else:
            np.testing.assert_allclose(results[0][k], expected[k], rtol=1e-12)
    assert expected["mpjpe"] > 0


def _clean_env() -> dict:
    import os

    return {
        k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE", "LOCAL_", "MASTER_"))
    }
