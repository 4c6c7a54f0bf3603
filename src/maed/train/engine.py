"""The training loop (ORIGINAL.md §6): stage 1 (images) and stage 2 (2D-video + 3D-video + image batches).

Each step draws one batch from every active stream, runs one forward over ``concat(2D clips, 3D clips)``
and one over the images (T = 1) inside a single module call (so DDP sees one forward per backward),
weights the two losses by their frame counts, and takes one optimizer step. Adam with coupled L2
weight decay and the original's per-epoch ``LambdaLR`` (warm-up, then x0.1 at each milestone).

A run is a directory ``OUTPUT_DIR/<YYYY-mm-dd_HH-MM-SS>_<EXP_NAME>/`` (or ``--out``) written by rank 0:
``config.yaml`` (the resolved config, seed included), ``train_log.txt``, ``log.jsonl``, ``tb/`` and
``checkpoints/`` (see ``maed.train.checkpointing``). ``resume`` continues a run from its ``last.pt`` in
the same data order with the same RNG states, so an interrupted run ends with the same weights as an
uninterrupted one (same hardware and world size).

    from maed.train import train
    run_dir = train("stage2", overrides=["TRAIN.BATCH_SIZE_3D=2"], pretrained="stage1/checkpoints/last.pt")
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import signal
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maed.config import Config, OptimConfig, TrainConfig, load_config
from maed.errors import AssetError, ConfigError, MaedError, OutputError
from maed.train import checkpointing as ckpt_io
from maed.train.distributed import (
    DistEnv,
    all_reduce_sum,
    barrier,
    broadcast_object,
    cleanup,
    gather_objects,
    init_distributed,
    wrap_model,
)
from maed.train.losses import LOSS_NAMES, MAEDLoss
from maed.train.run_log import RunLog
from maed.train.streams import BatchStream, mix_seed
from maed.train.validation import SELECTION_METRIC
from maed.utils.device import resolve_device
from maed.utils.io import atomic_write_text

AMP_MODES = ("none", "bf16")
OPTIMIZERS = ("adam", "sgd")
CONFIG_FILE = "config.yaml"


class TrainingError(MaedError, RuntimeError):
    """Training cannot go on (a non-finite loss or weights); the last good checkpoint is kept."""


# ------------------------------------------------------------------------------------------ settings
@dataclass
class TrainSettings:
    """The loop's options, translated once from ``TRAIN.*`` and ``SAVE_FREQ`` (see :meth:`from_config`);
    the defaults are the config schema's, so ``TrainSettings()`` equals ``TrainSettings.from_config(Config())``."""

    end_epoch: int = TrainConfig.END_EPOCH
    iters_per_epoch: int = TrainConfig.NUM_ITERS_PER_EPOCH  # <= 0: the 3D stream's length, else 2D's, else images'
    img_use_freq: int = TrainConfig.IMG_USE_FREQ  # an image batch every n-th step
    save_freq: int = Config.SAVE_FREQ  # epochs between validations (and epoch_XXXX.pt checkpoints)
    ckpt_freq: int = TrainConfig.CKPT_FREQ  # steps between mid-epoch last.pt checkpoints; 0: epoch ends only
    log_freq: int = TrainConfig.LOG_FREQ  # steps between log.jsonl / TensorBoard records
    grad_clip: float = TrainConfig.GRAD_CLIP  # max global gradient norm; 0 disables
    amp: str = TrainConfig.AMP  # 'none' | 'bf16' (CUDA autocast)
    optim: str = OptimConfig.OPTIM.lower()  # 'adam' | 'sgd'
    lr: float = OptimConfig.LR
    weight_decay: float = OptimConfig.WD
    momentum: float = OptimConfig.MOMENTUM
    warmup_epochs: int = OptimConfig.WARMUP_EPOCH
    warmup_factor: float = OptimConfig.WARMUP_FACTOR
    milestones: list[int] = field(default_factory=lambda: list(OptimConfig().MILESTONES))
    start_epoch: int = TrainConfig.START_EPOCH

    @classmethod
    def from_config(cls, cfg: Config) -> TrainSettings:
        t, o = cfg.TRAIN, cfg.TRAIN.OPTIM
        amp = str(t.AMP).lower()
        if amp not in AMP_MODES:
            raise ConfigError(f"TRAIN.AMP={t.AMP!r}: expected one of {', '.join(AMP_MODES)}")
        optim = str(o.OPTIM).lower()
        if optim not in OPTIMIZERS:
            raise ConfigError(f"TRAIN.OPTIM.OPTIM={o.OPTIM!r}: expected Adam or SGD")
        if t.IMG_USE_FREQ < 1:
            raise ConfigError(f"TRAIN.IMG_USE_FREQ={t.IMG_USE_FREQ}: expected an integer >= 1")
        if cfg.SAVE_FREQ < 1:
            raise ConfigError(f"SAVE_FREQ={cfg.SAVE_FREQ}: expected an integer >= 1 (epochs between validations)")
        return cls(
            end_epoch=t.END_EPOCH,
            iters_per_epoch=t.NUM_ITERS_PER_EPOCH,
            img_use_freq=t.IMG_USE_FREQ,
            save_freq=cfg.SAVE_FREQ,
            ckpt_freq=t.CKPT_FREQ,
            log_freq=max(t.LOG_FREQ, 1),
            grad_clip=t.GRAD_CLIP,
            amp=amp,
            optim=optim,
            lr=o.LR,
            weight_decay=o.WD,
            momentum=o.MOMENTUM,
            warmup_epochs=o.WARMUP_EPOCH,
            warmup_factor=o.WARMUP_FACTOR,
            milestones=list(o.MILESTONES),
            start_epoch=t.START_EPOCH,
        )


