"""Launcher environments: Slurm -> torch variables, node lists, single-process setup, DDP wrapping rules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from maed.errors import ConfigError
from maed.train.distributed import (
    DistEnv,
    first_host,
    init_distributed,
    non_persistent_buffers,
    slurm_to_torch_env,
    wrap_model,
)


@pytest.mark.parametrize(
    "nodelist, host",
    [
        ("node17", "node17"),
        ("gpu[03-05,9]", "gpu03"),
        ("gpu[003-005],cpu1", "gpu003"),
        ("a,b,c", "a"),
        ("rack[2-3]-node[07,08]", "rack2-node07"),
        ("nid[00010-00012,00020],login[1-2]", "nid00010"),
        ("host-1.example.org", "host-1.example.org"),
    ],
)
def test_first_host(nodelist, host):
    assert first_host(nodelist) == host


def _slurm(**extra) -> dict:
    env = {
        "SLURM_PROCID": "5",
        "SLURM_NTASKS": "8",
        "SLURM_LOCALID": "1",
        "SLURM_NTASKS_PER_NODE": "4",
        "SLURM_JOB_NODELIST": "gpu[12-13]",
        "SLURM_JOB_ID": "123456",
    }
    env.update(extra)
    return env


def test_slurm_variables_map_to_torch():
    out = slurm_to_torch_env(_slurm())
    assert out == {
        "RANK": "5",
        "WORLD_SIZE": "8",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "4",
        "MASTER_ADDR": "gpu12",
        "MASTER_PORT": str(15000 + 123456 % 20000),
    }
    # every task of a job derives the same port, another job another one
    assert slurm_to_torch_env(_slurm(SLURM_PROCID="0"))["MASTER_PORT"] == out["MASTER_PORT"]
    assert slurm_to_torch_env(_slurm(SLURM_JOB_ID="123457"))["MASTER_PORT"] != out["MASTER_PORT"]


def test_slurm_respects_given_master_and_step_nodelist():
    out = slurm_to_torch_env(_slurm(MASTER_ADDR="10.0.0.1", MASTER_PORT="29500", SLURM_STEP_NODELIST="x[4-5]"))
    assert "MASTER_ADDR" not in out and "MASTER_PORT" not in out
    assert slurm_to_torch_env(_slurm(SLURM_STEP_NODELIST="x[4-5]"))["MASTER_ADDR"] == "x4"
    # SLURM_NPROCS is the older name of SLURM_NTASKS
    env = _slurm()
    env["SLURM_NPROCS"] = env.pop("SLURM_NTASKS")
    assert slurm_to_torch_env(env)["WORLD_SIZE"] == "8"


def test_torchrun_inside_slurm_and_single_task_are_left_alone():
    assert slurm_to_torch_env(_slurm(RANK="0", WORLD_SIZE="2")) == {}
    assert slurm_to_torch_env(_slurm(SLURM_NTASKS="1")) == {}
    assert slurm_to_torch_env({}) == {}


def test_slurm_without_nodelist_is_a_clear_error():
    env = _slurm()
    del env["SLURM_JOB_NODELIST"]
    with pytest.raises(ConfigError, match="node list"):
        slurm_to_torch_env(env)


def test_single_process_init_has_no_process_group():
    environ: dict[str, str] = {}
    env = init_distributed("cpu", environ=environ)
    assert env == DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), backend=None)
    assert not env.distributed and env.is_main
    model = nn.Linear(2, 2)
    assert wrap_model(model, env) is model


def test_non_persistent_buffers_are_listed_for_ddp_to_ignore():
    m = nn.Module()
    m.body = nn.Module()
    m.body.register_buffer("faces", torch.zeros(3), persistent=False)
    m.bn = nn.BatchNorm1d(2)
    assert non_persistent_buffers(m) == ["body.faces"]
