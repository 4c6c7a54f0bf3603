"""MPII Human Pose -> ``mpii_train_db.pt`` (the training images' annotated people).

Reads the official ``mpii_human_pose_v1_u12_1.mat`` (the ``RELEASE`` struct: ``annolist(i).image.name``,
``annolist(i).annorect(j).annopoints.point(k).{id, x, y}``, ``img_train``), or, when it is absent, the
equivalent json many pose repositories ship (``annot/train.json``: a list of ``{image, joints (16 x 2),
joints_vis (16)}``). Every annotated joint gets confidence 1 (a labelled but occluded joint still has a
known position); people with fewer than 4 annotated joints are skipped. The box is the square around
the joints, x 1.1, as for MPI-INF-3DHP.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from maed.data.bbox import get_bbox_from_kp2d
from maed.data.keypoints import convert_kps
from maed.data.prepare.common import load_mat, progress
from maed.errors import DataError

RAW_TREE = """\
  <raw>/mpii_human_pose_v1_u12_2/mpii_human_pose_v1_u12_1.mat   (official annotations; or directly in <raw>)
  or <raw>/annot/train.json                                      (list of {image, joints, joints_vis})
  <raw>/images/*.jpg"""
MAT_NAME = "mpii_human_pose_v1_u12_1.mat"
MIN_JOINTS = 4


def _mat_path(raw: Path) -> Path | None:
    for p in (raw / "mpii_human_pose_v1_u12_2" / MAT_NAME, raw / MAT_NAME):
        if p.is_file():
            return p
    return None


def find_splits(raw: Path) -> dict[str, Path]:
    mat = _mat_path(raw)
    if mat is not None:
        return {"train": mat}
    if (raw / "annot" / "train.json").is_file():
        return {"train": raw / "annot" / "train.json"}
    return {}


def _items(x) -> list:
    """MATLAB struct arrays read with ``squeeze_me``: a single element comes back bare."""
    if isinstance(x, np.ndarray):
        return list(x.reshape(-1))
    return [x]


def _people_from_mat(path: Path, progress_on: bool) -> list[tuple[str, np.ndarray]]:
    mat = load_mat(path, fields=("RELEASE",), struct_as_record=False, squeeze_me=True)
    release = mat["RELEASE"]
    try:
        annolist = _items(release.annolist)
        is_train = np.asarray(release.img_train).reshape(-1)
    except AttributeError as e:
        raise DataError(f"{path}: field 'RELEASE' lacks annolist/img_train ({e})") from None
    if len(is_train) != len(annolist):
        raise DataError(f"{path}: field 'RELEASE.img_train' has {len(is_train)} entries, annolist {len(annolist)}")
    people = []
    for anno, train in progress(zip(annolist, is_train), desc="mpii", enabled=progress_on, total=len(annolist)):
        if int(train) != 1:
            continue
        name = str(anno.image.name)
        rects = getattr(anno, "annorect", None)
        for rect in _items(rects) if rects is not None else []:
            points = getattr(getattr(rect, "annopoints", None), "point", None)
            if points is None:
                continue
            kp = np.zeros((16, 3))
            for pt in _items(points):
                j = int(pt.id)
                if 0 <= j < 16:
                    kp[j] = [float(pt.x), float(pt.y), 1.0]
            people.append((name, kp))
    return people


def _people_from_json(path: Path) -> list[tuple[str, np.ndarray]]:
    try:
        with open(path) as f:
            items = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid json ({e})") from None
    people = []
    for k, it in enumerate(items):
        try:
            joints = np.asarray(it["joints"], dtype=np.float64).reshape(16, 2)
            vis = np.asarray(it.get("joints_vis", np.ones(16)), dtype=np.float64).reshape(16)
            name = str(it["image"])
        except (KeyError, ValueError, TypeError):
            raise DataError(f"{path}: entry {k} needs 'image' and 'joints' (16 x 2)") from None
        labelled = (vis > 0) & np.all(joints >= 0, axis=1)
        kp = np.concatenate([joints, labelled[:, None].astype(np.float64)], axis=1)
        kp[~labelled, :2] = 0.0
        people.append((name, kp))
    return people


def read_split(raw: Path, split: str, source: Path, options) -> dict:
    people = _people_from_mat(source, options.progress) if source.suffix == ".mat" else _people_from_json(source)
    people = [(n, kp) for n, kp in people if kp[:, 2].sum() >= MIN_JOINTS]
    if not people:
        return {"img_name": np.zeros((0,), dtype=str)}
    kp = np.stack([kp for _, kp in people])
    boxes = np.stack([get_bbox_from_kp2d(k[k[:, 2] > 0, :2]) for k in kp])
    return {
        "img_name": np.array([f"images/{n}" for n, _ in people]),
        "joints2D": convert_kps(kp, src="mpii", dst="spin").astype(np.float32),
        "bbox": boxes.astype(np.float32),
    }
