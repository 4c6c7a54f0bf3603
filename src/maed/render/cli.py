"""``maed render``: draw the meshes of ``maed eval``'s predictions over the dataset's frames."""

from __future__ import annotations

import argparse

from maed.config import load_config
from maed.errors import ConfigError
from maed.paths import resolve_paths
from maed.render.predictions import load_predictions, render_predictions

EPILOG = """\
example:
  maed eval --checkpoint model_best.pth.tar --config configs/config_stage2.yaml \\
            --body-model-dir data/smpl_data --data-root data/3dpw --out results/eval_3dpw --save-verts
  maed render results/eval_3dpw --root data/3dpw --body-model-dir data/smpl_data --out visual/

writes one video per folder of frames (visual/<video>.mp4, or visual/<video>/<frame>.png with
--format png), every person of a frame in one image, one colour per person. Without saved vertices
(--save-verts) the meshes are rebuilt from theta with the body model. Finished videos are kept on a
rerun (--overwrite redraws them). Without a working headless OpenGL the meshes are drawn flat-shaded
with OpenCV, and the command says which system package gives the shaded render. With --viewer, each
video also gets a page (visual/<video>.html, listed in visual/index.html; `maed view visual/` opens it)
that shows it beside its people's animated 3D bodies (visual/<video>_people/person_<k>.glb).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "render",
        help="draw meshes of `maed eval` predictions over the dataset's frames",
        description="Draw the predicted meshes of an evaluation directory over the dataset's own frames "
        "(the original visualize.py).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("eval_dir", metavar="EVAL_DIR", help="the --out directory of `maed eval` (predictions.npz)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--root",
        default=None,
        help="image root of the evaluated dataset (default: the config's PATHS for the dataset in metrics.json)",
    )
    p.add_argument("--body-model-dir", default=None, help="SMPL files (default: the config's PATHS)")
    p.add_argument(
        "--body-model",
        default=None,
        choices=("smpl", "anny"),
        help="body model of the predictions (default: from metrics.json, else from the array sizes)",
    )
    p.add_argument(
        "--config", default=None, help="YAML file or preset whose PATHS and MODEL.BODY_MODEL give the defaults"
    )
    p.add_argument("--sequence", default=None, help="only this video (folder name) or person (sequence name)")
    p.add_argument("--max-frames", type=int, default=None, help="only the first N frames of each video")
    p.add_argument("--format", default="mp4", choices=("mp4", "png"), help="H.264 video (default) or PNG frames")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate of the videos (default 30, as 3DPW)")
    p.add_argument("--side-view", action="store_true", help="also draw the people turned 90 degrees (<video>_side)")
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "gl", "opencv"),
        help="auto (default): OpenGL when it works, else OpenCV; gl: fail without OpenGL",
    )
    p.add_argument(
        "--no-antialias", action="store_true", help="hard mesh edges (about twice as fast with Mesa's llvmpipe)"
    )
    p.add_argument(
        "--viewer",
        action="store_true",
        help="also write <video>.html per video: it beside its people's 3D bodies in a browser (GLBs in "
        "<video>_people/; index.html lists the pages; mp4 only)",
    )
    p.add_argument("--overwrite", action="store_true", help="redraw outputs that already exist")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.viewer and args.format != "mp4":
        raise ConfigError("--viewer shows the videos beside the bodies: it needs --format mp4 (the default)")
    cfg = load_config(args.config) if args.config is not None else None
    paths = resolve_paths((cfg or load_config()).PATHS)
    pred = load_predictions(args.eval_dir)
    # the option, then the evaluation's own record, then the config; else recognised from the arrays
    body_model = args.body_model or pred.body_model or (cfg.MODEL.BODY_MODEL if cfg is not None else None)
    root = args.root
    if root is None and pred.dataset:
        root = paths["dataset_roots"].get(pred.dataset)
        if root is not None and not Path(root).is_dir():
            root = None  # no default tree here: use the paths as the evaluation stored them
    # what to draw: the same videos, frames and body for the overlay and for the viewer pages
    selection = dict(
        root=root,
        body_model=body_model,
        body_model_dir=args.body_model_dir or paths["body_model_dir"],
        sequence=args.sequence,
        max_frames=args.max_frames,
        fps=args.fps,
    )
    report = render_predictions(
        args.eval_dir,
        args.out,
        **selection,
        fmt=args.format,
        side_view=args.side_view,
        backend=args.backend,
        antialias=not args.no_antialias,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    if report.fallback_reason:
        print(f"maed render: {report.fallback_reason}")
    for path in report.written:
        print(f"wrote {path}")
    for path in report.kept:
        print(f"kept {path} (exists; --overwrite redraws it)")
    print(f"{report.frames} frames drawn ({report.backend or 'nothing to draw'}) into {args.out}")
    if args.viewer:
        # start-up: keeps `maed --help` light (torch loads only when used)
        from maed.viewer.evaluation import write_eval_pages

        pages = write_eval_pages(args.eval_dir, args.out, **selection)
        print(f"wrote {len(pages) - 1} viewer pages, listed in {pages[-1]} (maed view {args.out})")
    return 0