class LRFactor:
    """The original's per-epoch LR factor: ``(e + 1) * warmup_factor`` while ``e < warmup_epochs``, then
    ``0.1 ** (number of milestones <= e)``."""

    def __init__(self, warmup_epochs: int, warmup_factor: float, milestones: list[int]):
        self.warmup_epochs = int(warmup_epochs)
        self.warmup_factor = float(warmup_factor)
        self.milestones = sorted(int(m) for m in milestones)

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return (epoch + 1) * self.warmup_factor
        return 0.1 ** sum(m <= epoch for m in self.milestones)


def build_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    """Adam with coupled L2 (``weight_decay`` added to the gradient, as the original) on every trainable
    parameter, or SGD with momentum. One parameter group (the original's one-group-per-parameter
    layout gives the same updates, only slower)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if settings.optim == "sgd":
        return torch.optim.SGD(
            params, lr=settings.lr, momentum=settings.momentum
        )  # the original passed no decay to SGD
    return torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, settings: TrainSettings) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda=LRFactor(settings.warmup_epochs, settings.warmup_factor, settings.milestones)
    )


# ------------------------------------------------------------------------------------------ model step
class _TrainForward(nn.Module):
    """One module call for both forwards of a step (video clips, then images as T = 1 clips)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, video: torch.Tensor | None, images: torch.Tensor | None):
        out_vid = dict(self.model(video).items()) if video is not None else None
        out_img = dict(self.model(images).items()) if images is not None else None
        return out_vid, out_img


