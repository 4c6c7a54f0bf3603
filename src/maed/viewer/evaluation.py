"""Viewer pages for ``maed render --viewer``: each video of ``maed eval``'s predictions beside its people's 3D
bodies, as ``maed demo``'s index.html shows a demo run (docs/OUTPUTS.md).

An evaluation stores no animation files, so this writes them: per video and person (a ``sequence`` of the
predictions), ``<out>/<video>_people/person_<k>.glb`` (``k``: the person's colour index in the video, 0, 1, ...
by first appearance, as the rendered video colours them), animated by the predicted pose over the frames from
the person's first to last in the video, the root placed by the predicted camera as the demo places it
(``maed.demo.outputs.camera_translation``: a pinhole camera of the image diagonal's focal length). A frame of
that span without a prediction for the person (the video's other people were evaluated there) keeps the pose
of the frame before. Then ``<out>/<video>.html`` (its data in ``<out>/viewer/``) and ``<out>/index.html``, a
list of the pages.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np

from maed.body import build_body_model
from maed.body.geometry import axis_angle_to_rotmat
from maed.demo.outputs import camera_translation
from maed.errors import DataError
from maed.export.gltf import write_glb
from maed.export.rig import rig_from_body_model
from maed.render.overlay import track_color
from maed.render.predictions import (
    group_videos,
    infer_body_model,
    load_predictions,
    person_indices,
    read_frame,
    select_videos,
)
from maed.render.projection import full_image_cameras
from maed.utils.io import atomic_write_bytes
from maed.viewer.page import ViewerPerson, write_page

PEOPLE_DIR_SUFFIX = "_people"


def write_eval_pages(
    eval_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    body_model: str | None = None,
    body_model_dir: str | os.PathLike | None = None,
    sequence: str | None = None,
    max_frames: int | None = None,
    fps: float = 30.0,
) -> list[Path]:
    """GLBs and a viewer page for each video ``maed render`` wrote into ``out_dir`` from ``eval_dir`` (same
    arguments as :func:`maed.render.predictions.render_predictions`, whose ``<video>.mp4`` files must exist);
    returns the pages, ``index.html`` last."""
    import torch

    out_dir = Path(out_dir)
    pred = load_predictions(eval_dir)
    body = build_body_model((body_model or infer_body_model(pred)).lower(), model_dir=body_model_dir)
    J, S = body.num_joints, body.num_betas
    if pred.theta.shape[1] != 3 + 3 * J + S:
        raise DataError(
            f"{pred.directory}: theta has {pred.theta.shape[1]} columns; the {body.name} body model needs "
            f"3 + 3 x {J} + {S} (camera, pose, shape); pass the --body-model the evaluation used"
        )
    pages = []
    for video in select_videos(group_videos(pred, root), pred, sequence):
        frames = video.frames[:max_frames] if max_frames else video.frames
        mp4 = out_dir / f"{video.name}.mp4"
        if not mp4.is_file():
            raise DataError(f"{mp4} not found; --viewer shows the videos `maed render` writes (--format mp4)")
        height, width = read_frame(frames[0][0]).shape[:2]
        people = []
        for name, k in person_indices(frames, pred).items():
            # the person's row in each frame of their span (-1: none there)
            rows = np.array([next((int(r) for r in frame_rows if pred.sequence[r] == name), -1)
                             for _, frame_rows in frames])  # fmt: skip
            present = np.flatnonzero(rows >= 0)
            first, last = int(present[0]), int(present[-1])
            span = rows[first : last + 1]
            held = np.maximum.accumulate(np.where(span >= 0, np.arange(len(span)), 0))
            span = span[held]  # a frame without the person's prediction keeps the one before
            theta = torch.from_numpy(pred.theta[span])
            rotmat = axis_angle_to_rotmat(theta[:, 3 : 3 + 3 * J].reshape(-1, J, 3)).numpy()  # (T, J, 3, 3)
            betas = pred.theta[span, 3 + 3 * J :]
            cam_full = full_image_cameras(pred.theta[span, :3], pred.boxes[span], width, height)
            glb = out_dir / f"{video.name}{PEOPLE_DIR_SUFFIX}" / f"person_{k}.glb"
            write_glb(
                glb,
                rig_from_body_model(body, betas.mean(axis=0)),
                rotmat,
                camera_translation(cam_full, width, height),
                fps,
                name=f"person_{k}",
                color=track_color(k),
            )
            people.append(ViewerPerson(id=k, glb=glb, first_frame=first, last_frame=last, name=name))
        pages.append(out_dir / f"{video.name}.html")
        write_page(
            pages[-1],
            people=people,
            fps=fps,
            num_frames=len(frames),
            width=width,
            height=height,
            video=mp4,
            title=f"maed render: {video.name}",
        )
    pages.append(_write_index(out_dir, pages))
    return pages


def _write_index(out_dir: Path, pages: list[Path]) -> Path:
    """``index.html``: links to the video pages (what ``maed view OUT`` opens)."""
    items = "\n".join(f'<li><a href="{html.escape(p.name)}">{html.escape(p.stem)}</a></li>' for p in pages)
    text = (
        '<!doctype html>\n<html lang="en">\n<head><meta charset="utf-8"><title>maed render</title>\n'
        "<style>body { font: 15px/1.5 system-ui, sans-serif; margin: 2em; }</style></head>\n"
        f"<body>\n<h1>maed render</h1>\n<p>Each video beside its people's 3D bodies:</p>\n<ul>\n{items}\n</ul>\n"
        "</body>\n</html>\n"
    )
    index = out_dir / "index.html"
    atomic_write_bytes(index, text.encode("utf-8"))
    return index
