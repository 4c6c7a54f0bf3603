"""A training run from start to finish: what ``maed train`` does around the loop.

:func:`train` resolves a :class:`RunPlan` once from the config and the command line (config, seed,
device, run directory, resume checkpoint, pretrained checkpoint, encoder initialisation), then sets up
the run in this order, so that everything a user can get wrong fails before a run directory exists:

1. the output location (``--out``, ``OUTPUT_DIR`` or the resumed run's directory) checked writable, backend
   flags, training data (every database checked), the model (with ``--init-weights`` and ``--pretrained``
   applied and their reports kept), the validator;
2. the run directory, created by rank 0 (never an occupied one) with the recorded ``config.yaml``; temporary
   files a killed run left there and in ``checkpoints/`` are removed (on a resume too);
3. the run log, which records the reports, then the :class:`~maed.train.engine.Trainer` and its loop.

A run stopped by SIGTERM or SIGUSR1 saves ``last.pt`` and raises :class:`~maed.train.stopping.TrainingStopped`
(``maed train`` then exits 143).

The config given is never changed: what the plan resolves (seed, run directory, pretrained checkpoint)
goes into a recorded copy (:meth:`RunPlan.recorded_config`), the one stored in ``config.yaml`` and in
every checkpoint.

A run directory (``OUTPUT_DIR/<YYYY-mm-dd_HH-MM-SS>_<EXP_NAME>/`` or ``--out``), written by rank 0:
``config.yaml``, ``train_log.txt``, ``log.jsonl``, ``tb/``, ``best.txt`` (the best validation PA-MPJPE,
mm) and ``checkpoints/`` (see ``maed.train.checkpointing``).

    from maed.train import train
    run_dir = train("stage2", overrides=["TRAIN.BATCH_SIZE_3D=2"], pretrained="stage1/checkpoints/last.pt")
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maed.config import Config, load_config
from maed.data.database import NUM_JOINTS
from maed.data.loaders import TrainDataSettings, build_train_datasets
from maed.errors import AssetError, ConfigError, MaedError, OutputError
from maed.eval.baseline import mean_parameters
from maed.models import build_model
from maed.models.checkpoint import init_encoder_weights
from maed.paths import resolve_paths
from maed.synth.keypoint_data import clips_from_config
from maed.train import checkpointing as ckpt_io
from maed.train.distributed import DistEnv, broadcast_object, cleanup, init_distributed
from maed.train.engine import Trainer
from maed.train.losses import MAEDLoss
from maed.train.optim import TrainSettings
from maed.train.run_log import RunLog
from maed.train.stopping import TrainingError, TrainingStopped, resume_command
from maed.train.streams import BatchStream, mix_seed
from maed.train.validation import Validator
from maed.utils.device import cpu_bf16_matrix, resolve_device
from maed.utils.io import check_output_dir, output_error, remove_stale_temporaries

CONFIG_FILE = "config.yaml"


# ------------------------------------------------------------------------------------------ the plan
@dataclass(frozen=True)
class RunPlan:
    """Everything a run decides before it starts, resolved once from the config and the command line.

    config: the config as given (overrides applied; a resumed run's own config); never changed.
    device: this process's device. seed: the run's seed (the config's, the resumed run's, or drawn).
    out: ``--out``, the new run's directory, or None for ``OUTPUT_DIR/<timestamp>_<EXP_NAME>``.
    resume_dir, resume_checkpoint: the run being continued and the checkpoint it continues from.
    pretrained: the stage-1 checkpoint whose encoder initialises a new run.
    init_weights: the ImageNet file initialising a new run's encoder (``MODEL.ENCODER.INIT_WEIGHTS``).
    progress: rank-0 progress bars. max_steps: stop (with a checkpoint) once this many steps are done.
    """

    config: Config
    device: torch.device
    seed: int
    out: Path | None = None
    resume_dir: Path | None = None
    resume_checkpoint: Path | None = None
    pretrained: Path | None = None
    init_weights: Path | None = None
    progress: bool = True
    max_steps: int | None = None

    @property
    def resuming(self) -> bool:
        return self.resume_dir is not None

    def model_config(self) -> Config:
        """The config the model is built from: the encoder initialisation is applied by the run itself,
        so that its report lands in the run log (and a resumed run takes every weight from its checkpoint)."""
        cfg = self.config.copy()
        cfg.MODEL.ENCODER.INIT_WEIGHTS = ""
        return cfg

    def recorded_config(self, run_dir: Path) -> Config:
        """The config stored in ``config.yaml`` and in every checkpoint: the given one with what the plan
        resolved (seed, run directory, pretrained checkpoint)."""
        cfg = self.config.copy()
        cfg.SEED_VALUE = self.seed
        cfg.LOGDIR = str(run_dir)
        cfg.TRAIN.RESUME = ""
        if not self.resuming:
            cfg.TRAIN.PRETRAINED = str(self.pretrained) if self.pretrained else ""
        return cfg


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


def _resolve_config(
    config, overrides, *, pretrained, resume, out
) -> tuple[Config, tuple[Path, Path] | None, dict | None]:
    """(config, (run directory, checkpoint file) to resume, the checkpoint read) from the command line; checks
    the combinations."""
    cfg = load_config(config, overrides) if config is not None else None
    if resume is None and cfg is not None and cfg.TRAIN.RESUME:
        resume = cfg.TRAIN.RESUME
    elif resume is not None and cfg is not None:
        raise ConfigError("--resume continues a run with its own config.yaml; do not pass --config too")
    if resume is None:
        if cfg is None:
            raise ConfigError(
                "maed train: give --config (a YAML file or preset: stage1, stage2, ...) or --resume RUN_DIR"
            )
        return cfg, None, None
    if pretrained is not None:
        raise ConfigError("--pretrained starts a new run; a resumed run takes its weights from its checkpoint")
    if out is not None:
        raise ConfigError(f"--out creates a new run; --resume {resume} continues in that run's own directory")
    run_dir, ckpt_path = _run_dir_of(resume)
    state = ckpt_io.load_training_checkpoint(ckpt_path)
    return load_config(state["config"], overrides), (run_dir, ckpt_path), state


def _plan(cfg: Config, env: DistEnv, *, resume, resume_state, pretrained, out, progress, max_steps) -> RunPlan:
    if resume_state is not None:
        seed = int(resume_state.get("seed", cfg.SEED_VALUE))
    elif cfg.SEED_VALUE >= 0:
        seed = cfg.SEED_VALUE
    else:  # drawn once by rank 0 and recorded in config.yaml
        seed = broadcast_object(int.from_bytes(os.urandom(4), "little") % 2**31, env)
    init_weights = None
    if resume is None:
        pretrained = pretrained if pretrained is not None else (cfg.TRAIN.PRETRAINED or None)
        if pretrained is not None and not Path(pretrained).is_file():
            raise AssetError(
                f"--pretrained {pretrained}: file not found (a stage-1 checkpoint, e.g. "
                "results/<stage-1 run>/checkpoints/last.pt)"
            )
        init_weights = cfg.MODEL.ENCODER.INIT_WEIGHTS or None
    return RunPlan(
        config=cfg,
        device=env.device,
        seed=seed,
        out=Path(out) if out is not None else None,
        resume_dir=None if resume is None else resume[0],
        resume_checkpoint=None if resume is None else resume[1],
        pretrained=Path(pretrained) if pretrained else None,
        init_weights=Path(init_weights) if init_weights else None,
        progress=progress,
        max_steps=max_steps,
    )


# ------------------------------------------------------------------------------------------ entry point
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
    down here. Raises :class:`~maed.train.stopping.TrainingStopped` (on every rank) when SIGTERM or SIGUSR1
    stopped the run early, after ``last.pt`` is saved.
    """
    cfg, resume_from, resume_state = _resolve_config(config, overrides, pretrained=pretrained, resume=resume, out=out)
    env = init_distributed(resolve_device(device if device is not None else cfg.DEVICE, explicit=device is not None))
    try:
        plan = _plan(
            cfg,
            env,
            resume=resume_from,
            resume_state=resume_state,
            pretrained=pretrained,
            out=out,
            progress=progress,
            max_steps=max_steps,
        )
        return run(plan, env, resume_state=resume_state)
    finally:
        cleanup(env)


def run(plan: RunPlan, env: DistEnv, *, resume_state: dict[str, Any] | None = None) -> Path:
    """Carry out a plan in an initialised process group (see the module docstring); returns the run directory.

    ``resume_state``: the checkpoint ``plan.resume_checkpoint`` holds, when the caller has read it already.
    """
    cfg = plan.config
    settings = TrainSettings.from_config(cfg)
    criterion = MAEDLoss.from_config(cfg.LOSS)
    check_joint_heatmap(cfg)
    _on_main(lambda: _check_output(plan), env)
    if plan.resuming and resume_state is None:
        resume_state = ckpt_io.load_training_checkpoint(plan.resume_checkpoint)
    torch.backends.cudnn.benchmark = cfg.CUDNN.BENCHMARK
    torch.backends.cudnn.deterministic = cfg.CUDNN.DETERMINISTIC
    torch.backends.cudnn.enabled = cfg.CUDNN.ENABLED

    # ---- everything that can fail on user input fails before a run directory exists:
    # databases, body-model files, the encoder initialisation, the pretrained checkpoint, the validation set
    streams = build_streams(cfg, env, plan.seed)
    ckpt_io.seed_everything(plan.seed)  # the same initialisation on every rank (DDP also broadcasts rank 0's)
    model = build_model(
        plan.model_config(),
        body_model_dir=resolve_paths(cfg.PATHS)["body_model_dir"],
        keypoint_joints=NUM_JOINTS,  # the databases' 2D labels, which the optional heatmap head predicts
    )
    init_report = None
    if plan.init_weights is not None:
        init_report = init_encoder_weights(model.encoder, plan.init_weights, num_blocks=cfg.MODEL.ENCODER.NUM_BLOCKS)
    transfer = ckpt_io.load_pretrained_encoder(model, plan.pretrained) if plan.pretrained is not None else None
    mean_start = None
    if cfg.MODEL.DECODER.INIT_MEAN_POSE and not plan.resuming:
        mean_start = start_decoder_at_mean_pose(model, [streams["3d"], streams["img"]])
    model.to(env.device)
    validator = Validator.from_config(cfg, model, env, progress=plan.progress)

    run_dir = plan.resume_dir if plan.resuming else _create_run_dir(plan, env)
    stale = remove_stale_files(run_dir) if plan.resuming and env.is_main else []
    recorded = plan.recorded_config(run_dir)
    log = RunLog(run_dir, rank=env.rank)
    try:
        if stale:
            log.info(f"removed {len(stale)} temporary file(s) a killed run left: {', '.join(map(str, stale))}")
        changed = _config_diff(resume_state["config"], recorded.to_dict()) if plan.resuming else []
        if env.is_main:
            if plan.resuming and changed:
                log.info(
                    "resuming with changed settings (recorded in log.jsonl and the next checkpoints):\n  "
                    + "\n  ".join(changed)
                )
            log.text("config", f"<pre>{_config_text(recorded)}</pre>")
        if settings.amp == "bf16" and env.device.type == "cpu":
            matrix = cpu_bf16_matrix()
            if matrix is None:
                log.warning(
                    "TRAIN.AMP=bf16: this CPU has no bf16 matrix instructions (AMX or AVX512-BF16), where bf16 "
                    "runs slower than float32; training in float32"
                )
            else:
                log.info(f"TRAIN.AMP=bf16: bf16 autocast on the CPU ({matrix}); body model and losses in float32")
        if init_report is not None:
            _log_init_weights(init_report, plan.init_weights, log)
        if mean_start is not None:
            log.info(f"decoder starts at the mean pose and shape of {mean_start} training rows (INIT_MEAN_POSE)")
        if transfer is not None:
            _log_transfer(transfer, cfg, log)
        trainer = Trainer(
            model=model,
            criterion=criterion,
            streams=streams,
            env=env,
            settings=settings,
            run_dir=run_dir,
            config=recorded.to_dict(),
            seed=plan.seed,
            validator=validator,
            log=log,
            progress=plan.progress,
            max_steps=plan.max_steps,
        )
        if plan.resuming:
            for note in trainer.load_state_dict(resume_state):
                log.warning(f"resume: {note}")
            resume_state.clear()  # drop the checkpoint's own references (the weights were copied into the model)
            log.info(f"resumed {run_dir} at epoch {trainer.epoch}, step {trainer.step}")
            log.event("resume", step=trainer.step, epoch=trainer.epoch, world_size=env.world_size, changed=changed)
        else:
            ckpt_io.seed_everything(mix_seed(plan.seed, 7, env.rank))  # per-rank training randomness (dropout)
            n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
            log.info(f"run directory {run_dir}; seed {plan.seed}; {n_params:,} trainable parameters; {criterion}")
            log.event(
                "start",
                run_dir=str(run_dir),
                seed=plan.seed,
                world_size=env.world_size,
                device=str(env.device),
                params=n_params,
                iters_per_epoch=trainer.iters_per_epoch,
            )
        summary = trainer.fit()
        if summary["stopped"] == "signal":  # every rank agreed: every rank raises
            raise TrainingStopped(run_dir, step=trainer.step, signal_name=trainer.stop_signal_name)
        return run_dir
    except MaedError as e:
        log.error(f"error: {e}")
        if isinstance(e, TrainingError):  # log.jsonl records why the run stopped, as its docstring promises
            log.event("nan", message=str(e))
        raise
    finally:
        log.close()


# ------------------------------------------------------------------------------------------ pieces
#: the camera (s, tx, ty) a decoder started at the mean pose predicts: SPIN's mean camera
MEAN_START_CAMERA = (0.9, 0.0, 0.0)


def check_joint_heatmap(cfg: Config) -> None:
    """The encoder's heatmap head and its loss come together: a head without loss would get no gradient (and
    DDP refuses unused parameters), a loss without head has nothing to score."""
    head, weight = cfg.MODEL.ENCODER.JOINT_HEATMAP, cfg.LOSS.JOINT_HEATMAP_W
    if head and not weight > 0:
        raise ConfigError("MODEL.ENCODER.JOINT_HEATMAP=True needs its loss: set LOSS.JOINT_HEATMAP_W > 0")
    if weight > 0 and not head:
        raise ConfigError(f"LOSS.JOINT_HEATMAP_W={weight} needs the head: set MODEL.ENCODER.JOINT_HEATMAP=True")


def start_decoder_at_mean_pose(model, streams: list[BatchStream | None]) -> int:
    """Move a new KTD decoder's starting output to the chordal mean pose and the mean shape of the training rows
    with pose and shape in ``streams`` (the 3D videos and the images; ``MODEL.DECODER.INIT_MEAN_POSE``; every
    rank computes the same). Returns the number of rows."""
    if not hasattr(model.decoder, "start_at"):
        raise ConfigError("MODEL.DECODER.INIT_MEAN_POSE: only the ktd decoder has it (iterative starts at SMPL's mean)")
    keypoint_stream = next((s for s in streams if s is not None and hasattr(s.dataset, "pose_rows")), None)
    if keypoint_stream is not None:  # synthetic keypoint clips: rows of a fixed draw of training samples
        db = keypoint_stream.dataset.pose_rows()
        body = model.body_model
        rotmat, betas = mean_parameters(db, num_joints=body.num_joints, num_betas=body.num_betas, label="KEYPOINTS")
        model.decoder.start_at(torch.from_numpy(rotmat), torch.from_numpy(betas), torch.tensor(MEAN_START_CAMERA))
        return len(db["pose"])
    parts = {}  # one entry per database: a set in both the video and the image stream counts once
    for stream in streams:
        for d in stream.dataset.datasets if stream is not None else []:
            if getattr(d, "has_pose", False):
                parts.setdefault(d.label, d)
    parts = list(parts.values())
    if not parts:
        raise ConfigError(
            "MODEL.DECODER.INIT_MEAN_POSE needs training data with pose and shape (TRAIN.DATASETS_3D or DATASETS_IMG)"
        )
    db = {k: np.concatenate([np.asarray(d.db[k]).reshape(len(d.db[k]), -1) for d in parts]) for k in ("pose", "shape")}
    body = model.body_model
    rotmat, betas = mean_parameters(db, num_joints=body.num_joints, num_betas=body.num_betas, label="TRAIN.DATASETS_3D")
    model.decoder.start_at(torch.from_numpy(rotmat), torch.from_numpy(betas), torch.tensor(MEAN_START_CAMERA))
    return len(db["pose"])


def build_streams(cfg: Config, env: DistEnv, seed: int) -> dict[str, BatchStream | None]:
    """The training streams of a config on this rank (``TRAIN.*``, ``DATASET.*``, ``PATHS.*``); for a
    keypoint encoder, one stream of synthetic keypoint clips (``KEYPOINTS.*``) in the place of the 3D videos."""
    data = TrainDataSettings.from_config(cfg)
    if cfg.MODEL.ENCODER.BACKBONE == "keypoints":
        clips = clips_from_config(cfg, "train", progress=env.is_main)
        stream = BatchStream(clips, name="3d", batch_size=cfg.TRAIN.BATCH_SIZE_3D, seed=seed, rank=env.rank,
                             world_size=env.world_size, num_workers=data.num_workers)  # fmt: skip
        return {"2d": None, "3d": stream, "img": None}
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


def _timestamp() -> str:
    return time.strftime("%Y-%m-%d_%H-%M-%S")


def prepare_run_dir(
    *, output_dir: str | os.PathLike, exp_name: str, out: str | os.PathLike | None, config_text: str
) -> Path:
    """Create the run directory (rank 0): ``out`` exactly, or ``output_dir/<timestamp>_<exp_name>``.

    An existing, non-empty ``out`` is never reused: the same config means the run exists (use
    ``--resume``), another config means another run; both raise :class:`OutputError`. Temporary files a
    killed run left in ``out`` do not count (they are removed).
    """
    if out is not None:
        path = Path(out)
        if path.is_dir():
            remove_stale_files(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            existing = path / CONFIG_FILE
            if existing.is_file() and existing.read_text() == config_text:
                raise OutputError(f"--out {path} already holds this run; continue it with `{resume_command(path)}`")
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
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise output_error(f"cannot create the run directory {path}", e) from None
    return path


def remove_stale_files(run_dir: Path) -> list[Path]:
    """Remove the temporary files that killed writes left in a run directory and its ``checkpoints/`` (only
    those of ``maed.utils.io``'s naming whose writer is gone); returns their paths."""
    return [*remove_stale_temporaries(run_dir), *remove_stale_temporaries(run_dir / ckpt_io.CHECKPOINT_DIR)]


def _check_output(plan: RunPlan) -> None:
    """The directory a run writes can be written: ``--out``, ``OUTPUT_DIR`` (a new run's directory goes
    there) or the resumed run's directory and its ``checkpoints/``."""
    if plan.resuming:
        check_output_dir(plan.resume_dir, option="--resume")
        check_output_dir(plan.resume_dir / ckpt_io.CHECKPOINT_DIR, option="--resume")
    elif plan.out is not None:
        check_output_dir(plan.out, option="--out")
    else:
        check_output_dir(plan.config.OUTPUT_DIR, option="OUTPUT_DIR")


def _on_main(fn, env: DistEnv):
    """``fn()`` on rank 0, its result on every rank; an ``OutputError`` there is raised on every rank, so
    that none waits for the others."""
    result = error = None
    if env.is_main:
        try:
            result = fn()
        except OutputError as e:
            error = str(e)
    result, error = broadcast_object((result, error), env)
    if error is not None:
        raise OutputError(error)
    return result


def _create_run_dir(plan: RunPlan, env: DistEnv) -> Path:
    """Rank 0 creates the new run's directory and writes config.yaml there; every rank learns its path."""

    def create() -> str:
        cfg = plan.config
        # the config recorded for an --out run names that directory, so it is known before creating it
        text = _config_text(plan.recorded_config(plan.out)) if plan.out is not None else ""
        path = prepare_run_dir(output_dir=cfg.OUTPUT_DIR, exp_name=cfg.EXP_NAME, out=plan.out, config_text=text)
        plan.recorded_config(path).dump(path / CONFIG_FILE)  # the config the run was created with
        return str(path)

    return Path(_on_main(create, env))


def _config_text(cfg: Config) -> str:
    import yaml

    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def _config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _config_diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out


def _log_init_weights(report, path: Path, log: RunLog) -> None:
    log.info(f"--init-weights {path}: " + report.summary(missing_title="not in the file, kept at their initialisation"))
    log.event(
        "init_weights",
        path=str(path),
        loaded=len(report.loaded),
        kept_at_init=report.missing,
    )


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
