"""Training checkpoints: atomic writes, RNG states, and the stage-1 -> stage-2 encoder transfer.

A training checkpoint is the project's format (``maed.models.checkpoint``) plus the training state::

    {'format': 'maed', 'model': state_dict, 'config': resolved config dict,
     'optimizer': ..., 'scheduler': ..., 'epoch': next epoch index, 'step': global steps done,
     'best_metric': PA-MPJPE (mm) or None, 'best_epoch': ..., 'metrics': last validation or {},
     'rng': [per-rank RNG states], 'world_size': ..., 'seed': ...}

Files live in ``<run dir>/checkpoints/``: ``last.pt`` (every epoch end and every ``TRAIN.CKPT_FREQ``
steps), ``epoch_XXXX.pt`` at each validation epoch, ``best.pt`` when validation PA-MPJPE improves (its value
in mm then goes to ``<run dir>/best.txt``).
Each is written to a temporary file and renamed, so a crash never leaves a half-written checkpoint.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from maed.errors import CheckpointError
from maed.models.checkpoint import (
    PROJECT_FORMAT,
    extract_state_dict,
    key_block,
    load_state_dict_checked,
    make_checkpoint,
    read_checkpoint,
    strip_module_prefix,
)
from maed.train.distributed import barrier, gather_objects
from maed.train.optim import build_scheduler
from maed.train.stopping import TrainingError
from maed.train.streams import mix_seed
from maed.utils.io import atomic_path, atomic_torch_save, atomic_write_text

CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"
BEST = "best.pt"


def epoch_checkpoint_name(epoch: int) -> str:
    """``epoch_0010.pt`` for the checkpoint written after ``epoch`` epochs."""
    return f"epoch_{epoch:04d}.pt"


# ------------------------------------------------------------------------------------------ RNG
def rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """This process's RNG states (python, numpy, torch CPU, and the CUDA device's), as plain values and
    tensors (loadable with ``torch.load(weights_only=True)``)."""
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np.asarray(np_state["state"]["key"], dtype=np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    """Restore what :func:`rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if device is not None and device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------------ files
def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` atomically (temporary file, then rename)."""
    path = Path(path)
    atomic_torch_save(state, path)
    return path


def link_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Make ``dst`` the same file as ``src``: a hard link (no second copy on disk; safe because files are
    only ever replaced by rename, never rewritten in place), or a copy where links are not supported.
    Atomic: ``dst`` is the old file or the new one, never a partial one."""
    import shutil

    src, dst = Path(src), Path(dst)
    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def load_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read one of our training checkpoints (no code execution); a clear error for anything else."""
    ckpt = read_checkpoint(path)
    missing = [k for k in ("model", "optimizer", "scheduler", "step", "epoch", "config") if k not in ckpt]
    if ckpt.get("format") != PROJECT_FORMAT or missing:
        what = ", ".join(missing) or "format"
        raise CheckpointError(
            f"{path} is not a resumable training checkpoint of this project (missing {what}); "
            "--resume takes a run directory written by `maed train` (or its checkpoints/last.pt). To start from "
            "weights only, use --pretrained"
        )
    return ckpt


# ------------------------------------------------------------------------------------------ transfer
@dataclass
class TransferReport:
    """What ``--pretrained`` transferred into the encoder, and what it did not."""

    source: str
    loaded: list[str] = field(default_factory=list)  # model keys set from the checkpoint
    not_in_checkpoint: list[str] = field(default_factory=list)  # model encoder keys left at their init
    unused: list[str] = field(default_factory=list)  # checkpoint encoder keys this model has no use for
    mismatched: list[str] = field(default_factory=list)  # same name, other shape (left at init)
    dropped: int = 0  # decoder / body-model keys dropped on purpose
    checkpoint_encoder: str | None = None  # the checkpoint's MODEL.ENCODER settings, when stored

    @property
    def nothing_loaded(self) -> bool:
        return not self.loaded

    def summary(self, limit: int = 8) -> str:
        head = (
            f"--pretrained {self.source}: loaded {len(self.loaded)} encoder tensors; "
            f"{len(self.not_in_checkpoint)} encoder tensors keep their initialisation; "
            f"{self.dropped} decoder/body-model tensors dropped on purpose (the decoder is re-initialised)"
        )
        if self.checkpoint_encoder:
            head += f"\n  checkpoint encoder: {self.checkpoint_encoder}"
        return (
            head
            + key_block("not in the checkpoint (kept at initialisation)", self.not_in_checkpoint, limit)
            + key_block("in the checkpoint but not in this model (unused)", self.unused, limit)
            + key_block("shape mismatch (kept at initialisation)", self.mismatched, limit)
        )


def _is_dropped(name: str) -> bool:
    # the original dropped every key containing 'smpl' or 'decoder' (ORIGINAL.md §3)
    return "decoder" in name or "smpl" in name


def load_pretrained_encoder(model: nn.Module, path: str | os.PathLike) -> TransferReport:
    """Initialise ``model``'s encoder from a stage-1 checkpoint (the authors' format with ``module.``, or
    ours), dropping decoder and body-model keys as the original did, and report exactly what matched.

    Only tensors whose name and shape both match are copied. Nothing else is touched; a checkpoint that
    matches nothing (the original's ``cnn`` stage 1 into an ``ste`` stage 2) loads nothing, and the
    report says so (``nothing_loaded``).
    """
    ckpt = read_checkpoint(path)
    state, _ = extract_state_dict(ckpt)
    report = TransferReport(source=str(path))
    cfg = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else None
    if cfg and isinstance(cfg.get("MODEL"), dict) and isinstance(cfg["MODEL"].get("ENCODER"), dict):
        enc = cfg["MODEL"]["ENCODER"]
        report.checkpoint_encoder = ", ".join(
            f"{k}={enc[k]}" for k in ("BACKBONE", "NUM_BLOCKS", "NUM_HEADS", "SPA_TEMP_MODE") if k in enc
        )
    candidates = {}
    for key, value in state.items():
        name = strip_module_prefix(key)
        if _is_dropped(name):
            report.dropped += 1
        else:
            candidates[name] = value
    own = model.state_dict()
    encoder_keys = [k for k in own if not _is_dropped(k)]
    to_load = {}
    for k in encoder_keys:
        if k not in candidates:
            report.not_in_checkpoint.append(k)
        elif candidates[k].shape != own[k].shape:
            report.mismatched.append(f"{k}: model {tuple(own[k].shape)} vs checkpoint {tuple(candidates[k].shape)}")
        else:
            to_load[k] = candidates[k]
    report.unused = [k for k in candidates if k not in own]
    if to_load:
        # every key not in to_load is listed in the report above, so strict=False hides nothing here
        model.load_state_dict(to_load, strict=False)
    report.loaded = sorted(to_load)
    return report


# ------------------------------------------------------------------------------------------ trainer state
def _all_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


class CheckpointedTraining:
    """Mixed into the :class:`~maed.train.engine.Trainer`: its state as a checkpoint (:meth:`state_dict`),
    restored from one (:meth:`load_state_dict`), and written into ``<run dir>/checkpoints`` at step
    boundaries (:meth:`save`: ``last.pt``, ``epoch_XXXX.pt``, ``best.pt`` and ``best.txt``).

    It reads and restores the trainer's ``model``, ``optimizer``, ``scheduler``, ``settings``, ``env``,
    ``config``, ``seed``, ``epoch``, ``step``, ``iters_per_epoch``, ``best_metric``, ``best_epoch``,
    ``last_metrics``, ``run_dir``, ``ckpt_dir``, ``log`` and ``_saved_step``."""

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint of the current step boundary (collective: every rank must call it)."""
        rngs = gather_objects(rng_state(self.env.device), self.env)
        return make_checkpoint(
            self.model,
            self.config,
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            epoch=self.epoch,
            step=self.step,
            iters_per_epoch=self.iters_per_epoch,
            best_metric=self.best_metric,
            best_epoch=self.best_epoch,
            metrics=self.last_metrics,
            performance=self.best_metric,  # the authors' key, for tools that read it
            seed=self.seed,
            world_size=self.env.world_size,
            rng=rngs,
        )

    def load_state_dict(self, state: dict[str, Any]) -> list[str]:
        """Restore a checkpoint from :meth:`state_dict`; returns warnings about what cannot be bit-exact."""
        notes = []
        load_state_dict_checked(self.model, state["model"], source="resume checkpoint")
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.best_metric, self.best_epoch = state.get("best_metric"), state.get("best_epoch")
        self.last_metrics = state.get("metrics") or {}
        if state.get("iters_per_epoch") not in (None, self.iters_per_epoch):
            notes.append(
                f"iterations per epoch changed ({state['iters_per_epoch']} -> {self.iters_per_epoch}: different "
                "data or batch sizes); epochs are counted from the step"
            )
            self.epoch = self.step // self.iters_per_epoch
        self.scheduler = build_scheduler(self.optimizer, self.settings, epochs_done=self.epoch)
        self._saved_step = self.step  # the checkpoint just loaded holds this step
        rngs = state.get("rng") or []
        if state.get("world_size") == self.env.world_size and len(rngs) == self.env.world_size:
            set_rng_state(rngs[self.env.rank], self.env.device)
        else:
            notes.append(
                f"world size changed ({state.get('world_size')} -> {self.env.world_size}): the data order and "
                "random states cannot continue exactly; reseeding"
            )
            seed_everything(mix_seed(self.seed, 7, self.env.rank, self.step))
        return notes

    def save(self, *, validated: bool = False, improved: bool = False) -> Path | None:
        """Write last.pt (and epoch_XXXX.pt / best.pt) on rank 0. Collective. Refuses non-finite weights,
        so a saved checkpoint is always a good one."""
        if not _all_finite(self.model):
            raise TrainingError(
                f"non-finite weights at step {self.step}; not saving. The last good checkpoint is kept in "
                f"{self.ckpt_dir}. Lower TRAIN.OPTIM.LR or set TRAIN.GRAD_CLIP"
            )
        state = self.state_dict()
        path = None
        if self.env.is_main:
            last = self.ckpt_dir / LAST
            if validated:
                path = save_checkpoint(state, self.ckpt_dir / epoch_checkpoint_name(self.epoch))
                link_checkpoint(path, last)
            else:
                path = save_checkpoint(state, last)
            if improved:
                link_checkpoint(path, self.ckpt_dir / BEST)
                atomic_write_text(self.run_dir / "best.txt", f"{self.best_metric}\n")
            self.log.event("checkpoint", step=self.step, epoch=self.epoch, path=str(path), best=improved)
        self._saved_step = self.step
        barrier(self.env)
        return path
