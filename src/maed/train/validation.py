"""Validation during training: the evaluation protocol on ``TRAIN.DATASET_EVAL``'s val split (3DPW-val
PA-MPJPE selects ``best.pt``, as the original), sharded over ranks without duplicates and averaged
across them weighted by frame counts."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch

from maed.config import EvalConfig
from maed.data.keypoints import SPIN_JOINT_NAMES
from maed.data.loaders import eval_loader_from_config
from maed.errors import DataError
from maed.eval.bodies import evaluation_bodies
from maed.eval.evaluator import Evaluator
from maed.eval.metrics import METRIC_KEYS, compute_metrics
from maed.eval.protocol import EvalSettings
from maed.paths import resolve_paths
from maed.synth.keypoint_data import clips_from_config
from maed.train.distributed import DistEnv, all_reduce_sum

#: the metric that selects best.pt (lower is better)
SELECTION_METRIC = "pa-mpjpe"


class Validator:
    """Runs :class:`maed.eval.evaluator.Evaluator` over this rank's shard and all-reduces the metrics.

    Args:
        loader: this rank's evaluation loader (whole windows, ``maed.data.loaders.build_eval_loader``).
        dataset: ``3dpw`` | ``mpii3d`` | ``h36m``. protocol: ``original`` | ``strict``.
        J_regressor, gt_body_model: the regressor the protocol needs (H36M for 3dpw/h36m) or None, and the
            neutral SMPL of the ground-truth meshes (None: no PVE); see ``maed.eval.bodies.evaluation_bodies``.
        seqlen, frame_step: clip length and frame subsampling of the protocol.
        autocast: a context-manager factory for mixed precision (or None).
    """

    def __init__(
        self,
        *,
        loader,
        dataset: str,
        env: DistEnv,
        protocol: str = EvalConfig.PROTOCOL,
        J_regressor: torch.Tensor | None = None,
        gt_body_model: torch.nn.Module | None = None,
        seqlen: int = EvalConfig.SEQLEN,
        frame_step: int = EvalConfig.INTERPOLATION,
        autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
        progress: bool = True,
    ):
        self.loader = loader
        self.dataset = dataset
        self.env = env
        self.protocol = protocol
        self.J_regressor = J_regressor
        self.gt_body_model = gt_body_model
        self.seqlen = seqlen
        self.frame_step = frame_step
        self.autocast = autocast or contextlib.nullcontext
        self.progress = progress and env.is_main

    @classmethod
    def from_config(cls, cfg, model, env: DistEnv, progress: bool = True) -> Validator | None:
        """None when ``TRAIN.DATASET_EVAL`` is empty. A missing database or regressor fails here, before
        training starts."""
        if cfg.MODEL.ENCODER.BACKBONE == "keypoints":
            return KeypointValidator.from_config(cfg, env)
        dataset = cfg.TRAIN.DATASET_EVAL
        if not dataset:
            return None
        settings = EvalSettings.from_config(cfg.EVAL)
        J_regressor, gt_body = evaluation_bodies(
            model.body_model,
            dataset,
            body_model_dir=resolve_paths(cfg.PATHS)["body_model_dir"],
            device=env.device,
            what=f"validation on {dataset}",
            fix="; or set TRAIN.DATASET_EVAL='' to train without validation",
        )
        loader = eval_loader_from_config(
            cfg,
            dataset=dataset,
            split="val",
            rank=env.rank,
            world_size=env.world_size,
            distributed=env.distributed,
            pin_memory=env.device.type == "cuda",
        )
        return cls(
            loader=loader,
            dataset=dataset,
            env=env,
            # validation reports one protocol: 'both' selects best.pt by the original's numbers
            protocol="original" if settings.protocol == "both" else settings.protocol,
            J_regressor=J_regressor,
            gt_body_model=gt_body,
            seqlen=settings.seqlen,
            frame_step=settings.frame_step,
            progress=progress,
        )

    def __call__(self, model: torch.nn.Module) -> dict[str, float | int | None]:
        """Metrics (mm) and ``num_frames`` over all ranks for ``model`` (the bare MAED, not DDP)."""
        # with more ranks than validation windows a rank's shard is empty: it evaluates nothing but still
        # joins the reduction below (raising alone would leave the other ranks waiting in it)
        windows = len(self.loader) if hasattr(self.loader, "__len__") else 1
        n, values = 0, {}
        if windows > 0:
            was_training = model.training
            model.eval()
            try:
                evaluator = Evaluator(
                    model,
                    dataset=self.dataset,
                    protocols=(self.protocol,),
                    J_regressor=self.J_regressor,
                    gt_body_model=self.gt_body_model,
                    seqlen=self.seqlen,
                    frame_step=self.frame_step,
                    device=self.env.device,
                    progress=self.progress,
                )
                with self.autocast():
                    result = evaluator.run(self.loader).protocols[self.protocol]
            finally:
                model.train(was_training)
            n, values = result.num_frames, result.metrics
        metrics, (all_windows,) = reduce_metrics(values, n, self.env, extra=[windows])
        if all_windows == 0:
            raise DataError(
                f"validation: the {self.dataset} val split has no evaluation windows on any rank "
                "(TRAIN.DATASET_EVAL); set TRAIN.DATASET_EVAL='' to train without validation"
            )
        return metrics


def reduce_metrics(
    values: dict, n: int, env: DistEnv, extra: list[float] = ()
) -> tuple[dict[str, float | int | None], list[float]]:
    """Metrics of ``n`` frames on this rank -> their frame-weighted mean over all ranks (a metric no rank has,
    or a non-finite one, is None), with ``num_frames``; ``extra`` values are summed over ranks alongside."""
    sums = []
    for k in METRIC_KEYS:
        v = values.get(k)
        ok = v is not None and math.isfinite(v)
        sums += [float(v) * n, float(n)] if ok else [0.0, 0.0]
    local = torch.tensor(sums + [n, *extra], dtype=torch.float64, device=env.device)
    totals = all_reduce_sum(local, env).cpu().tolist()
    metrics: dict[str, float | int | None] = {}
    for i, k in enumerate(METRIC_KEYS):
        s, c = totals[2 * i], totals[2 * i + 1]
        metrics[k] = s / c if c > 0 else None
    metrics["num_frames"] = int(totals[2 * len(METRIC_KEYS)])
    return metrics, totals[2 * len(METRIC_KEYS) + 1 :]


class KeypointValidator:
    """Validation of a keypoint model on synthetic keypoint clips (``maed.synth.keypoint_data``): held-out
    body shapes, fixed views and noise (clip ``i`` is drawn from seed ``i``), the 14 LSP joints of the
    49 (pelvis-aligned, as the protocol), metrics in mm; each rank takes every ``world_size``-th clip."""

    def __init__(self, clips, env: DistEnv, *, batch_size: int = 16):
        self.clips, self.env, self.batch_size = clips, env, batch_size

    @classmethod
    def from_config(cls, cfg, env: DistEnv) -> KeypointValidator:

        return cls(clips_from_config(cfg, "val", progress=env.is_main), env)

    def samples(self, rank: int = 0, world_size: int = 1) -> list[dict]:
        import numpy as np

        return [self.clips.sample(np.random.default_rng(i), i) for i in range(rank, len(self.clips), world_size)]

    def __call__(self, model: torch.nn.Module) -> dict[str, float | int | None]:
        import numpy as np

        lsp = slice(25, 39)  # the 14 LSP joints of the 49 (maed.data.keypoints.COMMON_JOINT_NAMES)
        assert SPIN_JOINT_NAMES[25] == "rankle"
        samples = self.samples(self.env.rank, self.env.world_size)
        preds, gts, ids = [], [], []
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for i in range(0, len(samples), self.batch_size):
                    chunk = samples[i : i + self.batch_size]
                    x = torch.stack([c["keypoints"] for c in chunk]).to(self.env.device)
                    out = model(x)
                    preds.append(out["kp_3d"][:, :, lsp].float().cpu().reshape(-1, 14, 3).numpy())
                    gts.append(torch.stack([c["kp_3d"][:, lsp] for c in chunk]).reshape(-1, 14, 4).numpy())
                    ids += [int(c["index"]) for c in chunk for _ in range(c["kp_3d"].shape[0])]
        finally:
            model.train(was_training)
        n = sum(len(p) for p in preds)
        values = compute_metrics(np.concatenate(preds), np.concatenate(gts), sequence_ids=ids) if n else {}
        return reduce_metrics(values, n, self.env)[0]
