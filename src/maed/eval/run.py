"""A whole evaluation (``maed eval``): every check first, then the loader, the model, the evaluator and the
output files (ORIGINAL.md §7). :class:`EvalJob` says what to evaluate; :func:`run_evaluation` does it."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maed.config import Config, DatasetConfig, check_frame_step
from maed.data.crop_cache import CropCache, default_crop_cache_dir
from maed.data.loaders import build_eval_loader, check_database_file, eval_pose_layout
from maed.data.registry import eval_dataset_info
from maed.errors import ConfigError
from maed.eval.bodies import evaluation_bodies
from maed.eval.evaluator import Evaluator
from maed.eval.outputs import (
    INFERENCE_PKL,
    METRICS_FILE,
    PREDICTIONS_FILE,
    SEQUENCE_FILE,
    check_previous_run,
    metrics_record,
    run_signature,
    write_inference_pkl,
    write_metrics,
    write_predictions,
    write_sequence_csv,
)
from maed.eval.protocol import EvalSettings, protocols_for
from maed.models import load_model
from maed.models.checkpoint import read_checkpoint
from maed.models.fast import resolve_precision
from maed.utils.io import check_output_dir, remove_stale_temporaries, scratch_path


@dataclass(frozen=True, kw_only=True)
class EvalJob:
    """One evaluation, as ``maed eval`` builds it once from its command line (:meth:`from_config`).

    checkpoint: the authors' ``model_best.pth.tar`` or one of ours. config: a resolved
    :class:`maed.config.Config` describing the architecture (the authors' checkpoint carries none).
    out_dir: where the results go. dataset, split: what is evaluated (``split`` None: the dataset's
    evaluation split in ``maed.data.registry``: 3DPW test, MPI-INF-3DHP val, Human3.6M test, synth test).
    db_dir, data_root, body_model_dir: where the database, the frames and the body-model files are.
    settings: protocol, clip and window sizes, batch size, frame step (``EVAL.*``). width, height: the crop.
    precision: the model's inference precision (``fp32``: numbers independent of the hardware).
    keypoint_model: for a keypoint model, the BlazePose variant run on the frames (lite, full, heavy).
    """

    checkpoint: str | os.PathLike
    config: Config
    out_dir: str | os.PathLike
    db_dir: str | os.PathLike
    data_root: str | os.PathLike | None
    body_model_dir: str | os.PathLike | None
    dataset: str = "3dpw"
    split: str | None = None
    settings: EvalSettings = field(default_factory=EvalSettings)
    num_workers: int = Config.NUM_WORKERS
    device: str | torch.device = "cpu"
    precision: str = "fp32"
    keypoint_model: str = "full"
    width: int = DatasetConfig.WIDTH
    height: int = DatasetConfig.HEIGHT
    use_crop_cache: bool = True
    save_verts: bool = False
    save_inference_pkl: bool = False
    overwrite: bool = False
    progress: bool = True

    @classmethod
    def from_config(cls, cfg: Config, **job: Any) -> EvalJob:
        """The job for ``cfg``: its ``EVAL.*`` settings, ``NUM_WORKERS`` and crop size, with ``job``'s fields."""
        return cls(
            config=cfg,
            settings=EvalSettings.from_config(cfg.EVAL),
            num_workers=cfg.NUM_WORKERS,
            width=cfg.DATASET.WIDTH,
            height=cfg.DATASET.HEIGHT,
            **job,
        )


def run_evaluation(
    job: EvalJob, *, model: torch.nn.Module | None = None, model_label: str | None = None
) -> dict[str, Any]:
    """Evaluate a checkpoint on one dataset split (:class:`EvalJob`) and write ``metrics.json``,
    ``per_sequence.csv``, ``predictions.npz`` (and ``inference.pkl`` when asked) into ``job.out_dir``.
    Returns the metrics record.

    ``model``: a model to evaluate instead of loading ``job.checkpoint`` (the mean-pose baseline,
    ``maed.eval.baseline``); ``job.checkpoint`` then names the file its parameters come from, which
    identifies the run, and ``model_label`` says what it is in ``metrics.json``. Every check that can fail
    (output directory, options, database, checkpoint, an output directory holding another evaluation, body
    model) runs before the first prediction; temporary files a killed run left in ``out_dir`` are removed;
    outputs are written atomically at the end, with ``metrics.json`` last.
    """
    s, dataset, device = job.settings, job.dataset, job.device
    out_dir = check_output_dir(job.out_dir, option="--out")
    protocols = protocols_for(s.protocol)
    info = eval_dataset_info(dataset)  # an unknown dataset fails here, before anything else
    split = info.eval_split if job.split is None else job.split
    check_frame_step(s.sample_pool, s.seqlen, s.frame_step)
    resolve_precision(job.precision, device)  # a bad --precision fails here
    if s.batch_size < 1:
        raise ConfigError(
            f"--batch-size / EVAL.BATCH_SIZE {s.batch_size}: expected an integer >= 1 (windows per batch)"
        )
    if job.num_workers < 0:
        raise ConfigError(f"--num-workers / NUM_WORKERS {job.num_workers}: expected an integer >= 0")
    if not Path(job.checkpoint).is_file():
        read_checkpoint(job.checkpoint)  # raises the AssetError that says where the checkpoint comes from
    db_path = check_database_file(job.db_dir, dataset, split)
    crop_cache = default_crop_cache_dir(db_path) if job.use_crop_cache else None
    signature = run_signature(
        checkpoint=job.checkpoint,
        database=db_path,
        dataset=dataset,
        split=split,
        data_root=job.data_root,
        body_model_dir=job.body_model_dir,
        crop_cache=crop_cache if CropCache.is_complete(crop_cache) else None,
        protocol=s.protocol,
        frame_step=s.frame_step,
        model_config=job.config.to_dict()["MODEL"],
        inputs={
            "seqlen": s.seqlen,
            "sample_pool": s.sample_pool,
            "width": job.width,
            "height": job.height,
            "precision": job.precision,
            # the landmarks' network, for a model that reads them (other runs' records stay as they were)
            **(
                {"keypoint_model": job.keypoint_model}
                if job.config.MODEL.ENCODER.BACKBONE.lower() == "keypoints"
                else {}
            ),
        },
    )
    check_previous_run(out_dir, signature, overwrite=job.overwrite)

    if model is None:
        model = load_model(
            job.checkpoint, body_model_dir=job.body_model_dir, config=job.config, device=device, precision=job.precision
        )
    J_regressor, gt_body = evaluation_bodies(
        model.body_model, dataset, body_model_dir=job.body_model_dir, device=device, what=f"{dataset} evaluation"
    )

    loader = build_eval_loader(
        dataset,
        split,
        db_dir=job.db_dir,
        dataset_root=job.data_root,
        sample_pool=s.sample_pool,
        batch_size=s.batch_size,
        num_workers=job.num_workers,
        valid_mode="original",
        pin_memory=str(device).startswith("cuda"),
        width=job.width,
        height=job.height,
        use_crop_cache=job.use_crop_cache,
        pose_layout=eval_pose_layout(job.config, dataset),
    )
    evaluator = Evaluator(
        model,
        dataset=dataset,
        protocols=protocols,
        J_regressor=J_regressor,
        gt_body_model=gt_body,
        seqlen=s.seqlen,
        frame_step=s.frame_step,
        device=device,
        progress=job.progress,
        keypoint_model=job.keypoint_model,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)  # of a killed run (its vertex scratch file can be large)
    need_verts = job.save_verts or job.save_inference_pkl
    with scratch_path(out_dir / PREDICTIONS_FILE) if need_verts else contextlib.nullcontext() as verts_tmp:
        result = evaluator.run(loader, vertices_file=verts_tmp)
        primary = result.protocols[protocols[0]]
        strict_mask = None
        if "strict" in result.protocols and protocols[0] != "strict":
            strict_mask = np.isin(primary.frames, result.protocols["strict"].frames)
        write_predictions(out_dir / PREDICTIONS_FILE, result, primary.frames, job.save_verts, strict_mask)
        write_sequence_csv(out_dir / SEQUENCE_FILE, result)
        if job.save_inference_pkl:
            write_inference_pkl(out_dir / INFERENCE_PKL, result, primary)
        record = metrics_record(
            result, dataset=dataset, split=split, checkpoint=model_label or str(job.checkpoint), signature=signature
        )
        write_metrics(out_dir / METRICS_FILE, record)
    return record
