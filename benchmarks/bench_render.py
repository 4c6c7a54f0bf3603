"""Overlay rendering benchmark: seconds per 720p frame with one and three people, and H.264 encoding.

The body is the free Anny mesh (13,718 vertices, 27,420 triangles; SMPL has half as many), about 60 %
of the frame's height, over a textured frame; three people stand side by side at different scales.
Both backends are timed (``gl``: pyrender on the headless platform of ``maed.render.gl``; ``gl-aa``: the
same with antialiased edges; ``opencv``: the numpy fallback), as wall-clock and as CPU seconds of the
whole process (Mesa's llvmpipe draws on threads), median over ``--frames`` frames after a warm-up.
Encoding times ``VideoWriter`` on the rendered frames, flush included.

    python benchmarks/bench_render.py --out bench_render.json
    python benchmarks/bench_render.py --width 1920 --height 1080 --backends gl
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from maed.bench.common import cpu_name


def _anny_mesh() -> tuple[np.ndarray, np.ndarray]:
    """Anny's average body, arms lowered a little, in the model frame (y down, facing the camera)."""
    import torch

    from maed.body import build_body_model
    from maed.body.geometry import axis_angle_to_rotmat

    body = build_body_model("anny")
    J = body.num_joints
    aa = torch.zeros(1, J, 3)
    aa[0, 0, 0] = np.pi  # upright in the camera frame, as predictions are
    for name, angle in (("upperarm01.L", -0.6), ("upperarm01.R", 0.6)):
        if name in body.bone_labels:
            aa[0, body.bone_labels.index(name), 2] = angle
    with torch.no_grad():
        verts = body(axis_angle_to_rotmat(aa), torch.zeros(1, body.num_betas)).vertices[0].numpy()
    return verts.astype(np.float32), body.faces.numpy()


def _time(fn, frames: int, warmup: int = 2) -> dict:
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(frames):
        c, t = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"wall_s": float(np.median(wall)), "cpu_s": float(np.median(cpu)), "wall_min_s": float(min(wall))}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--frames", type=int, default=20, help="timed frames per setting (default 20)")
    p.add_argument(
        "--backends", default="gl,gl-aa,opencv", help="comma-separated: gl, gl-aa (antialiased), opencv (default all)"
    )
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)

    from maed.render.overlay import OverlayRenderer, PersonDraw, track_color
    from maed.render.video import VideoWriter

    W, H = args.width, args.height
    verts, faces = _anny_mesh()
    height_m = float(verts[:, 1].max() - verts[:, 1].min())
    frame = np.random.default_rng(0).integers(0, 256, size=(H, W, 3), dtype=np.uint8)

    def cam(scale, cx, cy):
        sy = scale / height_m
        sx = sy * H / W
        return np.array([sx, sy, cx / sx, cy / sy])

    crowd = [
        PersonDraw(verts, cam(s, cx, cy), track_color(i))
        for i, (s, cx, cy) in enumerate([(1.2, 0.0, 0.05), (0.9, -0.6, 0.0), (1.0, 0.6, -0.05)])
    ]
    results: dict = {
        "cpu": cpu_name(),
        "frame": [W, H],
        "mesh": {"vertices": int(len(verts)), "faces": int(len(faces))},
        "render": {},
    }
    last = frame
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        kind = backend.split("-")[0]
        with OverlayRenderer(W, H, faces, backend=kind, antialias=backend.endswith("-aa")) as r:
            if r.backend != kind:
                results["render"][backend] = {"skipped": r.fallback_reason}
                continue
            for n in (1, 3):
                timing = _time(lambda n=n: r.render(frame, crowd[:n]), args.frames)
                results["render"][f"{backend}_{n}_people"] = timing
                print(f"{backend:6s} {n} people: {timing['wall_s']:.4f} s/frame wall, {timing['cpu_s']:.4f} s CPU")
            last = r.render(frame, crowd)
    # x264 buffers frames (lookahead, threads): time the whole file, flush included
    n_encode = max(args.frames, 30)
    with tempfile.TemporaryDirectory() as tmp:
        c, t = time.process_time(), time.perf_counter()
        with VideoWriter(Path(tmp) / "bench.mp4", fps=30, width=W, height=H) as w:
            for _ in range(n_encode):
                w.write(last)
        timing = {"wall_s": (time.perf_counter() - t) / n_encode, "cpu_s": (time.process_time() - c) / n_encode}
    results["encode"] = timing
    print(f"encode (x264 veryfast, crf 20): {timing['wall_s']:.4f} s/frame wall, {timing['cpu_s']:.4f} s CPU")
    print(f"CPU: {results['cpu']}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
