"""LSP Extended (and the original LSP) ``joints.mat`` -> ``lspet_train_db.pt``.

``joints`` comes in two layouts: LSPet's 14 x 3 x N, whose third row is 1 for a visible joint, and the
original LSP's 3 x 14 x N, whose third row is 1 for an *occluded* joint (so visibility = 1 - value).
The 14 joints are the LSP order (the ``common`` format). Image ``i`` is the i-th file of ``images/`` in
sorted order (``im00001.png`` ...). LSPet leaves unannotated joints at negative or zero coordinates;
they get confidence 0. The box is the square around the confident joints, x 1.1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maed.data.bbox import bbox_from_present_kp2d
from maed.data.keypoints import convert_kps
from maed.data.prepare.common import load_mat, rel, require_dir
from maed.errors import DataError

RAW_TREE = """\
  <raw>/joints.mat          (joints: 14 x 3 x N, LSPet; or 3 x 14 x N, original LSP)
  <raw>/images/im%05d.jpg   (N images; sorted order = annotation order)"""
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def find_splits(raw: Path) -> dict[str, Path]:
    return {"train": raw / "joints.mat"} if (raw / "joints.mat").is_file() else {}


def read_joints(path: Path) -> np.ndarray:
    """N x 14 x 3 (x, y, visibility) from either ``joints.mat`` layout."""
    joints = np.asarray(load_mat(path, fields=("joints",))["joints"], dtype=np.float64)
    if joints.ndim == 3 and joints.shape[:2] == (14, 3):
        kp = joints.transpose(2, 0, 1).copy()  # LSPet: third column 1 = visible
    elif joints.ndim == 3 and joints.shape[:2] == (3, 14):
        kp = joints.transpose(2, 1, 0).copy()  # LSP: third row 1 = occluded
        kp[..., 2] = 1.0 - kp[..., 2]
    else:
        raise DataError(f"{path}: field 'joints' has shape {joints.shape}, expected (14, 3, N) or (3, 14, N)")
    labelled = (kp[..., 0] > 0) & (kp[..., 1] > 0)
    kp[..., 2] = (kp[..., 2] > 0) & labelled
    return kp


def read_split(raw: Path, split: str, source: Path, options) -> dict:
    kp = read_joints(source)
    image_dir = require_dir(raw / "images", "the images joints.mat annotates")
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(images) != len(kp):
        raise DataError(f"{image_dir}: {len(images)} images, but field 'joints' of {source} annotates {len(kp)}")
    present = kp[..., 2] > 0
    keep = present.sum(axis=1) >= 2
    boxes = bbox_from_present_kp2d(kp, present)
    return {
        "img_name": np.array([rel(p, raw) for p, k in zip(images, keep) if k]),
        "joints2D": convert_kps(kp[keep], src="lspet", dst="spin").astype(np.float32),
        "bbox": boxes[keep].astype(np.float32),
    }
