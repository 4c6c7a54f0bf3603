"""Process-group setup for ``torchrun``, Slurm (``srun``) and single-process runs; DDP wrapping.

Launchers:

- ``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; they
  are used as they are.
- ``srun`` (one task per GPU) sets ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID`` and the node
  list; :func:`slurm_to_torch_env` maps them onto torch's variables. The master address is the first
  host of the step's node list (``SLURM_STEP_NODELIST``, else ``SLURM_JOB_NODELIST`` /
  ``SLURM_NODELIST``), the port ``MASTER_PORT`` when set, else derived from the job id, so every task
  of a job agrees without talking to each other.
- anything else runs as a single process (no process group).

The backend is NCCL for CUDA devices and gloo for CPU (so CI can run real two-process training).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from maed.errors import ConfigError
from maed.utils.device import resolve_device

#: MASTER_PORT derived from a Slurm job id falls in [PORT_BASE, PORT_BASE + PORT_SPAN)
PORT_BASE = 15000
PORT_SPAN = 20000


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: global rank, world size, rank on its node, device, backend."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None  # None: no process group

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


# ------------------------------------------------------------------------------------------ Slurm
def _expand_first(spec: str) -> str:
    """First host of one node-list entry: ``gpu[03-05,9]`` -> ``gpu03``; ``a[1-2]-b[7]`` -> ``a1-b7``."""
    out = []
    for text, bracket in re.findall(r"([^\[]*)(?:\[([^\]]*)\])?", spec):
        out.append(text)
        if bracket:
            first = bracket.split(",")[0]
            out.append(first.split("-")[0])  # keeps zero padding: "03-05" -> "03"
    return "".join(out)


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list (``node[01-04,07],other`` -> ``node01``), without ``scontrol``."""
    nodelist = nodelist.strip()
    if not nodelist:
        raise ConfigError("Slurm node list is empty; cannot find the master address")
    depth, end = 0, len(nodelist)
    for i, ch in enumerate(nodelist):
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            end = i
            break
    return _expand_first(nodelist[:end])


def slurm_to_torch_env(environ: Mapping[str, str]) -> dict[str, str]:
    """torch's launcher variables derived from a Slurm task's environment; {} when not under ``srun``
    with several tasks, or when ``torchrun`` already set ``RANK`` (torchrun inside a Slurm job wins).

    Returns ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` (when known), ``MASTER_ADDR``
    (unless set) and ``MASTER_PORT`` (unless set; 15000 + job id mod 20000).
    """
    if "RANK" in environ or "SLURM_PROCID" not in environ:
        return {}
    ntasks = environ.get("SLURM_NTASKS") or environ.get("SLURM_NPROCS")
    if not ntasks or int(ntasks) <= 1:
        return {}
    out = {
        "RANK": str(int(environ["SLURM_PROCID"])),
        "WORLD_SIZE": str(int(ntasks)),
        "LOCAL_RANK": str(int(environ.get("SLURM_LOCALID", 0))),
    }
    per_node = environ.get("SLURM_NTASKS_PER_NODE") or environ.get("SLURM_STEP_TASKS_PER_NODE")
    if per_node and re.fullmatch(r"\d+", per_node):
        out["LOCAL_WORLD_SIZE"] = per_node
    if "MASTER_ADDR" not in environ:
        nodelist = (
            environ.get("SLURM_STEP_NODELIST") or environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST")
        )
        if not nodelist:
            raise ConfigError(
                "Slurm launch: SLURM_PROCID is set but no node list (SLURM_STEP_NODELIST / SLURM_JOB_NODELIST); "
                "set MASTER_ADDR to the first node's host name"
            )
        out["MASTER_ADDR"] = first_host(nodelist)
    if "MASTER_PORT" not in environ:
        job = environ.get("SLURM_JOB_ID") or environ.get("SLURM_JOBID") or "0"
        out["MASTER_PORT"] = str(PORT_BASE + int(re.sub(r"\D", "", job) or 0) % PORT_SPAN)
    return out


