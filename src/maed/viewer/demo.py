"""The viewer page of a ``maed demo`` output folder: ``index.html`` (docs/OUTPUTS.md).

Built from the folder's files alone (``tracks.npz`` for the people's frames and the frame rate, the person GLBs,
``overlay.mp4``), so the demo calls it as one stage after its others, and ``maed view`` can build it for a folder
written without it (``--no-viewer``, or an older maed).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from maed.errors import DataError
from maed.viewer.page import ViewerPerson, write_page

PAGE_FILE = "index.html"
TRACKS_FILE = "tracks.npz"  # maed.demo.outputs.TRACKS_FILE (not imported: that module loads torch)
OVERLAY_FILE = "overlay.mp4"  # maed.demo.outputs.OVERLAY_FILE


def write_demo_page(out_dir: str | os.PathLike, outputs: Iterable[str], *, title: str | None = None) -> list[str]:
    """Write ``out_dir/index.html`` and its ``viewer/`` files for a demo run; returns their names relative to
    ``out_dir`` (for ``summary.json``'s ``outputs``).

    Args:
        out_dir: the run's ``--out`` folder, holding its ``tracks.npz``.
        outputs: the files of this run (names relative to ``out_dir``): the page shows ``overlay.mp4`` and each
            ``person_<id>.glb`` only when listed, so files an earlier run left behind are never shown.
        title: the page's title (default: ``maed demo: <folder name>``).
    """
    out_dir = Path(out_dir)
    outputs = set(outputs)
    tracks = out_dir / TRACKS_FILE
    if not tracks.is_file():
        raise DataError(f"{out_dir}: holds no {TRACKS_FILE}; expected the --out folder of `maed demo`")
    try:
        with np.load(tracks, allow_pickle=False) as z:
            ids = [int(i) for i in z["person_ids"]]
            fps, num_frames = float(z["fps"]), int(z["num_frames"])
            width, height = (int(v) for v in z["image_size"])
            focal = float(z["focal_length"])
            spans = {pid: z[f"person_{pid}/frame_ids"] for pid in ids}
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise DataError(f"{tracks}: not a readable demo tracks file ({type(e).__name__}: {e})") from None

    people = [
        ViewerPerson(id=pid, glb=out_dir / f"person_{pid}.glb", first_frame=int(f[0]), last_frame=int(f[-1]))
        for pid, f in spans.items()
        if f"person_{pid}.glb" in outputs and len(f)
    ]
    note = None
    if not ids:
        note = "nobody was tracked in this run (summary.json's messages say what to try)"
    elif not people:
        note = "no 3D bodies: this run wrote no person_<id>.glb files (maed demo --no-export or --keypoints-only)"
    written = write_page(
        out_dir / PAGE_FILE,
        people=people,
        fps=fps,
        num_frames=num_frames,
        width=width,
        height=height,
        video=out_dir / OVERLAY_FILE if OVERLAY_FILE in outputs else None,
        focal=focal,
        title=title or f"maed demo: {out_dir.resolve().name}",
        note=note,
    )
    return [p.relative_to(out_dir).as_posix() for p in written]