def _to_device(batch: dict | None, device: torch.device) -> dict | None:
    if batch is None:
        return None
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def param_digest(model: nn.Module) -> str:
    """SHA-256 of every parameter's bytes, in order (equal on all ranks when replicas are in sync)."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _all_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


# ------------------------------------------------------------------------------------------ trainer
class Trainer:
    """Runs epochs of training steps with validation, checkpoints and logging.

    Args:
        model: the bare MAED (on ``env.device``); it is DDP-wrapped here when distributed.
        criterion: the :class:`MAEDLoss`.
        streams: ``{'2d': BatchStream, '3d': ..., 'img': ...}`` (absent or None streams are skipped).
        env: process placement. settings: :class:`TrainSettings`.
        run_dir: the run directory (same path on every rank; only rank 0 writes).
        config: the resolved config dict stored in checkpoints. seed: the run's seed.
        validator: callable(model) -> metrics dict, or None. log: the run's :class:`RunLog`.
        progress: rank-0 progress bar. max_steps: stop with a checkpoint once this many steps are done.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        criterion: MAEDLoss,
        streams: dict[str, BatchStream | None],
        env: DistEnv,
        settings: TrainSettings,
        run_dir: str | os.PathLike,
        config: dict,
        seed: int,
        validator: Callable[[nn.Module], dict] | None = None,
        log: RunLog | None = None,
        progress: bool = True,
        max_steps: int | None = None,
    ):
        self.model = model
        self.criterion = criterion
        self.streams = {k: v for k, v in streams.items() if v is not None}
        if not self.streams:
            raise ConfigError(
                "no training data: TRAIN.DATASETS_2D, DATASETS_3D and DATASETS_IMG (with their batch "
                "sizes) are all empty"
            )
        self.env = env
        self.settings = settings
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / ckpt_io.CHECKPOINT_DIR
        self.config = config
        self.seed = int(seed)
        self.validator = validator
        self.log = log or RunLog(None, rank=env.rank)
        self.progress = progress
        self.max_steps = max_steps
        self.ddp_model = wrap_model(_TrainForward(model), env)
        self.optimizer = build_optimizer(model, settings)
        self.scheduler = build_scheduler(self.optimizer, settings)
        self.iters_per_epoch = self._iters_per_epoch()
        # an image batch every img_use_freq steps beside videos; every step when images are all there is
        self.img_every = settings.img_use_freq if len(self.streams) > 1 else 1
        self.epoch = 0  # epochs completed
        self.step = 0  # steps completed
        self.best_metric: float | None = None
        self.best_epoch: int | None = None
        self.last_metrics: dict = {}
        if settings.start_epoch > 0:
            self._jump_to_epoch(settings.start_epoch)
        self._stop_signal: int | None = None

    # ---------------------------------------------------------------------------------- helpers
    def _iters_per_epoch(self) -> int:
        if self.settings.iters_per_epoch > 0:
            return self.settings.iters_per_epoch
        name = next(k for k in ("3d", "2d", "img") if k in self.streams)
        return self.streams[name].batches_per_pass

    def _jump_to_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.step = epoch * self.iters_per_epoch
        for _ in range(epoch):
            self.scheduler.step()

    def _stream_position(self, name: str, step: int) -> int:
        """Batches stream ``name`` has delivered after ``step`` global steps."""
        if name != "img" or self.img_every == 1:
            return step
        f, n = self.img_every, self.iters_per_epoch
        return (step // n) * (n // f) + (step % n) // f

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.settings.amp == "bf16" and self.env.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ---------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The checkpoint of the current step boundary (collective: every rank must call it)."""
        from maed.models.checkpoint import make_checkpoint

        rngs = gather_objects(ckpt_io.rng_state(self.env.device), self.env)
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
        from maed.models.checkpoint import load_state_dict_checked

        notes = []
        load_state_dict_checked(self.model, state["model"], source="resume checkpoint")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self._apply_optimizer_settings()
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.best_metric, self.best_epoch = state.get("best_metric"), state.get("best_epoch")
        self.last_metrics = state.get("metrics") or {}
        if state.get("iters_per_epoch") not in (None, self.iters_per_epoch):
            notes.append(
                f"iterations per epoch changed ({state['iters_per_epoch']} -> {self.iters_per_epoch}: different "
                "data or batch sizes); epochs are counted from the step"
            )
            self.epoch = self.step // self.iters_per_epoch
        rngs = state.get("rng") or []
        if state.get("world_size") == self.env.world_size and len(rngs) == self.env.world_size:
            ckpt_io.set_rng_state(rngs[self.env.rank], self.env.device)
        else:
            notes.append(
                f"world size changed ({state.get('world_size')} -> {self.env.world_size}): the data order and "
                "random states cannot continue exactly; reseeding"
            )
            ckpt_io.seed_everything(mix_seed(self.seed, 7, self.env.rank, self.step))
        return notes

    def _apply_optimizer_settings(self) -> None:
        """After loading a checkpoint: the config's LR, schedule and weight decay win over the stored ones
        (a resume may lower the LR, say); unchanged settings reproduce the stored values exactly."""
        factor = LRFactor(self.settings.warmup_epochs, self.settings.warmup_factor, self.settings.milestones)
        self.scheduler.lr_lambdas = [factor] * len(self.optimizer.param_groups)
        self.scheduler.base_lrs = [self.settings.lr] * len(self.optimizer.param_groups)
        for group in self.optimizer.param_groups:
            group["initial_lr"] = self.settings.lr
            group["lr"] = self.settings.lr * factor(self.scheduler.last_epoch)
            if self.settings.optim == "adam":
                group["weight_decay"] = self.settings.weight_decay
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]

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
            last = self.ckpt_dir / ckpt_io.LAST
            if validated:
                path = ckpt_io.save_checkpoint(state, self.ckpt_dir / ckpt_io.epoch_checkpoint_name(self.epoch))
                ckpt_io.link_checkpoint(path, last)
            else:
                path = ckpt_io.save_checkpoint(state, last)
            if improved:
                ckpt_io.link_checkpoint(path, self.ckpt_dir / ckpt_io.BEST)
                atomic_write_text(self.run_dir / "best.txt", f"{self.best_metric}\n")
            self.log.event("checkpoint", step=self.step, epoch=self.epoch, path=str(path), best=improved)
        barrier(self.env)
        return path

    # ---------------------------------------------------------------------------------- one step
    def train_step(self, batch_2d: dict | None, batch_3d: dict | None, batch_img: dict | None) -> dict[str, float]:
        """Forward, loss, backward and update on one set of batches. Returns the loss terms averaged over
        ranks, ``loss``, ``w_vid`` and the ``frames`` of all ranks. A non-finite loss on any rank raises
        :class:`TrainingError` on every rank before the weights are touched."""
        dev = self.env.device
        batch_2d, batch_3d, batch_img = (_to_device(b, dev) for b in (batch_2d, batch_3d, batch_img))
        clips = [b["images"] for b in (batch_2d, batch_3d) if b is not None]
        video = (clips[0] if len(clips) == 1 else torch.cat(clips, dim=0)) if clips else None
        images = batch_img["images"].unsqueeze(1) if batch_img is not None else None  # (N, 1, 3, H, W)
        with self.autocast():
            out_vid, out_img = self.ddp_model(video, images)
        loss_vid = self.criterion.video(out_vid, batch_2d, batch_3d) if video is not None else None
        loss_img = self.criterion.image(out_img, batch_img) if images is not None else None
        n_vid = video.shape[0] * video.shape[1] if video is not None else 0
        n_img = images.shape[0] if images is not None else 0
        result, w_vid = MAEDLoss.combine(loss_vid, loss_img, video_frames=n_vid, image_frames=n_img)

        zero = result.total.new_zeros(())
        terms = [result.terms.get(k, zero).detach().float() for k in LOSS_NAMES]
        local = torch.stack([result.total.detach().float(), *terms])
        flags = torch.stack(
            [
                (~torch.isfinite(local)).any().float(),
                local.new_tensor(float(self._stop_signal is not None)),
                local.new_tensor(float(n_vid + n_img)),
            ]
        )
        reduced = (
            all_reduce_sum(torch.cat([torch.nan_to_num(local, nan=0.0, posinf=0.0, neginf=0.0), flags]), self.env)
            .cpu()
            .tolist()
        )
        values = [v / self.env.world_size for v in reduced[: len(local)]]
        nonfinite, stop, frames = reduced[len(local) :]
        if nonfinite > 0:
            local_vals = {k: float(v) for k, v in zip(("loss", *LOSS_NAMES), local.cpu().tolist())}
            raise TrainingError(
                f"non-finite loss at step {self.step + 1} (epoch {self.epoch + 1}) on {int(nonfinite)} rank(s); "
                f"this rank's terms: {local_vals}. Training stopped before the update; the last good checkpoint "
                f"is {self.ckpt_dir / ckpt_io.LAST} (continue with `maed train --resume {self.run_dir}`). "
                "Lower TRAIN.OPTIM.LR, set TRAIN.GRAD_CLIP, or check the data"
            )
        self.optimizer.zero_grad(set_to_none=True)
        result.total.backward()
        if self.settings.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip)
        self.optimizer.step()
        stats = {"loss": values[0], "w_vid": w_vid, "frames": frames, "stop": stop}
        stats.update({k: v for k, v in zip(LOSS_NAMES, values[1:]) if k in result.terms})
        return stats

    # ---------------------------------------------------------------------------------- epochs
    def _signal_handler(self, signum, frame) -> None:
        self._stop_signal = signum

    @contextlib.contextmanager
    def _stop_on_signals(self):
        """SIGTERM / SIGUSR1 (Slurm preemption) finish the current step, save last.pt and stop."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = {s: signal.signal(s, self._signal_handler) for s in (signal.SIGTERM, signal.SIGUSR1)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def fit(self) -> dict[str, Any]:
        """Train until ``end_epoch`` (or ``max_steps`` / a stop signal). Returns a summary dict."""
        from tqdm import tqdm

        n = self.iters_per_epoch
        iters = {k: s.iterate(start=self._stream_position(k, self.step)) for k, s in self.streams.items()}
        streams = ", ".join(
            f"{k} (batch {s.batch_size}, {s.batches_per_pass} per pass)" for k, s in self.streams.items()
        )
        self.log.info(
            f"training from epoch {self.epoch + 1} step {self.step} to epoch {self.settings.end_epoch}: {n} steps "
            f"per epoch; streams {streams}; world size {self.env.world_size}, device {self.env.device}, "
            f"amp {self.settings.amp}"
        )
        stopped = None
        self.model.train()
        with self._stop_on_signals():
            while self.epoch < self.settings.end_epoch and stopped is None:
                epoch = self.epoch
                i0 = self.step - epoch * n
                meters: dict[str, list[float]] = defaultdict(list)
                bar = tqdm(
                    total=n,
                    initial=i0,
                    desc=f"epoch {epoch + 1}/{self.settings.end_epoch}",
                    dynamic_ncols=True,
                    disable=not (self.progress and self.env.is_main),
                    leave=False,
                )
                t_log, frames_log = time.perf_counter(), 0.0
                for i in range(i0, n):
                    if stopped is None and self.max_steps is not None and self.step >= self.max_steps:
                        stopped = "max_steps"
                    if stopped:
                        break
                    t0 = time.perf_counter()
                    batch_2d = next(iters["2d"]) if "2d" in iters else None
                    batch_3d = next(iters["3d"]) if "3d" in iters else None
                    batch_img = next(iters["img"]) if "img" in iters and (i + 1) % self.img_every == 0 else None
                    stats = self.train_step(batch_2d, batch_3d, batch_img)
                    self.step += 1
                    dt = time.perf_counter() - t0
                    for k, v in stats.items():
                        meters[k].append(v)
                    frames_log += stats["frames"]
                    bar.update(1)
                    terms = " ".join(f"{k[5:]} {stats[k]:.3g}" for k in LOSS_NAMES if k in stats)
                    bar.set_postfix_str(
                        f"loss {stats['loss']:.4g} ({terms}) {stats['frames'] / max(dt, 1e-9):.1f} frames/s"
                    )
                    if self.step % self.settings.log_freq == 0 or i == n - 1:
                        now = time.perf_counter()
                        self._log_train(meters, frames_log / max(now - t_log, 1e-9))
                        meters.clear()
                        t_log, frames_log = now, 0.0
                    if stats["stop"] > 0:
                        stopped = "signal"
                    elif self.settings.ckpt_freq > 0 and self.step % self.settings.ckpt_freq == 0 and i < n - 1:
                        self.save()
                bar.close()
                if self.step - epoch * n < n:  # stopped inside the epoch
                    self.save()
                    break
                self._end_epoch(epoch)
                if self.max_steps is not None and self.step >= self.max_steps and self.epoch < self.settings.end_epoch:
                    stopped = "max_steps"
        if stopped:
            self.log.info(
                f"stopped ({stopped}) after step {self.step}; continue with `maed train --resume {self.run_dir}`"
            )
            self.log.event("stop", reason=stopped, step=self.step, epoch=self.epoch)
        digests = gather_objects(param_digest(self.model), self.env)
        in_sync = len(set(digests)) == 1
        if not in_sync:
            self.log.warning(f"model replicas differ between ranks at the end of training: {digests}")
        summary = {
            "step": self.step,
            "epoch": self.epoch,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "stopped": stopped,
            "replicas_in_sync": in_sync,
            "param_digests": digests,
        }
        self.log.event("end", **summary)
        return summary

    def _log_train(self, meters: dict[str, list[float]], fps: float) -> None:
        avg = {k: sum(v) / len(v) for k, v in meters.items() if k not in ("frames", "stop") and v}
        record = {"step": self.step, "epoch": self.epoch + 1, "lr": self.lr, **avg, "frames_per_s": fps}
        self.log.event("train", **record)
        self.log.scalars("train_loss/", {k: v for k, v in avg.items() if k.startswith("loss")}, self.step)
        self.log.scalars("", {"frames_per_s": fps}, self.step)

    def _end_epoch(self, epoch: int) -> None:
        validated = improved = False
        if (epoch + 1) % self.settings.save_freq == 0:
            validated = True
            if self.validator is not None:
                metrics = self.validator(self.model)
                self.last_metrics = metrics
                value = metrics.get(SELECTION_METRIC)
                # a NaN (degenerate frames) must neither become best nor block every later improvement
                improved = (
                    value is not None
                    and math.isfinite(value)
                    and (self.best_metric is None or value < self.best_metric)
                )
                if improved:
                    self.best_metric, self.best_epoch = float(value), epoch + 1
                shown = ", ".join(f"{k} {v:.2f}" for k, v in metrics.items() if isinstance(v, float))
                self.log.info(
                    f"epoch {epoch + 1} validation: {shown} ({metrics.get('num_frames')} frames)"
                    + (" - best so far" if improved else "")
                )
                self.log.event("val", epoch=epoch + 1, step=self.step, **metrics, best=improved)
                self.log.scalars("error/", {k: v for k, v in metrics.items() if k != "num_frames"}, epoch + 1)
        self.log.scalars("", {"lr": self.lr}, epoch + 1)
        self.scheduler.step()
        self.epoch = epoch + 1
        self.save(validated=validated, improved=improved)


# ------------------------------------------------------------------------------------------ run setup
def _timestamp() -> str:
    return time.strftime("%Y-%m-%d_%H-%M-%S")


def prepare_run_dir(
    *, output_dir: str | os.PathLike, exp_name: str, out: str | os.PathLike | None, config_text: str
) -> Path:
    """Create the run directory (rank 0): ``out`` exactly, or ``output_dir/<timestamp>_<exp_name>``.

    An existing, non-empty ``out`` is never reused: the same config means the run exists (use
    ``--resume``), another config means another run; both raise :class:`ConfigError`.
    """
    if out is not None:
        path = Path(out)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            existing = path / CONFIG_FILE
            if existing.is_file() and existing.read_text() == config_text:
                raise OutputError(f"--out {path} already holds this run; continue it with `maed train --resume {path}`")
            raise OutputError(
                f"--out {path} already holds a different run (or other files); nothing was overwritten. Choose "
                "another --out, or continue that run with --resume"
            )
    else:
        base = Path(output_dir) / f"{_timestamp()}_{exp_name}"
        path, k = base, 1
        while path.exists():
            k += 1
            path = base.with_name(f"{base.name}_{k}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run_dir_of(resume: str | os.PathLike) -> tuple[Path, Path]:
    """(run dir, checkpoint) for ``--resume`` given a run directory or a checkpoint file in it."""
    p = Path(resume)
    if p.is_file():
        run = p.parent.parent if p.parent.name == ckpt_io.CHECKPOINT_DIR else p.parent
        return run, p
    ckpt = p / ckpt_io.CHECKPOINT_DIR / ckpt_io.LAST
    if not ckpt.is_file():
        raise AssetError(
            f"--resume {p}: no {ckpt_io.CHECKPOINT_DIR}/{ckpt_io.LAST} there (expected a run directory written by "
            "`maed train`, which saves last.pt at every epoch end and every TRAIN.CKPT_FREQ steps)"
        )
    return p, ckpt


def _config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _config_diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out


def _build_streams(cfg: Config, env: DistEnv, seed: int) -> dict[str, BatchStream | None]:
    from maed.data.loaders import TrainDataSettings, build_train_datasets
    from maed.paths import resolve_paths

    data = TrainDataSettings.from_config(cfg)
    paths = resolve_paths(cfg.PATHS)
    datasets = build_train_datasets(data, db_dir=paths["db_dir"], dataset_roots=paths["dataset_roots"])
    return {
        name: BatchStream(
            dataset,
            name=name,
            batch_size=data.batch_size(name),
            seed=seed,
            rank=env.rank,
            world_size=env.world_size,
            num_workers=data.num_workers,
            pin_memory=env.device.type == "cuda",
        )
        if dataset is not None
        else None
        for name, dataset in datasets.by_stream().items()
    }


def train(
    config: str | os.PathLike | dict | Config | None = None,
    *,
    overrides: list[str] | None = None,
    pretrained: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    device: str | None = None,
    progress: bool = True,
    max_steps: int | None = None,
) -> Path:
    """Train MAED as the config describes; returns the run directory.

    Args:
        config: YAML path, preset name (``stage1``, ``stage2``, ...), dict or Config. Not with ``resume``.
        overrides: ``KEY=VALUE`` strings applied last (with ``resume``: applied to the run's config).
        pretrained: stage-1 checkpoint whose encoder initialises this run (default ``TRAIN.PRETRAINED``);
            the decoder is re-initialised, as the original.
        resume: a run directory (or a checkpoint in it) to continue (default ``TRAIN.RESUME``).
        out: the run directory to create (default ``OUTPUT_DIR/<timestamp>_<EXP_NAME>``); must not hold
            another run.
        device: ``cpu`` | ``cuda`` | ``cuda:N`` (an error without CUDA). Default: ``DEVICE``, the CPU when
            CUDA is absent (``maed.utils.device``).
        progress: rank-0 progress bars.
        max_steps: stop (with a checkpoint) once this many steps are done in total.

    Runs under ``torchrun`` / ``srun`` as one process per device; the process group is set up and torn
    down here.
    """
    cfg = load_config(config, overrides) if config is not None else None
    if resume is None and cfg is not None and cfg.TRAIN.RESUME:
        resume = cfg.TRAIN.RESUME
    elif resume is not None and cfg is not None:
        raise ConfigError("--resume continues a run with its own config.yaml; do not pass --config too")
    resume_ckpt = run_dir = None
    if resume is not None:
        if pretrained is not None:
            raise ConfigError("--pretrained starts a new run; a resumed run takes its weights from its checkpoint")
        if out is not None:
            raise ConfigError(f"--out creates a new run; --resume {resume} continues in that run's own directory")
        run_dir, ckpt_path = _run_dir_of(resume)
        resume_ckpt = ckpt_io.load_training_checkpoint(ckpt_path)
        cfg = load_config(resume_ckpt["config"], overrides)
        cfg.TRAIN.RESUME = ""
    elif cfg is None:
        raise ConfigError("maed train: give --config (a YAML file or preset: stage1, stage2, ...) or --resume RUN_DIR")
    env = init_distributed(resolve_device(device if device is not None else cfg.DEVICE, explicit=device is not None))
    try:
        return _train(
            cfg,
            env,
            pretrained=pretrained,
            resume_ckpt=resume_ckpt,
            run_dir=run_dir,
            out=out,
            progress=progress,
            max_steps=max_steps,
        )
    finally:
        cleanup(env)


def _config_text(cfg: Config) -> str:
    import yaml

    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def _train(cfg: Config, env: DistEnv, *, pretrained, resume_ckpt, run_dir, out, progress, max_steps) -> Path:
    from maed.models import build_model
    from maed.paths import resolve_paths
    from maed.train.validation import Validator

    settings = TrainSettings.from_config(cfg)
    criterion = MAEDLoss.from_config(cfg.LOSS)
    # ---- seed: the config's, or one drawn by rank 0 and recorded in config.yaml
    if resume_ckpt is not None:
        seed = int(resume_ckpt.get("seed", cfg.SEED_VALUE))
    elif cfg.SEED_VALUE >= 0:
        seed = cfg.SEED_VALUE
    else:
        seed = broadcast_object(int.from_bytes(os.urandom(4), "little") % 2**31, env)
    cfg.SEED_VALUE = seed
    torch.backends.cudnn.benchmark = cfg.CUDNN.BENCHMARK
    torch.backends.cudnn.deterministic = cfg.CUDNN.DETERMINISTIC
    torch.backends.cudnn.enabled = cfg.CUDNN.ENABLED
    if resume_ckpt is None:
        pretrained = pretrained if pretrained is not None else (cfg.TRAIN.PRETRAINED or None)
        if pretrained is not None and not Path(pretrained).is_file():
            raise AssetError(
                f"--pretrained {pretrained}: file not found (a stage-1 checkpoint, e.g. "
                "results/<stage-1 run>/checkpoints/last.pt)"
            )
        cfg.TRAIN.PRETRAINED = str(pretrained) if pretrained else ""
    else:
        cfg.MODEL.ENCODER.INIT_WEIGHTS = ""  # every weight comes from the checkpoint

    # ---- everything that can fail on user input fails before a run directory exists:
    # databases, body-model files, the pretrained checkpoint, the validation set
    streams = _build_streams(cfg, env, seed)
    ckpt_io.seed_everything(seed)  # the same initialisation on every rank (DDP also broadcasts rank 0's)
    model = build_model(cfg, body_model_dir=resolve_paths(cfg.PATHS)["body_model_dir"])
    transfer = ckpt_io.load_pretrained_encoder(model, pretrained) if resume_ckpt is None and pretrained else None
    model.to(env.device)
    validator = Validator.from_config(cfg, model, env, progress=progress)

    # ---- run directory: rank 0 creates it, every rank learns its path
    if resume_ckpt is None:
        if out is not None:
            cfg.LOGDIR = str(Path(out))
        created = None
        if env.is_main:
            created = str(
                prepare_run_dir(
                    output_dir=cfg.OUTPUT_DIR, exp_name=cfg.EXP_NAME, out=out, config_text=_config_text(cfg)
                )
            )
        run_dir = Path(broadcast_object(created, env))
    cfg.LOGDIR = str(run_dir)
    log = RunLog(run_dir, rank=env.rank)
    try:
        changed = _config_diff(resume_ckpt["config"], cfg.to_dict()) if resume_ckpt is not None else []
        if env.is_main:
            if resume_ckpt is None:
                cfg.dump(run_dir / CONFIG_FILE)  # config.yaml stays the config the run was created with
            elif changed:
                log.info(
                    "resuming with changed settings (recorded in log.jsonl and the next checkpoints):\n  "
                    + "\n  ".join(changed)
                )
            log.text("config", f"<pre>{_config_text(cfg)}</pre>")
        if settings.amp == "bf16" and env.device.type != "cuda":
            log.warning("TRAIN.AMP=bf16 applies to CUDA only; training in float32 on the CPU")
        if transfer is not None:
            _log_transfer(transfer, cfg, log)
        trainer = Trainer(
            model=model,
            criterion=criterion,
            streams=streams,
            env=env,
            settings=settings,
            run_dir=run_dir,
            config=cfg.to_dict(),
            seed=seed,
            validator=validator,
            log=log,
            progress=progress,
            max_steps=max_steps,
        )
        if resume_ckpt is not None:
            for note in trainer.load_state_dict(resume_ckpt):
                log.warning(f"resume: {note}")
            resume_ckpt.clear()  # drop the checkpoint's own references (the weights were copied into the model)
            log.info(f"resumed {run_dir} at epoch {trainer.epoch}, step {trainer.step}")
            log.event("resume", step=trainer.step, epoch=trainer.epoch, world_size=env.world_size, changed=changed)
        else:
            ckpt_io.seed_everything(mix_seed(seed, 7, env.rank))  # per-rank training randomness (dropout)
            n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
            log.info(f"run directory {run_dir}; seed {seed}; {n_params:,} trainable parameters; {criterion}")
            log.event(
                "start",
                run_dir=str(run_dir),
                seed=seed,
                world_size=env.world_size,
                device=str(env.device),
                params=n_params,
                iters_per_epoch=trainer.iters_per_epoch,
            )
        trainer.fit()
        return run_dir
    except MaedError as e:
        log.error(f"error: {e}")
        if isinstance(e, TrainingError):  # log.jsonl records why the run stopped, as its docstring promises
            log.event("nan", message=str(e))
        raise
    finally:
        log.close()


def _log_transfer(report: ckpt_io.TransferReport, cfg: Config, log: RunLog) -> None:
    pretrained = report.source
    if report.nothing_loaded:
        enc = cfg.MODEL.ENCODER
        log.warning(
            "=" * 100 + f"\n--pretrained TRANSFERRED NOTHING: no encoder tensor of {pretrained} matches this model's "
            f"encoder ({enc.BACKBONE}, {enc.SPA_TEMP_MODE}, {enc.NUM_BLOCKS} blocks). The original's cnn stage 1 -> "
            "ste stage 2 did this silently; train stage 1 with the stage-2 encoder (preset stage1) for a real "
            "transfer.\n" + report.summary() + "\n" + "=" * 100
        )
    else:
        log.info(report.summary())
    log.event(
        "pretrained",
        path=str(pretrained),
        loaded=len(report.loaded),
        not_in_checkpoint=len(report.not_in_checkpoint),
        unused=len(report.unused),
        mismatched=len(report.mismatched),
        dropped=report.dropped,
        kept_at_init=report.not_in_checkpoint[:50],
        nothing_loaded=report.nothing_loaded,
    )