# ------------------------------------------------------------------------------------------ setup
def init_distributed(
    device: str | torch.device | None = None, environ: Mapping[str, str] | None = None, timeout_s: float = 1800.0
) -> DistEnv:
    """Join the process group the launcher describes (torchrun or Slurm); single process otherwise.

    ``device``: ``cpu`` | ``cuda`` | ``cuda:N`` (checked by :func:`maed.utils.device.resolve_device`; under
    a launcher the local GPU is ``LOCAL_RANK``). ``environ`` defaults to
    ``os.environ``, which is only read: torchrun's rendezvous is used through ``env://``; a Slurm task
    connects to ``tcp://MASTER_ADDR:MASTER_PORT`` derived by :func:`slurm_to_torch_env`.
    """
    import datetime

    import torch.distributed as dist

    environ = dict(os.environ if environ is None else environ)
    slurm = slurm_to_torch_env(environ)
    launcher = {**environ, **slurm}
    dev = resolve_device(device)
    world_size = int(launcher.get("WORLD_SIZE", 1))
    rank = int(launcher.get("RANK", 0))
    local_rank = int(launcher.get("LOCAL_RANK", 0))
    if dev.type == "cuda":
        if dev.index is None or world_size > 1:
            if local_rank >= torch.cuda.device_count():
                raise ConfigError(
                    f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA devices are visible; "
                    "start one process per GPU"
                )
            dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if world_size <= 1:
        return DistEnv(rank=0, world_size=1, local_rank=local_rank, device=dev, backend=None)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {}
        if backend == "nccl":
            kwargs["device_id"] = dev
        if slurm:
            host = launcher["MASTER_ADDR"]
            host = f"[{host}]" if ":" in host else host  # IPv6
            init_method = f"tcp://{host}:{launcher['MASTER_PORT']}"
        else:
            init_method = "env://"
        dist.init_process_group(
            backend=backend,
            init_method=init_method,
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout_s),
            **kwargs,
        )
    return DistEnv(rank=rank, world_size=world_size, local_rank=local_rank, device=dev, backend=backend)


def cleanup(env: DistEnv) -> None:
    import torch.distributed as dist

    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def non_persistent_buffers(model: nn.Module) -> list[str]:
    """Names of buffers left out of ``state_dict`` (constants such as the body model's tensors)."""
    return [
        f"{prefix}.{name}" if prefix else name
        for prefix, module in model.named_modules()
        for name in module._non_persistent_buffers_set
        if module._buffers.get(name) is not None
    ]


def wrap_model(model: nn.Module, env: DistEnv) -> nn.Module:
    """DDP-wrap ``model`` (already on ``env.device``) when distributed.

    BatchNorm statistics: on CUDA, BatchNorm becomes SyncBatchNorm (the original's setting) and buffers
    are not broadcast at each forward (``broadcast_buffers=False``, as the original). torch has no CPU
    SyncBatchNorm, so on the CPU rank 0's running statistics are broadcast at each forward instead, which
    keeps the ranks' statistics consistent (and a resumed run identical to an uninterrupted one).
    Non-persistent buffers (the body model's constant tensors) are never synchronised.
    """
    if not env.distributed:
        return model
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    bn = has_batch_norm(model)
    if env.device.type == "cuda" and bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    sync_each_forward = bn and env.device.type != "cuda"
    device_ids = [env.device.index] if env.device.type == "cuda" else None
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, non_persistent_buffers(model))
    # newer torch renamed the per-forward buffer sync (weights and buffers still sync at construction)
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters:
        sync = {"forward_sync_buffers": sync_each_forward}
    else:
        sync = {"broadcast_buffers": sync_each_forward}
    return DistributedDataParallel(model, device_ids=device_ids, **sync)


# ------------------------------------------------------------------------------------------ helpers
def barrier(env: DistEnv) -> None:
    import torch.distributed as dist

    if env.distributed:
        dist.barrier()


def all_reduce_sum(values: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Sum a tensor over ranks (a copy; the input is left alone)."""
    import torch.distributed as dist

    out = values.detach().clone()
    if env.distributed:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def broadcast_object(obj: Any, env: DistEnv, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (a picklable Python object)."""
    import torch.distributed as dist

    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj: Any, env: DistEnv) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    import torch.distributed as dist

    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out
