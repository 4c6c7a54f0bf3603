"""``maed eval``: evaluate a checkpoint on 3DPW, MPI-INF-3DHP, Human3.6M (ORIGINAL.md §7) or the synthetic
Anny videos of ``maed synth``; or the mean-pose baseline of a training set (``maed.eval.baseline``)."""

from __future__ import annotations

import argparse

from maed.body.layout import pose_layout_from_config
from maed.config import load_config
from maed.data.database import load_database
from maed.data.registry import DATASETS, EVAL_DATASETS
from maed.errors import ConfigError
from maed.eval.outputs import format_table
from maed.eval.protocol import PROTOCOL_CHOICES
from maed.paths import resolve_paths
from maed.perception.blazepose import VARIANTS as BLAZEPOSE_VARIANTS
from maed.utils.io import check_output_dir

EPILOG = """\
example:
  maed eval --checkpoint model_best.pth.tar --config configs/config_stage2.yaml \\
            --body-model-dir data/smpl_data --dataset 3dpw --split test \\
            --db-dir data/database --data-root data/3dpw --out results/eval_3dpw

outputs in --out: metrics.json (mpjpe, pa-mpjpe, pve, accel, accel_err in mm, num_frames),
per_sequence.csv, predictions.npz (theta, boxes, paths; verts with --save-verts), and the
original's inference.pkl with --save-inference-pkl.

the mean-pose baseline (the training set's average pose and shape for every frame), same evaluator:
  maed eval --baseline mean-pose --train-db data/synth/synth_train_db.pt --dataset synth --split test \\
            --db-dir data/synth --data-root data/synth --out results/baseline_synth
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint (3DPW, MPI-INF-3DHP, Human3.6M, synthetic Anny videos)",
        description="Evaluate a MAED checkpoint with the original protocol (default) or the strict one.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", default=None, help="the authors' model_best.pth.tar or one of ours")
    p.add_argument(
        "--baseline",
        default=None,
        choices=("mean-pose",),
        help="evaluate a baseline instead of a checkpoint: mean-pose (the average pose and shape of --train-db)",
    )
    p.add_argument("--train-db", default=None, help="with --baseline: the training database (*_train_db.pt)")
    p.add_argument(
        "--config",
        default=None,
        help="YAML file or preset describing the architecture (the original's YAML files work); "
        "default: the config stored in the checkpoint, else the stage2 preset",
    )
    p.add_argument("--body-model-dir", default=None, help="SMPL files (default: the config's PATHS)")
    p.add_argument("--dataset", default="3dpw", choices=EVAL_DATASETS, help="default 3dpw")
    p.add_argument(
        "--split",
        default=None,
        help="database split (default: the dataset's evaluation split: "
        + ", ".join(f"{name} {DATASETS[name].eval_split}" for name in EVAL_DATASETS)
        + ")",
    )
    p.add_argument("--db-dir", default=None, help="directory of the *_db.pt files (default: the config's PATHS)")
    p.add_argument("--data-root", default=None, help="image root of the dataset (default: the config's PATHS)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--protocol",
        default=None,
        choices=PROTOCOL_CHOICES,
        help="original (default, the paper's numbers), strict, or both side by side",
    )
    p.add_argument(
        "--frame-step",
        type=int,
        default=None,
        help="predict every n-th frame and interpolate the rest (EVAL.INTERPOLATION, default 1)",
    )
    p.add_argument("--batch-size", type=int, default=None, help="windows per batch (EVAL.BATCH_SIZE)")
    p.add_argument("--num-workers", type=int, default=None, help="data loader workers (NUM_WORKERS)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: DEVICE, cpu without CUDA)")
    p.add_argument(
        "--precision",
        default="fp32",
        help="the checkpoint's inference precision: fp32 (default: numbers independent of the hardware), auto "
        "(bf16 where the CPU or GPU multiplies it natively), bf16, tf32 (CUDA). docs/SPEED.md",
    )
    p.add_argument(
        "--keypoint-model",
        choices=BLAZEPOSE_VARIANTS,
        default="full",
        help="for a keypoint model: the BlazePose variant run on the frames (default full, the demo's; heavy "
        "needs its weights in MAED_PERCEPTION_WEIGHTS, docs/MODELS.md)",
    )
    p.add_argument("--save-verts", action="store_true", help="also save predicted vertices in predictions.npz")
    p.add_argument("--save-inference-pkl", action="store_true", help="also write the original's inference.pkl")
    p.add_argument("--overwrite", action="store_true", help="replace the results of a different run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. EVAL.BATCH_SIZE=4")
    p.set_defaults(func=run)


def _config(args):
    """The config: --config (or the checkpoint's own, else the stage2 preset), then the overrides, then the
    evaluation options given on the command line (they are EVAL.* and NUM_WORKERS under other names)."""
    options = {
        "EVAL.PROTOCOL": args.protocol,
        "EVAL.INTERPOLATION": args.frame_step,
        "EVAL.BATCH_SIZE": args.batch_size,
        "NUM_WORKERS": args.num_workers,
    }
    overrides = [*args.overrides, *(f"{k}={v}" for k, v in options.items() if v is not None)]
    if args.config is not None or args.checkpoint is None:  # a baseline's body model comes from its data
        return load_config(args.config or "stage2", overrides)
    from maed.models.checkpoint import read_checkpoint  # start-up: torch (~2 s) stays out of `maed --help`

    stored = read_checkpoint(args.checkpoint).get("config")
    return load_config(stored if isinstance(stored, dict) and stored else "stage2", overrides)


def _baseline(args, cfg, body_model_dir, device):
    """(config with the training database's body model, the baseline model, its label) for --baseline."""
    from maed.body import body_model_from_config  # start-up: torch (~2 s) stays out of `maed --help`
    from maed.eval.baseline import (  # start-up: torch (~2 s) stays out of `maed --help`
        MeanPoseModel,
        mean_parameters,
        training_layout,
    )

    if args.checkpoint is not None or args.train_db is None:
        raise ConfigError("--baseline mean-pose takes --train-db (the training database) and no --checkpoint")
    db = load_database(args.train_db)
    layout = training_layout(db, label=args.train_db)
    if args.config is not None and pose_layout_from_config(cfg) != layout:
        raise ConfigError(
            f"--config {args.config} names the body model {cfg.MODEL.BODY_MODEL} "
            f"(rig {cfg.MODEL.BODY_RIG or 'default'}) but --train-db {args.train_db} holds {layout.body_model} "
            f"(rig {layout.rig}) parameters"
        )
    cfg = cfg.copy()
    cfg.MODEL.BODY_MODEL, cfg.MODEL.BODY_RIG = layout.body_model, "" if layout.body_model == "smpl" else layout.rig
    body = body_model_from_config(cfg, model_dir=body_model_dir)
    rotmat, betas = mean_parameters(db, num_joints=body.num_joints, num_betas=body.num_betas, label=args.train_db)
    model = MeanPoseModel(body, rotmat, betas).to(device).eval()
    return cfg, model, f"mean-pose baseline of {args.train_db}"


def run(args: argparse.Namespace) -> int:
    from maed.eval.run import EvalJob, run_evaluation  # start-up: torch (~2 s) stays out of `maed --help`
    from maed.utils.device import resolve_device  # start-up: torch (~2 s) stays out of `maed --help`

    if args.baseline is None and (args.checkpoint is None or args.train_db is not None):
        raise ConfigError("give --checkpoint CKPT, or --baseline mean-pose --train-db TRAIN_DB (not --train-db alone)")
    check_output_dir(args.out)  # before the checkpoint is read for its config
    cfg = _config(args)
    paths = resolve_paths(cfg.PATHS)
    device = resolve_device(args.device or cfg.DEVICE, explicit=args.device is not None)
    body_model_dir = args.body_model_dir or paths["body_model_dir"]
    model = label = None
    if args.baseline is not None:
        cfg, model, label = _baseline(args, cfg, body_model_dir, device)
    job = EvalJob.from_config(  # the command line, translated once
        cfg,
        checkpoint=args.checkpoint if model is None else args.train_db,
        out_dir=args.out,
        dataset=args.dataset,
        split=args.split,
        db_dir=args.db_dir or paths["db_dir"],
        data_root=args.data_root or paths["dataset_roots"].get(args.dataset),
        body_model_dir=body_model_dir,
        device=device,
        precision=args.precision,
        keypoint_model=args.keypoint_model,
        save_verts=args.save_verts,
        save_inference_pkl=args.save_inference_pkl,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    record = run_evaluation(job, model=model, model_label=label)
    print(format_table(record))
    print(f"results written to {args.out}")
    return 0
