"""Viewer benchmark: how long the result page (index.html, ``maed.viewer``) takes to open in headless Chromium, and
how many bytes it adds to a run's outputs (issue 19: under 2 s for two people over 10 seconds, under 1 MB beyond
the GLBs).

By default it builds such a run's files itself: a 640 x 480 H.264 video of 300 frames at 30 fps and two GLBs of
the Anny body on the shipped model's ``cmu_mb`` rig, 300 keys each (the size ``maed demo`` writes for 10 seconds
of two people), then the page through ``maed.viewer.page.write_page``. ``--run DIR`` measures a ``maed demo``
output folder instead. Each repeat starts a fresh browser (new process, empty profile) and opens the page from
file://; the time is the page's own (``maedViewer.loadMs``: from navigation start until both people are drawn
and the video shows frame 0), then a second open in the same browser (warm).

    python benchmarks/bench_viewer.py --repeats 5
    python benchmarks/bench_viewer.py --run output/ --out bench_viewer.json

Needs Debian's chromium and chromium-driver (``tests/viewer/browser.py`` drives them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/viewer/browser.py

FPS, FRAMES, WIDTH, HEIGHT = 30.0, 300, 640, 480


def build_run(folder: Path) -> Path:
    """Two walking people over 10 seconds: the overlay-sized video, their GLBs and the page; returns the page."""
    from scipy.spatial.transform import Rotation

    from maed.body import build_body_model
    from maed.export.gltf import write_glb
    from maed.export.rig import rig_from_body_model
    from maed.render.overlay import track_color
    from maed.render.video import VideoWriter
    from maed.viewer.page import ViewerPerson, write_page

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    with VideoWriter(folder / "overlay.mp4", fps=FPS, width=WIDTH, height=HEIGHT) as video:
        for i in range(FRAMES):  # a drifting pattern with grain: about the bit rate of a filmed scene
            pattern = 128 + 60 * np.sin((xs + 3 * i) / 23.0) * np.cos((ys - 2 * i) / 17.0)
            image = np.stack([pattern, pattern * 0.8 + 30, 200 - pattern * 0.5], axis=-1)
            image += rng.normal(scale=6, size=image.shape)
            video.write(np.clip(image, 0, 255).astype(np.uint8))

    body = build_body_model("anny", rig="cmu_mb")
    labels, J = body.bone_labels, body.num_joints
    t = np.arange(FRAMES) / FPS
    people = []
    for pid, start_x in ((1, -1.2), (2, 0.6)):
        wave = np.sin(2 * np.pi * 0.9 * t + pid)[:, None]
        rotmat = np.tile(np.eye(3), (FRAMES, J, 1, 1))
        rotmat[:, 0] = np.diag([1.0, -1.0, -1.0])  # upright in the camera frame, facing the camera
        for bone, axis, degrees in (("LeftArm", "z", -60 + 20 * wave), ("RightArm", "z", 60 - 20 * wave),
                                    ("LeftUpLeg", "x", 30 * wave), ("RightUpLeg", "x", -30 * wave)):  # fmt: skip
            rotmat[:, labels.index(bone)] = Rotation.from_euler(axis, degrees, degrees=True).as_matrix()
        trans = np.stack([start_x + 0.06 * t, np.full(FRAMES, 0.3), np.full(FRAMES, 5.0)], axis=1)
        glb = folder / f"person_{pid}.glb"
        write_glb(glb, rig_from_body_model(body), rotmat, trans, FPS, name=glb.stem, color=track_color(pid))
        people.append(ViewerPerson(id=pid, glb=glb, first_frame=0, last_frame=FRAMES - 1))
    page = folder / "index.html"
    write_page(page, people=people, fps=FPS, num_frames=FRAMES, width=WIDTH, height=HEIGHT,
               video=folder / "overlay.mp4", title="bench_viewer: two people, 10 s")  # fmt: skip
    return page


def sizes(page: Path) -> dict:
    """Bytes the viewer adds (its files), of which the GLBs' embedded copies, and the GLB files themselves."""
    from maed.viewer.page import ASSET_DIR, data_file

    data = json.loads(data_file(page).read_text().split("window.MAED_VIEWER = ", 1)[1].rstrip().rstrip(";"))
    viewer_files = [page, *sorted((page.parent / ASSET_DIR).iterdir())]
    total = sum(p.stat().st_size for p in viewer_files)
    copies = sum(len(v) for v in data["glb"].values())
    glbs = sum((page.parent / p["glb"]).stat().st_size for p in data["scene"]["people"])
    return {
        "files": {str(p.relative_to(page.parent)): p.stat().st_size for p in viewer_files},
        "viewer_total": total,
        "embedded_glb_copies": copies,
        "viewer_beyond_glbs": total - copies,
        "glb_files": glbs,
    }


def open_times(page: Path, repeats: int) -> dict:
    from tests.viewer.browser import Browser

    cold, warm = [], []
    script = "return window.maedViewer.ready.then(() => window.maedViewer.loadMs)"
    for _ in range(repeats):
        with Browser.start(width=1400, height=700) as browser:
            browser.open(page)
            cold.append(browser.run(script))
            browser.open(page)
            warm.append(browser.run(script))
            severe = [text for level, text in browser.console() if level == "SEVERE"]
            if severe:
                raise SystemExit(f"console errors: {severe}")

    def stats(values):
        return {"median": round(statistics.median(values)), "min": round(min(values)), "max": round(max(values))}

    return {"cold_ms": stats(cold), "warm_ms": stats(warm), "cold_all": [round(v) for v in cold]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default=None, help="a `maed demo` output folder (default: build a 10 s run)")
    parser.add_argument("--repeats", type=int, default=5, help="fresh browsers to open the page in (default 5)")
    parser.add_argument("--out", default=None, help="also write the results as JSON")
    args = parser.parse_args()

    if args.run:
        page = Path(args.run) / "index.html"
    else:
        page = build_run(Path(tempfile.mkdtemp(prefix="maed_bench_viewer_")))
    load_before = os.getloadavg()[0]
    result = {
        "page": str(page),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_average": round(load_before, 1),
        "sizes": sizes(page),
        **open_times(page, args.repeats),
    }
    result["load_average_after"] = round(os.getloadavg()[0], 1)
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
