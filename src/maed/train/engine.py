"""The training loop (ORIGINAL.md §6): stage 1 (images) and stage 2 (2D-video + 3D-video + image batches).

Each step draws one batch from every active stream, runs one forward over ``concat(2D clips, 3D clips)``
and one over the images (T = 1) inside a single module call (so DDP sees one forward per backward),
weights the two losses by their frame counts, and takes one optimizer step. Adam with coupled L2
weight decay and the original's per-epoch ``LambdaLR`` (warm-up, then x0.1 at each milestone).

:class:`Trainer` owns the loop and the validation at epoch ends; its checkpoint state is
``maed.train.checkpointing.CheckpointedTraining`` (resuming from ``last.pt`` continues in the same data
order with the same RNG states, so an interrupted run ends with the same weights as an uninterrupted one on
the same hardware and world size), its stop signals ``maed.train.stopping``, its settings and optimiser
``maed.train.optim``. Setting up a run (plan, data, model, run directory) is ``maed.train.run``.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maed.errors import ConfigError
from maed.train import checkpointing as ckpt_io
from maed.train.checkpointing import CheckpointedTraining
from maed.train.distributed import (
    DistEnv,
    all_reduce_sum,
    gather_objects,
    wrap_model,
)
from maed.train.losses import LOSS_NAMES, MAEDLoss
from maed.train.optim import TrainSettings, build_optimizer, build_scheduler
from maed.train.run_log import RunLog
from maed.train.stopping import StopSignals, TrainingError, resume_command
from maed.train.streams import BatchStream
from maed.train.validation import SELECTION_METRIC
from maed.utils.device import bf16_autocast_supported


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


# ------------------------------------------------------------------------------------------ trainer
class Trainer(CheckpointedTraining, StopSignals):
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

    Training stops for one of three reasons, all decided in :meth:`stop_reason`: every epoch is done,
    ``max_steps`` steps are done, or a rank received SIGTERM / SIGUSR1 (agreed on by all ranks).
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
        self._stop_signal = None  # this rank's SIGTERM / SIGUSR1 (StopSignals)
        self._stop_requested = False  # some rank's signal, agreed on by all ranks at the last step
        self._saved_step: int | None = None

    # ---------------------------------------------------------------------------------- helpers
    def _iters_per_epoch(self) -> int:
        if self.settings.iters_per_epoch > 0:
            return self.settings.iters_per_epoch
        name = next(k for k in ("3d", "2d", "img") if k in self.streams)
        return self.streams[name].batches_per_pass

    def _jump_to_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.step = epoch * self.iters_per_epoch
        self.scheduler = build_scheduler(self.optimizer, self.settings, epochs_done=epoch)

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
        """bf16 autocast of the network for ``TRAIN.AMP=bf16`` on CUDA and on CPUs with bf16 matrix
        instructions (elsewhere float32); the body model, projection and losses stay float32 either way."""
        if self.settings.amp == "bf16" and bf16_autocast_supported(self.env.device):
            return torch.autocast(self.env.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ---------------------------------------------------------------------------------- one step
    def train_step(self, batch_2d: dict | None, batch_3d: dict | None, batch_img: dict | None) -> dict[str, float]:
        """Forward, loss, backward and update on one set of batches. Returns the loss terms averaged over
        ranks, ``loss``, ``w_vid`` and the ``frames`` of all ranks. A non-finite loss on any rank raises
        :class:`TrainingError` on every rank before the weights are touched."""
        dev = self.env.device
        batch_2d, batch_3d, batch_img = (_to_device(b, dev) for b in (batch_2d, batch_3d, batch_img))
        key = getattr(self.model.encoder, "input_kind", "images")  # "keypoints" for the keypoint encoder
        clips = [b[key] for b in (batch_2d, batch_3d) if b is not None]
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
                f"is {self.ckpt_dir / ckpt_io.LAST} (continue with `{resume_command(self.run_dir)}`). "
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
    def stop_reason(self) -> str | None:
        """The one place that decides whether training goes on: None to take another step, else why it
        stops: ``end`` (every epoch done), ``max_steps`` or ``signal``. The same on every rank."""
        if self.epoch >= self.settings.end_epoch:
            return "end"
        if self._stop_requested:
            return "signal"
        if self.max_steps is not None and self.step >= self.max_steps:
            return "max_steps"
        return None

    def fit(self) -> dict[str, Any]:
        """Train until :meth:`stop_reason` says stop. Returns a summary dict; ``stopped`` is the reason when
        training stopped before its last epoch (resumable from ``last.pt``), else None."""
        iters = {k: s.iterate(start=self._stream_position(k, self.step)) for k, s in self.streams.items()}
        streams = ", ".join(
            f"{k} (batch {s.batch_size}, {s.batches_per_pass} per pass)" for k, s in self.streams.items()
        )
        self.log.info(
            f"training from epoch {self.epoch + 1} step {self.step} to epoch {self.settings.end_epoch}: "
            f"{self.iters_per_epoch} steps per epoch; streams {streams}; world size {self.env.world_size}, "
            f"device {self.env.device}, amp {self.settings.amp}"
        )
        self.model.train()
        with self._stop_on_signals():  # also around the last save: a second SIGTERM must not cut it short
            while self.stop_reason() is None:
                if self._run_epoch(iters):
                    self._end_epoch(self.epoch)
            reason = self.stop_reason()
            stopped = None if reason == "end" else reason
            if stopped and self._saved_step != self.step:  # stopped inside an epoch: keep what it did
                self.save()
        if stopped:
            self.log.info(f"stopped ({stopped}) after step {self.step}; continue with `{resume_command(self.run_dir)}`")
            self.log.event("stop", reason=stopped, step=self.step, epoch=self.epoch, signal=self.stop_signal_name)
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

    def _run_epoch(self, iters: dict[str, Any]) -> bool:
        """Steps of the current epoch until it ends (True) or :meth:`stop_reason` stops it early (False)."""
        from tqdm import tqdm

        n, epoch = self.iters_per_epoch, self.epoch
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
        try:
            for i in range(i0, n):
                if self.stop_reason() is not None:
                    return False
                t0 = time.perf_counter()
                batch_2d = next(iters["2d"]) if "2d" in iters else None
                batch_3d = next(iters["3d"]) if "3d" in iters else None
                batch_img = next(iters["img"]) if "img" in iters and (i + 1) % self.img_every == 0 else None
                stats = self.train_step(batch_2d, batch_3d, batch_img)
                self.step += 1
                self._stop_requested = stats["stop"] > 0
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
                ckpt_freq = self.settings.ckpt_freq
                if ckpt_freq > 0 and self.step % ckpt_freq == 0 and i < n - 1 and self.stop_reason() is None:
                    self.save()
        finally:
            bar.close()
        return True

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
