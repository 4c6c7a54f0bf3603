"""``maed demo``: a video, a folder of frames or an image in; tracked people, meshes and animation files out."""

from __future__ import annotations

import argparse

from maed.demo.options import KEYPOINT_MODELS, DemoOptions
from maed.demo.source import DEFAULT_FPS
from maed.paths import sample_clip
from maed.perception.detectors import DEFAULT_SIZES, DEFAULT_THRESHOLDS, DETECTOR_CHOICES
from maed.render.overlay import BACKENDS

D = DemoOptions()  # the defaults, stated once there

EPILOG = """\
examples (without --checkpoint: the shipped keypoint model on Anny, checkpoints/maed_kp_anny.pt):
  maed demo                                                           # the sample clip, into output/
  maed demo my_video.mp4 --out output/my_video/                       # your video
  maed demo my_video.mp4 --checkpoint model_best.pth.tar --config configs/config_stage2.yaml \\
            --body-model-dir data/smpl_data --out output/my_video/    # the authors' model, your SMPL files
  maed demo my_video.mp4 --checkpoint best.pt --out output/my_video/  # a checkpoint of `maed train` (its config inside)
  maed demo frames_dir/ --boxes tracks.json                           # your boxes/tracks skip detection

outputs in --out (docs/OUTPUTS.md): overlay.mp4 (overlay_side.mp4 with --side-view; overlay.png for an
image), tracks.npz, results.pkl (VIBE's layout), person_<id>.glb and .bvh, index.html (the overlay and the 3D
bodies in a browser, with viewer/; `maed view OUT` opens it), summary.json; cache/ holds the finished stages,
so a rerun with other rendering or export options skips detection, tracking and inference.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="meshes from your own video: tracked people, overlay video, animation files",
        description="Detect and track people in a video (or a folder of frames, or an image), predict their "
        "meshes with a MAED model, and write an overlay video, per-person arrays and animation files.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "input",
        metavar="INPUT",
        nargs="?",
        default=None,
        help="video file (mp4, mov, avi, mkv, webm), folder of frames, or image (default: the sample clip, "
        "samples/two_people.mp4)",
    )
    p.add_argument(
        "--out", default=str(D.out), help=f"output folder (default {D.out}/; finished stages are reused from it)"
    )
    g = p.add_argument_group("model")
    g.add_argument(
        "--checkpoint",
        default=D.checkpoint,
        help="a maed checkpoint or the authors' model (default: the shipped checkpoints/maed_kp_anny.pt: MAED over "
        "BlazePose landmarks, on Anny)",
    )
    g.add_argument("--config", default=D.config, help="architecture YAML or preset (default: the checkpoint's own)")
    g.add_argument("--body-model-dir", default=D.body_model_dir, help="SMPL files (default: the config's PATHS)")
    g.add_argument("--device", default=D.device, help="cpu, cuda, cuda:1 ... (default: cuda when present)")
    g.add_argument(
        "--batch-size",
        type=int,
        default=D.batch_size,
        help=f"EVAL.SAMPLE_POOL-frame windows per forward pass (default {D.batch_size})",
    )
    g.add_argument(
        "--frame-step",
        type=int,
        default=D.frame_step,
        help="predict every n-th frame and interpolate the rest (default: EVAL.INTERPOLATION)",
    )
    g.add_argument(
        "--precision",
        default=D.precision,
        help=f"the model's inference precision (default {D.precision}): fp32; auto (bfloat16 where the CPU "
        "(AMX, AVX512-BF16) or GPU multiplies it natively, else fp32; faster, less exact); bf16; tf32 (CUDA). "
        "docs/SPEED.md",
    )
    g = p.add_argument_group("detection and tracking")
    g.add_argument("--boxes", default=D.boxes, help="JSON file of per-frame boxes (and track ids): skips detection")
    g.add_argument(
        "--detector",
        choices=DETECTOR_CHOICES,
        default=D.detector,
        help=f"{D.detector} (default): --boxes, else --detector-weights, else the shipped MoveNet network, else "
        "OpenCV HOG (docs/MODELS.md)",
    )
    g.add_argument(
        "--detector-weights",
        default=D.detector_weights,
        help="local torchvision Faster/Keypoint R-CNN .pth, or YOLO .pt (needs ultralytics)",
    )
    g.add_argument(
        "--detector-threshold",
        type=float,
        default=D.detector_threshold,
        help="minimum detection score (default: " + ", ".join(f"{v} {k}" for k, v in DEFAULT_THRESHOLDS.items()) + ")",
    )
    g.add_argument(
        "--detector-size",
        type=int,
        default=D.detector_size,
        help="shorter side in pixels the detector works at (default: "
        + ", ".join(f"{v} {k}" for k, v in DEFAULT_SIZES.items() if v)
        + "); for movenet the longer side of its finer pass, a multiple of 32 (default: chosen per frame size)",
    )
    g.add_argument(
        "--detect-every",
        type=int,
        default=D.detect_every,
        help=f"run the detector on every n-th frame only; the tracker fills the others (default {D.detect_every})",
    )
    g.add_argument(
        "--fine-pass-every",
        type=int,
        default=D.fine_pass_every,
        help="movenet on frames of 600 px or more: its finer pass (small people) runs on every frame while it finds "
        f"someone the first pass missed, else on every n-th frame (default {D.fine_pass_every}; 1: every frame)",
    )
    g.add_argument(
        "--keypoint-model",
        choices=KEYPOINT_MODELS,
        default=D.keypoint_model,
        help=f"BlazePose landmarks per person (default {D.keypoint_model}; heavy needs "
        "scripts/perception/make_weights.sh heavy; none skips them)",
    )
    g.add_argument(
        "--keypoints-only",
        action="store_true",
        help="people and their 2D/3D keypoints, with a skeleton overlay; no mesh model is loaded",
    )
    g.add_argument(
        "--min-track-length",
        type=int,
        default=D.min_track_length,
        help=f"drop tracks shorter than this many frames (default {D.min_track_length}; capped at the input's length)",
    )
    g.add_argument(
        "--max-age", type=int, default=D.max_age, help=f"frames a track survives without a detection ({D.max_age})"
    )
    g.add_argument(
        "--iou-threshold",
        type=float,
        default=D.iou_threshold,
        help=f"minimum IoU to link a box to a track ({D.iou_threshold})",
    )
    g.add_argument("--no-box-smoothing", action="store_true", help="use the detector's boxes unsmoothed")
    g = p.add_argument_group("outputs")
    g.add_argument("--smooth", action="store_true", help="One-Euro filter on pose and camera (forward and back)")
    g.add_argument(
        "--smooth-min-cutoff",
        type=float,
        default=D.smooth_min_cutoff,
        help=f"One-Euro cut-off at rest, Hz ({D.smooth_min_cutoff})",
    )
    g.add_argument(
        "--smooth-beta", type=float, default=D.smooth_beta, help=f"One-Euro speed coefficient ({D.smooth_beta})"
    )
    g.add_argument(
        "--fps",
        type=float,
        default=D.fps,
        help=f"frame rate of a folder or image input (default {DEFAULT_FPS:g}); overrides a video's own",
    )
    g.add_argument("--save-verts", action="store_true", help="also store every frame's vertices in tracks.npz")
    g.add_argument("--no-export", action="store_true", help="no person_<id>.glb / .bvh")
    g.add_argument("--no-render", action="store_true", help="no overlay video: files only")
    g.add_argument("--no-viewer", action="store_true", help="no index.html (the overlay and 3D bodies in a browser)")
    g.add_argument(
        "--side-view", action="store_true", help="also write overlay_side.mp4, the meshes seen from the side"
    )
    g.add_argument(
        "--renderer",
        choices=BACKENDS,
        default=D.renderer,
        help=f"{D.renderer} (default): shaded OpenGL when it works, else flat-shaded meshes drawn without OpenGL",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def options_from_args(args: argparse.Namespace) -> DemoOptions:
    return DemoOptions(
        out=args.out,
        checkpoint=args.checkpoint,
        config=args.config,
        body_model_dir=args.body_model_dir,
        device=args.device,
        boxes=args.boxes,
        detector=args.detector,
        detector_weights=args.detector_weights,
        detector_threshold=args.detector_threshold,
        detector_size=args.detector_size,
        detect_every=args.detect_every,
        fine_pass_every=args.fine_pass_every,
        keypoint_model=args.keypoint_model,
        keypoints_only=args.keypoints_only,
        iou_threshold=args.iou_threshold,
        max_age=args.max_age,
        min_track_length=args.min_track_length,
        box_smoothing=not args.no_box_smoothing,
        batch_size=args.batch_size,
        frame_step=args.frame_step,
        precision=args.precision,
        smooth=args.smooth,
        smooth_min_cutoff=args.smooth_min_cutoff,
        smooth_beta=args.smooth_beta,
        fps=args.fps,
        save_verts=args.save_verts,
        export=not args.no_export,
        render=not args.no_render,
        viewer=not args.no_viewer,
        side_view=args.side_view,
        renderer=args.renderer,
        progress=not args.no_progress,
    )


def format_summary(summary: dict) -> str:
    """The lines printed at the end of a run."""
    info = summary["input"]
    lines = [
        f"input: {info['path']} ({info['kind']}, {info['width']} x {info['height']}, {summary['frames']} frames at "
        f"{info['fps']:.3g} fps)",
        f"detector: {summary['detector']['tier']} ({summary['detector']['reason']})",
        f"keypoints: {summary['keypoints']['model'] or 'none'}",
        f"people: {summary['num_people']}"
        + "".join(
            f"\n  person {p['id']}: frames {p['first_frame']}-{p['last_frame']} ({p['frames']})"
            for p in summary["people"]
        ),
        "stages: "
        + ", ".join(
            f"{name} "
            + ("cached" if s["cached"] else f"{s['seconds']:.1f} s" + (f" ({s['fps']:.1f} fps)" if s["fps"] else ""))
            for name, s in summary["stages"].items()
        ),
    ]
    r = summary.get("renderer")
    if r and r.get("backend") is None:
        lines.append(f"renderer: nothing drawn ({r.get('note') or 'no person to draw'})")
    elif r:
        lines.append(f"renderer: {r['backend']}" + (f" ({r['fallback_reason']})" if r.get("fallback_reason") else ""))
    lines.append(f"total: {summary['seconds']:.1f} s ({summary['fps'] or 0:.2f} frames/s)")
    lines.append("outputs: " + ", ".join(summary["outputs"]))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from maed.demo.pipeline import run_demo  # start-up: torch (~2 s) stays out of `maed --help`

    summary = run_demo(args.input if args.input is not None else sample_clip(), options_from_args(args))
    print(format_summary(summary))
    print(f"results written to {Path(args.out)}")
    return 0
