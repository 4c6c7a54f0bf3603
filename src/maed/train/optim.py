"""The training loop's settings (``TRAIN.*``, ``SAVE_FREQ``) and its optimisation: Adam with coupled L2 weight
decay (or SGD) and the original's per-epoch ``LambdaLR`` (warm-up, then x0.1 at each milestone)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from maed.config import Config, OptimConfig, TrainConfig


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
    amp: str = TrainConfig.AMP  # 'none' | 'bf16' (autocast on CUDA and on CPUs with bf16 matrix instructions)
    optim: str = OptimConfig.OPTIM.lower()  # 'adam' | 'sgd'
    lr: float = OptimConfig.LR
    weight_decay: float = OptimConfig.WD
    momentum: float = OptimConfig.MOMENTUM
    eps: float = OptimConfig.EPS
    warmup_epochs: int = OptimConfig.WARMUP_EPOCH
    warmup_factor: float = OptimConfig.WARMUP_FACTOR
    milestones: list[int] = field(default_factory=lambda: list(OptimConfig().MILESTONES))
    start_epoch: int = TrainConfig.START_EPOCH

    @classmethod
    def from_config(cls, cfg: Config) -> TrainSettings:
        t, o = cfg.TRAIN, cfg.TRAIN.OPTIM  # values checked by the schema when the config was built
        return cls(
            end_epoch=t.END_EPOCH,
            iters_per_epoch=t.NUM_ITERS_PER_EPOCH,
            img_use_freq=t.IMG_USE_FREQ,
            save_freq=cfg.SAVE_FREQ,
            ckpt_freq=t.CKPT_FREQ,
            log_freq=max(t.LOG_FREQ, 1),
            grad_clip=t.GRAD_CLIP,
            amp=t.AMP.lower(),
            optim=o.OPTIM.lower(),
            lr=o.LR,
            weight_decay=o.WD,
            momentum=o.MOMENTUM,
            eps=o.EPS,
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
    return torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay, eps=settings.eps)


def build_scheduler(
    optimizer: torch.optim.Optimizer, settings: TrainSettings, epochs_done: int = 0
) -> torch.optim.lr_scheduler.LambdaLR:
    """The per-epoch ``LambdaLR`` of ``settings``, positioned after ``epochs_done`` epochs.

    The schedule is a function of the epoch, so a resumed or restarted run rebuilds it rather than
    loading a stored one: the settings' learning rate, schedule and weight decay always apply (a resume
    may lower the learning rate, say), and unchanged settings reproduce the stored values exactly.
    """
    for group in optimizer.param_groups:
        group["initial_lr"] = settings.lr  # the base LR of LambdaLR
        if settings.optim == "adam":
            group["weight_decay"] = settings.weight_decay
            group["eps"] = settings.eps
    factor = LRFactor(settings.warmup_epochs, settings.warmup_factor, settings.milestones)
    # last_epoch = epochs_done - 1: the constructor's own step lands on epochs_done and sets each LR
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=factor, last_epoch=epochs_done - 1)
