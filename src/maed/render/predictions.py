"""``maed render``: the meshes of ``maed eval``'s saved predictions drawn over the dataset's own frames
(the original's ``visualize.py``, ORIGINAL.md §8, without its cut to the first 16 entries).

Input: an evaluation directory holding ``predictions.npz`` (theta N x (3 + 3J + S) = crop camera (s, tx,
ty), axis-angle pose, shape; boxes N x 4 = cx, cy, w, h pixels; paths, instance_id, sequence; verts
N x V x 3 metres when ``maed eval --save-verts`` was given) and ``metrics.json`` (its ``run`` record names
the body model). Frames are grouped into videos by their folder (frames without predictions are left
out); every person of a frame is composited into one image, one colour per ``sequence`` (a person's
track). Output per video: ``<name>.mp4`` or a folder ``<name>/`` of PNGs named like the frames; finished
outputs are kept on a rerun.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maed.body.anny_joints import ANNY_RIGS
from maed.body.layout import pose_layout
from maed.data.database import find_image_prefix, image_path
from maed.errors import ConfigError, DataError, OutputError
from maed.render.overlay import OverlayRenderer, PersonDraw, track_color
from maed.render.projection import full_image_cameras
from maed.render.video import VideoWriter
from maed.utils.io import atomic_write_bytes, check_output_dir, remove_stale_temporaries

PREDICTIONS_FILE = "predictions.npz"
METRICS_FILE = "metrics.json"
FORMATS = ("mp4", "png")
_REQUIRED = ("theta", "boxes", "paths", "sequence")
#: rows of theta turned into vertices per body-model call
_CHUNK = 64


# ------------------------------------------------------------------------------------------ reading
def _npz_member(path: Path, zf: zipfile.ZipFile, name: str) -> np.ndarray:
    """A member of an .npz without pickles: memory-mapped when stored uncompressed (``maed eval`` writes
    them so; vertices can be gigabytes), else read."""
    info = zf.getinfo(f"{name}.npy")
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)
        header_len = fh.tell()
    if info.compress_type == zipfile.ZIP_STORED and not dtype.hasobject and np.prod(shape) > 0:
        with open(path, "rb") as raw:
            raw.seek(info.header_offset + 26)
            name_len, extra_len = np.frombuffer(raw.read(4), dtype="<u2")
        offset = info.header_offset + 30 + int(name_len) + int(extra_len) + header_len
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
    with zf.open(info) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


@dataclass
class EvalPredictions:
    """What ``maed eval`` saved, checked: N rows of theta (N x D), boxes (N x 4), paths, sequence (N str),
    vertices (N x V x 3 or None), and from ``metrics.json`` the body model, its rig (``MODEL.BODY_RIG``: ''
    for the model's default) and the dataset (each None when not recorded)."""

    directory: Path
    theta: np.ndarray
    boxes: np.ndarray
    paths: np.ndarray
    sequence: np.ndarray
    verts: np.ndarray | None = None
    body_model: str | None = None
    body_rig: str | None = None
    dataset: str | None = None


def load_predictions(eval_dir: str | os.PathLike) -> EvalPredictions:
    """Read and check ``EVAL_DIR/predictions.npz`` (and ``metrics.json`` when present)."""
    eval_dir = Path(eval_dir)
    if not eval_dir.is_dir():
        raise DataError(
            f"EVAL_DIR {eval_dir}: {'not a directory' if eval_dir.exists() else 'not found'}; expected the --out "
            "directory of `maed eval`"
        )
    path = eval_dir / PREDICTIONS_FILE
    if not path.is_file():
        raise DataError(
            f"EVAL_DIR {eval_dir}: holds no {PREDICTIONS_FILE}; run `maed eval ... --out {eval_dir}` first "
            "(add --save-verts to keep the meshes)"
        )
    try:
        with zipfile.ZipFile(path) as zf:
            names = {n[:-4] for n in zf.namelist() if n.endswith(".npy")}
            missing = [k for k in _REQUIRED if k not in names]
            if missing:
                raise DataError(f"{path}: missing {', '.join(missing)}; expected the file `maed eval` writes")
            arrays = {k: _npz_member(path, zf, k) for k in (*_REQUIRED, "verts") if k in names}
    except (zipfile.BadZipFile, ValueError, OSError, KeyError, EOFError) as e:
        raise DataError(f"{path}: not a readable predictions file ({type(e).__name__}: {e})") from None

    theta, boxes = np.asarray(arrays["theta"]), np.asarray(arrays["boxes"])
    n = len(theta)
    if theta.ndim != 2 or theta.shape[1] < 3:
        raise DataError(f"{path}: theta has shape {theta.shape}; expected N x (3 + pose + shape)")
    if boxes.shape != (n, 4):
        raise DataError(f"{path}: boxes has shape {boxes.shape}; expected {n} x 4 (cx, cy, w, h pixels)")
    for key in ("paths", "sequence"):
        if np.shape(arrays[key]) != (n,):
            raise DataError(f"{path}: {key} has shape {np.shape(arrays[key])}; expected ({n},)")
    verts = arrays.get("verts")
    if verts is not None and (verts.ndim != 3 or verts.shape[0] != n or verts.shape[2] != 3):
        raise DataError(f"{path}: verts has shape {verts.shape}; expected {n} x V x 3")

    body_model = body_rig = dataset = None
    metrics = eval_dir / METRICS_FILE
    if metrics.is_file():
        try:
            record = json.loads(metrics.read_text())
        except ValueError as e:
            raise DataError(f"{metrics}: not valid JSON ({e})") from None
        run = record.get("run") if isinstance(record, dict) else None
        model = run.get("model") if isinstance(run, dict) else None
        if isinstance(model, dict) and model.get("BODY_MODEL"):
            body_model = str(model["BODY_MODEL"]).lower()
            body_rig = str(model.get("BODY_RIG") or "")
        dataset = record.get("dataset") if isinstance(record, dict) else None
    return EvalPredictions(
        directory=eval_dir,
        theta=theta.astype(np.float32),
        boxes=boxes.astype(np.float32),
        paths=np.asarray(arrays["paths"]).astype(str),
        sequence=np.asarray(arrays["sequence"]).astype(str),
        verts=verts,
        body_model=body_model,
        body_rig=body_rig,
        dataset=dataset,
    )


def infer_body_model(pred: EvalPredictions) -> str:
    """The body model of the predictions: ``metrics.json``'s, else recognised from the array sizes."""
    if pred.body_model:
        return pred.body_model
    if pred.verts is not None:
        by_vertices = {6890: "smpl", 13718: "anny"}
        if pred.verts.shape[1] in by_vertices:
            return by_vertices[pred.verts.shape[1]]
    by_theta = {layout.theta_dim: layout.body_model for layout in _LAYOUTS}
    if pred.theta.shape[1] in by_theta:
        return by_theta[pred.theta.shape[1]]
    raise ConfigError(
        f"{pred.directory}: cannot tell the body model (no {METRICS_FILE} run record, theta has "
        f"{pred.theta.shape[1]} columns); pass --body-model"
    )


def infer_body_rig(pred: EvalPredictions, body_model: str) -> str:
    """The rig of ``body_model`` the predictions were made with: ``metrics.json``'s when it records that body
    model, else the one whose pose width theta has, else the model's default (``""``)."""
    if pred.body_rig is not None and pred.body_model == body_model:
        return pred.body_rig
    for layout in _LAYOUTS:
        if layout.body_model == body_model and layout.theta_dim == pred.theta.shape[1]:
            return "" if layout.body_model == "smpl" else layout.rig
    return ""


#: every body model and rig, from tables (nothing is built): theta's width tells them apart
_LAYOUTS = (pose_layout("smpl"), *(pose_layout("anny", rig) for rig in ANNY_RIGS))


# ------------------------------------------------------------------------------------------ videos
@dataclass
class Video:
    """Frames of one folder, in order: ``frames[i]`` = (image file, prediction rows drawn on it)."""

    name: str
    frames: list[tuple[str, np.ndarray]] = field(default_factory=list)


def _natural_key(text: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def group_videos(pred: EvalPredictions, root: str | os.PathLike | None) -> list[Video]:
    """Resolve every frame under ``root`` (as the loaders do; paths as stored without a root) and group the
    rows into videos by folder. A frame that is not found is a :class:`DataError`."""
    unique, inverse = np.unique(pred.paths, return_inverse=True)
    if root is not None:
        if not Path(root).is_dir():
            raise DataError(f"--root {root}: not a directory; expected the dataset's image root")
        prefix = find_image_prefix(unique, root)
        files = [image_path(root, name, prefix) for name in unique]
    else:
        files = [str(name) for name in unique]
    for name, file in zip(unique, files):
        if not os.path.isfile(file):
            where = f"under --root {root}" if root is not None else "as stored (no --root given)"
            raise DataError(
                f"frame {name!r} of {pred.directory / PREDICTIONS_FILE} not found {where} (looked for {file}); "
                "expected --root to be the image root of the evaluated dataset"
            )
    # the original protocol predicts the reflect-padded frames of short videos again: keep the first
    # prediction of each person in each frame
    _, first = np.unique(np.char.add(np.char.add(pred.paths, "\n"), pred.sequence), return_index=True)
    keep = np.zeros(len(pred.paths), dtype=bool)
    keep[first] = True
    kept = np.flatnonzero(keep)
    by_frame = kept[np.argsort(inverse[kept], kind="stable")]
    rows_of = np.split(by_frame, np.cumsum(np.bincount(inverse[kept], minlength=len(unique)))[:-1])
    folders: dict[str, list[int]] = {}
    for i, file in enumerate(files):
        folders.setdefault(str(Path(file).parent), []).append(i)

    # a video is named by its folder; parents are added where two folders share a last name
    parts = {folder: Path(folder).parts for folder in folders}
    depth = 1
    while True:
        names = {folder: "_".join(p[-depth:]).strip("/") or "video" for folder, p in parts.items()}
        if len(set(names.values())) == len(names) or depth > max(len(p) for p in parts.values()):
            break
        depth += 1
    videos = []
    for folder, members in folders.items():
        members.sort(key=lambda i: _natural_key(files[i]))
        videos.append(Video(name=names[folder], frames=[(files[i], rows_of[i]) for i in members]))
    videos.sort(key=lambda v: _natural_key(v.name))
    return videos


def select_videos(videos: list[Video], pred: EvalPredictions, name: str | None) -> list[Video]:
    """All videos, or those named ``name``, or the rows of the person (``sequence``) named ``name``."""
    if name is None:
        return videos
    chosen = [v for v in videos if v.name == name]
    if chosen:
        return chosen
    if name in set(pred.sequence.tolist()):
        keep = pred.sequence == name
        out = []
        for v in videos:
            frames = [(f, rows[keep[rows]]) for f, rows in v.frames if keep[rows].any()]
            if frames:
                out.append(Video(name=v.name, frames=frames))
        for v in out:  # the person's name, and the folder's when the person appears in several
            v.name = name if len(out) == 1 else f"{name}_{v.name}"
        return out
    available = sorted({v.name for v in videos} | set(pred.sequence.tolist()), key=_natural_key)
    shown = ", ".join(available[:12]) + (" ..." if len(available) > 12 else "")
    raise ConfigError(f"--sequence {name}: no such video or person in the predictions; available: {shown}")


def person_indices(frames: list[tuple[str, np.ndarray]], pred: EvalPredictions) -> dict[str, int]:
    """The people (``sequence`` names) of a video's frames, numbered 0, 1, ... in order of appearance: each
    one's colour (``maed.render.overlay.track_color``) in the video and in its viewer page."""
    indices: dict[str, int] = {}
    for _, rows in frames:
        for name in pred.sequence[rows]:
            indices.setdefault(str(name), len(indices))
    return indices


# ------------------------------------------------------------------------------------------ meshes
def vertex_source(pred: EvalPredictions, body) -> Callable[[np.ndarray], np.ndarray]:
    """``rows -> R x V x 3`` vertices (metres, model frame): the saved ones, or the body model applied to
    theta (pose as axis-angle, then shape) when none were saved."""
    if pred.verts is not None:
        if body is not None and pred.verts.shape[1] < body.num_vertices:
            raise DataError(
                f"{pred.directory / PREDICTIONS_FILE}: vertices have {pred.verts.shape[1]} points per mesh, "
                f"the {body.name} body model {body.num_vertices}; pass the --body-model the evaluation used"
            )
        return lambda rows: np.asarray(pred.verts[rows], dtype=np.float32)

    import torch

    from maed.body.geometry import axis_angle_to_rotmat  # start-up: torch (~2 s) stays out of `maed --help`

    J, S = body.num_joints, body.num_betas
    if pred.theta.shape[1] != 3 + 3 * J + S:
        raise DataError(
            f"{pred.directory / PREDICTIONS_FILE}: theta has {pred.theta.shape[1]} columns; the {body.name} body "
            f"model needs 3 + 3 x {J} + {S} = {3 + 3 * J + S} (camera, pose, shape); pass the --body-model the "
            "evaluation used"
        )

    @torch.inference_mode()
    def from_theta(rows: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(rows), _CHUNK):
            theta = torch.from_numpy(pred.theta[rows[start : start + _CHUNK]])
            rotmat = axis_angle_to_rotmat(theta[:, 3 : 3 + 3 * J].reshape(-1, J, 3))  # (R, J, 3, 3)
            out.append(body(rotmat, theta[:, 3 + 3 * J :]).verts.float().numpy())
        return np.concatenate(out) if out else np.zeros((0, body.num_vertices, 3), np.float32)

    return from_theta


# ------------------------------------------------------------------------------------------ drawing
def read_frame(path: str) -> np.ndarray:
    """An image file as H x W x 3 uint8 RGB; :class:`DataError` when it cannot be decoded."""
    import cv2

    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"frame {path}: cannot be read as an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_png(path: Path, image: np.ndarray) -> None:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OutputError(f"{path}: PNG encoding failed")
    atomic_write_bytes(path, buf.tobytes())


@dataclass
class RenderReport:
    """What :func:`render_predictions` did: outputs written and kept (already there), the backend used and
    why the OpenGL one was not (None when it was)."""

    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    frames: int = 0
    backend: str | None = None
    fallback_reason: str | None = None


def render_predictions(
    eval_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    body_model: str | None = None,
    body_model_dir: str | os.PathLike | None = None,
    sequence: str | None = None,
    max_frames: int | None = None,
    fmt: str = "mp4",
    fps: float = 30.0,
    side_view: bool = False,
    backend: str = "auto",
    antialias: bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> RenderReport:
    """Draw the predictions of ``eval_dir`` over the frames under ``root`` into ``out_dir``: one
    ``<video>.mp4`` (``fmt="mp4"``, H.264 at ``fps``) or ``<video>/<frame>.png`` folder per video, plus
    ``<video>_side.mp4`` / ``<video>_side/`` with ``side_view``. ``max_frames`` keeps the first frames of
    each video. ``backend`` and ``antialias`` are :class:`maed.render.overlay.OverlayRenderer`'s (smooth edges
    by default here: this is offline work). Outputs that exist are kept unless ``overwrite``. Every check
    runs before drawing."""
    from tqdm import tqdm

    from maed.body import build_body_model  # start-up: torch (~2 s) stays out of `maed --help`

    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt}: expected one of {FORMATS}")
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"--max-frames {max_frames}: expected a positive number of frames")
    if fps <= 0:
        raise ConfigError(f"--fps {fps}: expected a positive frame rate")
    out_dir = check_output_dir(out_dir)
    pred = load_predictions(eval_dir)
    name = (body_model or infer_body_model(pred)).lower()
    body = build_body_model(name, model_dir=body_model_dir, rig=infer_body_rig(pred, name))
    faces = body.faces.cpu().numpy()
    vertices_of = vertex_source(pred, body)
    videos = select_videos(group_videos(pred, root), pred, sequence)

    report = RenderReport()
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir, recursive=True)  # unfinished videos and frames of a killed run
    renderer = None
    try:
        for video in videos:
            frames = video.frames[:max_frames] if max_frames else video.frames
            views = [("", video.name)] + ([("side", f"{video.name}_side")] if side_view else [])
            targets = {view: out_dir / (f"{stem}.mp4" if fmt == "mp4" else stem) for view, stem in views}
            if fmt == "mp4" and not overwrite and all(t.is_file() for t in targets.values()):
                report.kept.extend(targets.values())
                continue
            first = read_frame(frames[0][0])
            height, width = first.shape[:2]
            if renderer is None or (renderer.width, renderer.height) != (width, height):
                if renderer is not None:
                    renderer.close()
                renderer = OverlayRenderer(width, height, faces, backend=backend, antialias=antialias)
                report.backend, report.fallback_reason = renderer.backend, renderer.fallback_reason
            people_ids = person_indices(frames, pred)
            writers = {}
            if fmt == "mp4":
                writers = {view: VideoWriter(t, fps=fps, width=width, height=height) for view, t in targets.items()}
            try:
                bar = tqdm(frames, desc=video.name, unit="frame", disable=not progress, leave=False)
                for k in range(0, len(frames), _CHUNK):
                    chunk = frames[k : k + _CHUNK]
                    pngs = [{view: t / f"{Path(file).stem}.png" for view, t in targets.items()} for file, _ in chunk]
                    if fmt == "png" and not overwrite:  # frames finished by an earlier run are kept
                        todo = [i for i, p in enumerate(pngs) if not all(f.is_file() for f in p.values())]
                        bar.update(len(chunk) - len(todo))
                        chunk, pngs = [chunk[i] for i in todo], [pngs[i] for i in todo]
                        if not chunk:
                            continue
                    rows = np.concatenate([r for _, r in chunk])
                    verts = vertices_of(rows)
                    cams = full_image_cameras(pred.theta[rows, :3], pred.boxes[rows], width, height)
                    at = 0
                    for (file, frame_rows), png in zip(chunk, pngs):
                        first_row, at = at, at + len(frame_rows)
                        image = first if file == frames[0][0] else read_frame(file)
                        if image.shape[:2] != (height, width):
                            raise DataError(
                                f"frame {file}: {image.shape[1]} x {image.shape[0]} pixels, but the video "
                                f"{video.name} started at {width} x {height}"
                            )
                        people = [
                            PersonDraw(
                                verts=verts[first_row + j],
                                cam=cams[first_row + j],
                                color=track_color(people_ids[pred.sequence[r]]),
                            )
                            for j, r in enumerate(frame_rows)
                        ]
                        drawn = {"": renderer.render(image, people)}
                        if side_view:
                            drawn["side"] = renderer.render_side(image.shape, people)
                        for view, picture in drawn.items():
                            if fmt == "mp4":
                                writers[view].write(picture)
                            else:
                                write_png(png[view], picture)
                        report.frames += 1
                        bar.update(1)
                    if renderer.fallback_reason and not report.fallback_reason:
                        report.backend, report.fallback_reason = renderer.backend, renderer.fallback_reason
                bar.close()
            except BaseException:
                for w in writers.values():
                    w.abort()
                raise
            for w in writers.values():
                w.close()
            report.written.extend(targets.values())
    finally:
        if renderer is not None:
            renderer.close()
    return report
