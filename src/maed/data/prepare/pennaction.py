"""Penn Action ``labels/*.mat`` -> ``pennaction_train_db.pt`` (every video, as the original).

Each label file holds ``x``, ``y``, ``visibility`` (nframes x 13) in the dataset's official joint order
(head, shoulders, elbows, wrists, hips, knees, ankles; left before right), which is converted to the
49-joint format by name. The original replaced the official order and then applied its list twice,
scrambling the joints (ORIGINAL.md §9). The box is the square around the visible joints, without margin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maed.data.bbox import bbox_from_present_kp2d
from maed.data.database import concat_databases
from maed.data.keypoints import convert_kps
from maed.data.prepare.common import check_shape, load_mat, progress, rel, require_dir
from maed.errors import DataError

RAW_TREE = """\
  <raw>/labels/%04d.mat            (x, y, visibility: nframes x 13; nframes)
  <raw>/frames/%04d/%06d.jpg"""


def find_splits(raw: Path) -> dict[str, list[Path]]:
    files = sorted((raw / "labels").glob("*.mat")) if (raw / "labels").is_dir() else []
    return {"train": files} if files else {}


def read_video(raw: Path, path: Path) -> dict | None:
    mat = load_mat(path, fields=("x", "y", "visibility"))
    n = int(np.asarray(mat["nframes"]).reshape(-1)[0]) if "nframes" in mat else np.shape(mat["x"])[0]
    x = check_shape(np.asarray(mat["x"], dtype=np.float64), (n, 13), path, "x")
    y = check_shape(np.asarray(mat["y"], dtype=np.float64), (n, 13), path, "y")
    vis = check_shape(np.asarray(mat["visibility"], dtype=np.float64), (n, 13), path, "visibility")
    frames_dir = require_dir(raw / "frames" / path.stem, f"frames of {path.name}")
    frames = sorted(frames_dir.glob("*.jpg"))
    if len(frames) != n:
        raise DataError(f"{frames_dir}: {len(frames)} frames, but field 'nframes' of {path} says {n}")
    kp = np.stack([x, y, vis], axis=-1)  # n x 13 x 3
    present = vis > 0
    has_box = present.any(axis=1)
    if not has_box.any():
        return None
    box = bbox_from_present_kp2d(kp, present, scale=1.0)
    kp, box = kp[has_box], box[has_box]
    frames = [f for f, keep in zip(frames, has_box) if keep]
    return {
        "vid_name": np.array([path.stem] * len(frames)),
        "frame_id": np.flatnonzero(has_box),
        "img_name": np.array([rel(f, raw) for f in frames]),
        "joints2D": convert_kps(kp, src="pennaction", dst="spin").astype(np.float32),
        "bbox": box.astype(np.float32),
    }


def read_split(raw: Path, split: str, source: list[Path], options) -> dict:
    parts = [read_video(raw, p) for p in progress(source, desc="pennaction", enabled=options.progress)]
    parts = [p for p in parts if p is not None]
    return concat_databases(parts) if parts else {"img_name": np.zeros((0,), dtype=str)}
