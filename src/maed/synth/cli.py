"""``maed synth``: the command line of the synthetic video generator (``maed.synth.generator``)."""

from __future__ import annotations

import argparse
import shlex

from maed.config import format_override
from maed.errors import ConfigError


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 640x480") from None
    return w, h


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth",
        help="render synthetic training videos of the free Anny body (databases in the real format)",
        description=(
            "Render synthetic videos of one to three Anny bodies (random shapes, smooth random motion, random "
            "camera, light and backgrounds) and write JPEG frames plus synth_{train,val,test}_db.pt into --out, "
            "which is then both PATHS.DB_DIR and the image root of PATHS.DATASET_ROOTS (maed eval: --db-dir "
            "and --data-root); the command prints both commands. Deterministic for a seed; rerunning the same "
            "command resumes an interrupted run."
        ),
    )
    p.add_argument("--out", required=True, help="output folder (new, empty, or holding this same run)")
    p.add_argument("--sequences", type=int, default=200, help="number of sequences (default 200)")
    p.add_argument("--frames", type=int, default=64, help="frames per sequence (default 64)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--size", type=_size, default=(640, 480), help="frame size WIDTHxHEIGHT (default 640x480)")
    p.add_argument("--max-people", type=int, default=3, help="most people per sequence, 1-3 (default 3)")
    p.add_argument("--body-model", default="anny", choices=("anny", "smpl"), help="body model (default anny)")
    p.add_argument(
        "--rig", default=None, help="Anny rig: cmu_mb (31 bones, the default) or anny (104 bones); not for SMPL"
    )
    p.add_argument("--body-model-dir", default=None, help="folder of your SMPL files (with --body-model smpl)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="sequences rendered in parallel processes (default: the CPUs, at most 4)",
    )
    p.add_argument(
        "--people",
        type=int,
        default=0,
        help="exactly this many people in every sequence, 1-3 (default: one to --max-people at random)",
    )
    p.add_argument(
        "--video",
        action="store_true",
        help="also write videos/seq_XXXX.mp4 (H.264) of every sequence and seq_XXXX_gt.npz, its ground truth",
    )
    p.add_argument("--crop-cache", action="store_true", help="also build the databases' crop caches")
    p.add_argument("--crop-cache-size", type=int, default=256, help="side of the cached crops in pixels")
    p.add_argument("--force", action="store_true", help="discard an earlier run in --out and start over")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from maed.synth.generator import generate  # start-up: torch (~2 s) stays out of `maed --help`

    if args.body_model == "smpl" and args.rig:
        raise ConfigError(f"--rig {args.rig}: SMPL has one rig; --rig is for Anny")
    if args.body_model == "anny" and args.body_model_dir:
        raise ConfigError("--body-model-dir is for --body-model smpl; Anny ships with its package")
    width, height = args.size
    summary = generate(
        args.out,
        sequences=args.sequences,
        frames=args.frames,
        seed=args.seed,
        width=width,
        height=height,
        body_model=args.body_model,
        rig=args.rig,
        body_model_dir=args.body_model_dir,
        max_people=args.max_people,
        people=args.people,
        video=args.video,
        workers=args.workers,
        crop_cache=args.crop_cache,
        crop_cache_size=args.crop_cache_size,
        force=args.force,
        progress=not args.quiet,
    )
    resumed = summary.sequences - summary.rendered
    print(
        f"maed synth: {summary.sequences} sequences ({summary.rendered} rendered now, {resumed} already done), "
        f"{summary.frames} frames, {summary.people} people, {summary.rows} rows, {summary.seconds:.0f} s"
    )
    for split, path in summary.databases.items():
        print(f"  {split:5s} {path}")
    for split, path in summary.crop_caches.items():
        print(f"  crop cache ({split}) {path}")
    if summary.videos:
        print(f"  videos {summary.out / 'videos'} ({len(summary.videos)}, each with its _gt.npz)")
    print(f"  metadata {summary.out / 'synth.json'}, preview {summary.out / 'synth_preview.jpg'}")
    for line in next_commands(summary.out, args.body_model, args.rig, args.body_model_dir):
        print(f"  {line}")
    return 0


def next_commands(out, body_model: str, rig: str | None, body_model_dir: str | None) -> list[str]:
    """What to run on the data in ``out``, as shell command lines that work as printed: training with the
    ``synth_tiny`` preset (its body model and rig set to the data's), and evaluating a run of it."""
    overrides = [format_override("PATHS.DB_DIR", out), format_override("PATHS.DATASET_ROOTS", {"synth": out})]
    if body_model == "smpl":
        overrides += ["MODEL.BODY_MODEL=smpl", "MODEL.BODY_RIG="]
        if body_model_dir:
            overrides.append(format_override("PATHS.BODY_MODEL_DIR", body_model_dir))
    elif rig not in (None, "cmu_mb"):  # synth_tiny's rig
        overrides.append(f"MODEL.BODY_RIG={rig}")
    train = ["maed", "train", "--config", "synth_tiny", *overrides]
    data = ["--dataset", "synth", "--db-dir", str(out), "--data-root", str(out)]
    evaluate = ["maed", "eval", "--checkpoint", "RUN_DIR/checkpoints/best.pt", *data, "--out", "RUN_DIR/eval_synth"]
    return [f"train on it:    {shlex.join(train)}", f"evaluate a run: {shlex.join(evaluate)}"]
