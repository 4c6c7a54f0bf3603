"""Demo benchmark: frames/s of each stage of ``maed demo`` on a generated 720p clip, and which stage dominates.

The clip (default 1280 x 720, 128 frames at 30 fps: one evaluation window) shows one person, the Anny body
model rendered with pyrender over a textured background (``tests/demo/demo_fixtures.py``, the demo tests'
own generator). The
model is a randomly initialised one of ``--config`` (default: the stage-2 architecture over the Anny body,
13,718 vertices and 27,420 faces), or ``--checkpoint``. Random weights cost the same time as trained ones,
but their meshes would be drawn at random sizes: so the random model runs in full over every crop (timed
as crop and infer), and its outputs are then replaced by the clip's true pose and camera, so that the
render, encode and export stages draw and write the person a trained model would.

Stages (``maed.demo.stages``): decode (all passes), detect (OpenCV HOG by default), track, crop, infer,
post (body model, cameras), write (tracks.npz, results.pkl), export (GLB + BVH), render (meshes over the
frames) and encode (H.264).
The demo's total frames/s is input frames over the whole run's wall time (model loading excluded).

    python benchmarks/bench_demo.py --out bench_demo.json
    python benchmarks/bench_demo.py --precision auto --detect-every 2 --data /tmp/maed_bench_demo

Generated files are kept in ``--data`` (default: a temporary directory) and reused by later runs.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from maed.bench.common import cpu_name
from maed.demo.options import DemoOptions

ROOT = Path(__file__).resolve().parents[1]
#: the stages in pipeline order, as the summary names them
STAGES = ("decode", "detect", "track", "crop", "infer", "post", "write", "export", "render", "encode")


def _fixtures():
    """tests/demo/demo_fixtures.py, the clip generator the demo tests use."""
    path = ROOT / "tests" / "demo" / "demo_fixtures.py"
    spec = importlib.util.spec_from_file_location("demo_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


def _model(data: Path, config: str, overrides: list[str]) -> Path:
    import torch

    from maed.config import load_config
    from maed.models import build_model
    from maed.models.checkpoint import make_checkpoint

    cfg = load_config(config, ["MODEL.BODY_MODEL=anny", *overrides])
    tag = hashlib.sha256(" ".join([config, *overrides]).encode()).hexdigest()[:10]
    path = data / f"model_{tag}.pt"
    if not path.is_file():
        torch.manual_seed(0)
        model = build_model(cfg)
        torch.save(make_checkpoint(model, config=cfg.to_dict()), path)
    return path


class NetworkThenTruth:
    """The network's full work over every crop (timed by the demo), then the clip's truth as its output."""

    def __init__(self, network, oracle):
        self.network, self.oracle = network, oracle
        self.body_model, self.signature = network.body_model, network.signature

    def predict(self, tracks, frames, **kw):
        self.network.predict(tracks, frames, **kw)
        return self.oracle.predict(tracks, None)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="folder for the generated clip and model (default: temporary)")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--frames", type=int, default=128, help="frames of the generated clip (default 128)")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--config", default="stage2", help="architecture of the random model (default stage2)")
    p.add_argument("--checkpoint", default=None, help="time this checkpoint instead of a random model")
    p.add_argument("--body-model-dir", default=None, help="SMPL files for --checkpoint")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "tf32"),
        default=DemoOptions.precision,
        help=f"the demo's --precision (default {DemoOptions.precision}, the demo's own; auto: bf16 where the CPU or "
        "GPU multiplies it natively)",
    )
    p.add_argument("--batch-size", type=int, default=2, help="128-frame windows per forward (default 2)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--detector", default="auto", help="--detector of maed demo (default auto: HOG)")
    p.add_argument("--detect-every", type=int, default=1, help="--detect-every of maed demo (default 1)")
    p.add_argument("--renderer", default="auto", help="--renderer of maed demo")
    p.add_argument("--side-view", action="store_true", help="also render the side view")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides for the random model")
    args = p.parse_args(argv)

    import torch

    from maed.demo.pipeline import run_demo

    tmp = None
    if args.data is None:
        tmp = tempfile.TemporaryDirectory(prefix="maed_bench_demo_")
        data = Path(tmp.name)
    else:
        data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    fixtures = _fixtures()
    clip_path = data / f"person_{args.width}x{args.height}_{args.frames}f_{args.fps:g}fps.mp4"
    truth_path = clip_path.with_suffix(".truth.npz")
    t0 = time.perf_counter()
    if not (clip_path.is_file() and truth_path.is_file()):
        clip = fixtures.render_person_clip(
            clip_path, width=args.width, height=args.height, num_frames=args.frames, fps=args.fps, crf=20
        )
        np.savez(truth_path, rotmat=clip.rotmat, betas=clip.betas, trans=clip.trans, focal=clip.focal)
    with np.load(truth_path) as z:
        clip = fixtures.PersonClip(path=clip_path, width=args.width, height=args.height, fps=args.fps,
                                   focal=float(z["focal"]), rotmat=z["rotmat"], betas=z["betas"], trans=z["trans"],
                                   masks=None, boxes=None)  # fmt: skip
    t_clip = time.perf_counter() - t0
    checkpoint = args.checkpoint or _model(data, args.config, args.overrides)
    out = data / "out"
    if out.exists():  # time every stage: nothing cached from an earlier run
        import shutil

        shutil.rmtree(out)
    options = DemoOptions(
        out=out,
        checkpoint=checkpoint,
        body_model_dir=args.body_model_dir,
        device=args.device,
        detector=args.detector,
        detect_every=args.detect_every,
        min_track_length=min(25, args.frames),
        batch_size=args.batch_size,
        precision=args.precision,
        side_view=args.side_view,
        renderer=args.renderer,
        progress=False,
    )
    predictor = None
    t0 = time.perf_counter()
    if not args.checkpoint:  # the random network runs in full, then the truth is drawn (module docstring)
        from maed.demo.model import build_predictor, resolve_model

        spec = resolve_model(options)
        network = build_predictor(spec, options, spec.signature())
        predictor = NetworkThenTruth(network, fixtures.OraclePredictor(clip, network.body_model))
    t_load = time.perf_counter() - t0
    summary = run_demo(clip_path, options, predictor=predictor, log=lambda m: print(f"  demo: {m}"))
    stages = {name: summary["stages"][name] for name in STAGES if name in summary["stages"]}
    load_s = summary["stages"].get("load_model", {}).get("seconds", t_load)
    run_s = summary["seconds"] - summary["stages"].get("load_model", {}).get("seconds", 0.0)
    busiest = max(stages, key=lambda n: stages[n]["seconds"])
    device = summary["model"].get("device", "cpu")
    results = {
        "machine": {
            "cpu": cpu_name(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name(0) if str(device).startswith("cuda") else cpu_name(),
            "platform": platform.platform(),
        },
        "setup": {
            "clip": [args.width, args.height, args.frames, args.fps],
            "config": None if args.checkpoint else [args.config, *args.overrides],
            "checkpoint": str(args.checkpoint) if args.checkpoint else None,
            "precision": args.precision,
            "batch_size": args.batch_size,
            "detector": summary["detector"]["tier"],
            "detect_every": args.detect_every,
            "renderer": summary["renderer"],
            "people": summary["num_people"],
            "generate_clip_s": round(t_clip, 2),
        },
        "stages": stages,
        "load_model_s": round(load_s, 3),
        "total_s": round(run_s, 3),
        "total_fps": round(args.frames / run_s, 3),
        "dominant_stage": busiest,
    }
    where = results["machine"]["device"]
    print(f"maed demo on a generated {args.width} x {args.height} clip, {args.frames} frames ({where})")
    print(f"{'stage':>8s} {'seconds':>9s} {'frames':>7s} {'frames/s':>9s} {'share':>6s}")
    total = sum(s["seconds"] for s in stages.values()) or 1.0
    for name, s in stages.items():
        fps = f"{s['fps']:9.1f}" if s["fps"] else f"{'-':>9s}"
        print(f"{name:>8s} {s['seconds']:9.2f} {s['frames']:7d} {fps} {100 * s['seconds'] / total:5.0f}%")
    print(
        f"total {run_s:.1f} s for {args.frames} frames: {results['total_fps']:.2f} frames/s "
        f"(without model loading, {load_s:.1f} s); dominant stage: {busiest}"
    )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    if tmp is not None:
        tmp.cleanup()
    return results


if __name__ == "__main__":
    main()
