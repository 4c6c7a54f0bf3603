"""Real two-process training on the CPU (gloo): ``torchrun --standalone --nproc_per_node=2``, and the same
through ``scripts/slurm_train.sh`` with a stand-in ``srun`` that starts the tasks with Slurm's variables.

Run A trains 2 epochs of 2 steps uninterrupted (torchrun). Run B is launched through the Slurm script,
stopped after 1 step, then resumed with torchrun: it must end with exactly A's weights and validation.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 240


def _env(**extra) -> dict:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE", "LOCAL_", "MASTER_"))
    }
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
    return env


def _run(cmd: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, f"{cmd[:6]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "maed",
        "train",
        "--no-progress",
        *args,
    ]
    return _run(cmd, _env(), cwd)


def _events(run_dir: Path, kind: str) -> list[dict]:
    lines = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [e for e in lines if e["event"] == kind]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


FAKE_SRUN = textwrap.dedent(
    """\
    #!/bin/bash
    # stand-in for srun on one machine: starts --ntasks-per-node tasks with Slurm's task variables
    n=1
    while [[ "$1" == --* ]]; do
        case "$1" in --ntasks-per-node=*) n="${1#*=}" ;; esac
        shift
    done
    pids=()
    for ((i = 0; i < n; i++)); do
        SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_NTASKS=$n SLURM_STEP_NODELIST=localhost "$@" &
        pids+=($!)
    done
    rc=0
    for p in "${pids[@]}"; do wait "$p" || rc=$?; done
    exit $rc
    """
)


@pytest.fixture(scope="module")
def run_a(tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp_a") / "results"
    _torchrun(["--config", "stage2", *tiny(OUTPUT_DIR=str(out), EXP_NAME="ddp")], cwd=out.parent)
    runs = list(out.iterdir())
    assert len(runs) == 1, runs  # one run directory, written by rank 0 only
    return runs[0]


@pytest.mark.slow
def test_two_ranks_stay_identical_and_the_loss_goes_down(run_a):
    assert run_a.name.endswith("_ddp")
    end = _events(run_a, "end")[0]
    assert end["replicas_in_sync"] and len(end["param_digests"]) == 2
    assert end["param_digests"][0] == end["param_digests"][1]
    losses = [e["loss"] for e in _events(run_a, "train")]
    assert len(losses) == 4 and losses[-1] < 0.9 * losses[0]  # the same clips every step: it must fit them
    assert all(e["frames_per_s"] > 0 for e in _events(run_a, "train"))
    start = _events(run_a, "start")[0]
    assert start["world_size"] == 2 and start["iters_per_epoch"] == 2
    assert sorted(p.name for p in (run_a / "checkpoints").iterdir()) == [
        "best.pt",
        "epoch_0001.pt",
        "epoch_0002.pt",
        "last.pt",
    ]
    ckpt = torch.load(run_a / "checkpoints" / "last.pt", weights_only=True)
    assert len(ckpt["rng"]) == 2 and ckpt["world_size"] == 2 and ckpt["step"] == 4


@pytest.mark.slow
def test_slurm_launch_interrupted_and_resumed_matches_the_uninterrupted_run(run_a, tiny, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(FAKE_SRUN)
    (bin_dir / "srun").chmod(0o755)
    run_b = tmp_path / "run_b"
    job_id = str(random.randint(1, 10**6))  # MASTER_PORT is derived from the job id
    env = _env(
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        PYTHON=sys.executable,
        SLURM_JOB_ID=job_id,
        SLURM_JOB_NUM_NODES="1",
        SLURM_NTASKS_PER_NODE="2",
        SLURM_JOB_NODELIST="localhost",
    )
    script = ROOT / "scripts" / "slurm_train.sh"
    cmd = ["bash", str(script), "1", "2", "stage2", "--out", str(run_b), "--max-steps", "1", "--no-progress", *tiny()]
    _run(cmd, env, tmp_path)
    stop = _events(run_b, "stop")[0]
    assert (stop["reason"], stop["step"]) == ("max_steps", 1)
    assert _events(run_b, "start")[0]["world_size"] == 2  # the Slurm variables made a 2-process group
    assert torch.load(run_b / "checkpoints" / "last.pt", weights_only=True)["step"] == 1

    _torchrun(["--resume", str(run_b)], cwd=tmp_path)
    a, b = _weights(run_a), _weights(run_b)
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []  # bit for bit, BatchNorm statistics included
    val_a = [{k: v for k, v in e.items() if k != "time"} for e in _events(run_a, "val")]
    val_b = [{k: v for k, v in e.items() if k != "time"} for e in _events(run_b, "val")]
    assert val_a == val_b and len(val_a) == 2
