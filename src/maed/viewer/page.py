"""The viewer page: an HTML file that shows a video and people's animated GLB bodies side by side, one timeline
for both, opened straight from disk (docs/OUTPUTS.md, "index.html").

Files, for a page ``<folder>/<name>.html``::

    <name>.html                 the page (layout and styles; a few kB)
    viewer/three.min.js         three.js (the parts the viewer uses, with OrbitControls and GLTFLoader), vendored
                                from npm (scripts/vendor_three.sh); MIT, its licence in viewer/three.LICENSE
    viewer/viewer.js            the viewer itself (maed.viewer's viewer.js)
    viewer/<name>.data.js       the scene (frame rate, frames, people, colours) and each person's GLB bytes

A page opened from ``file://`` may run scripts next to it but may not read other files (browsers block fetch and
XHR there, and ES modules), so the GLBs travel as script data: zlib-deflated, then base64 (about 0.9 x the GLB's
size for the demo's files). The video is an ordinary ``<video src>``, which ``file://`` pages may show.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import string
import urllib.parse
import zlib
from dataclasses import dataclass
from pathlib import Path

from maed.errors import DataError
from maed.render.overlay import track_color
from maed.utils.io import atomic_write_bytes, remove_stale_temporaries

#: folder of the page's scripts, next to the page
ASSET_DIR = "viewer"
THREE_FILE = "three.min.js"
THREE_LICENSE_FILE = "three.LICENSE"
APP_FILE = "viewer.js"
_HERE = Path(__file__).resolve().parent
#: the package's files copied next to each page: (source, name in ASSET_DIR)
_ASSETS = (
    (_HERE / "vendor" / THREE_FILE, THREE_FILE),
    (_HERE / "vendor" / THREE_LICENSE_FILE, THREE_LICENSE_FILE),
    (_HERE / APP_FILE, APP_FILE),
)
_GLB_MAGIC = b"glTF"


@dataclass
class ViewerPerson:
    """One person of a page: their GLB (one animation key per frame from ``first_frame`` to ``last_frame`` of the
    video, key 0 at time 0, as ``maed.export.gltf.write_glb`` writes them) and how the page lists them."""

    id: int
    glb: Path
    first_frame: int
    last_frame: int
    name: str | None = None  # None: "person <id>"
    color: tuple[float, float, float] | None = None  # RGB in [0, 1]; None: maed.render.overlay.track_color(id)


def data_file(page: str | os.PathLike) -> Path:
    """The data script of a page (``<folder>/viewer/<name>.data.js``)."""
    page = Path(page)
    return page.parent / ASSET_DIR / f"{page.stem}.data.js"


def write_page(
    page: str | os.PathLike,
    *,
    people: list[ViewerPerson],
    fps: float,
    num_frames: int,
    width: int,
    height: int,
    video: str | os.PathLike | None = None,
    focal: float | None = None,
    title: str = "maed",
    info: str | None = None,
    note: str | None = None,
) -> list[Path]:
    """Write a viewer page and the files it loads (module docstring); returns the paths written.

    Args:
        page: the HTML file to write (``.html``); its folder must hold ``video`` and the GLBs.
        people: the people to show, each with a GLB file.
        fps: frames per second of the video and of the GLBs' keys.
        num_frames: frames of the timeline (the video's frames: 0 .. num_frames - 1).
        width, height: the video's size in pixels (with ``focal``, the field of view of the first 3D view).
        video: the video file (H.264 mp4), or None for a page with the 3D view alone.
        focal: the video camera's focal length in pixels (default: the image diagonal, as
            ``maed.demo.outputs.nominal_focal``): the 3D view starts at the camera that filmed the people.
        title: the page's title; ``info``: a line beside it (default: people, frames and frame rate).
        note: a line shown over the 3D view (why it is empty, for instance).
    """

    page = Path(page)
    folder = page.parent
    if not (math.isfinite(fps) and fps > 0):
        raise DataError(f"viewer page {page}: frame rate {fps}; expected a positive number of frames per second")
    if num_frames < 1 or width < 1 or height < 1:
        raise DataError(f"viewer page {page}: {num_frames} frames of {width} x {height}; expected at least 1 x 1 x 1")
    if video is not None and not Path(video).is_file():
        raise DataError(f"viewer page {page}: video {video} not found")

    scene_people, glbs = [], {}
    for p in people:
        if not (0 <= p.first_frame <= p.last_frame < num_frames):
            raise DataError(
                f"viewer page {page}: person {p.id} spans frames {p.first_frame}-{p.last_frame}; expected frames "
                f"within 0-{num_frames - 1}"
            )
        glb = Path(p.glb)
        if not glb.is_file():
            raise DataError(f"viewer page {page}: {glb} not found; expected person {p.id}'s GLB file")
        payload = glb.read_bytes()
        if payload[:4] != _GLB_MAGIC:
            raise DataError(f"viewer page {page}: {glb} is not a glTF binary file (expected it to start with 'glTF')")
        key = str(len(glbs))
        glbs[key] = base64.b64encode(zlib.compress(payload, 6)).decode("ascii")
        rgb = p.color if p.color is not None else track_color(p.id)
        scene_people.append(
            {
                "id": int(p.id),
                "name": p.name or f"person {p.id}",
                "color": "#" + "".join(f"{round(255 * min(max(c, 0.0), 1.0)):02x}" for c in rgb[:3]),
                "first_frame": int(p.first_frame),
                "last_frame": int(p.last_frame),
                "glb": glb.name,
                "data": key,
            }
        )
    scene = {
        "title": title,
        "fps": float(fps),
        "num_frames": int(num_frames),
        "width": int(width),
        "height": int(height),
        "focal": float(focal) if focal else math.hypot(width, height),
        "video": _url(video, folder) if video is not None else None,
        "note": note,
        "people": scene_people,
    }
    if info is None:
        count = f"{len(people)} {'person' if len(people) == 1 else 'people'}"
        info = f"{count} \u00b7 {num_frames} frames at {fps:g} fps \u00b7 {width} \u00d7 {height}"

    written = []
    if (folder / ASSET_DIR).is_dir():  # what a killed run left half-written
        remove_stale_temporaries(folder / ASSET_DIR)
    for source, name in _ASSETS:
        target = folder / ASSET_DIR / name
        atomic_write_bytes(target, source.read_bytes())
        written.append(target)
    data = data_file(page)
    body = json.dumps({"scene": scene, "glb": glbs}, separators=(",", ":"))  # ASCII: JSON escapes the rest
    script = f"// written by maed (maed.viewer) for {page.name}\nwindow.MAED_VIEWER = {body};\n"
    atomic_write_bytes(data, script.encode("ascii"))
    written.append(data)
    template = string.Template((_HERE / "page.html").read_text(encoding="utf-8"))
    atomic_write_bytes(
        page,
        template.substitute(
            title=html.escape(title),
            info=html.escape(info),
            three=_url(folder / ASSET_DIR / THREE_FILE, folder),
            data=_url(data, folder),
            app=_url(folder / ASSET_DIR / APP_FILE, folder),
        ).encode("utf-8"),
    )
    written.append(page)
    return written


def _url(path: str | os.PathLike, folder: Path) -> str:
    """``path`` as a URL relative to ``folder`` (the page's), for src attributes."""
    return urllib.parse.quote(Path(os.path.relpath(Path(path).resolve(), folder.resolve())).as_posix())
