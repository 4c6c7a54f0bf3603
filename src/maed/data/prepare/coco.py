"""COCO 2014 person keypoints -> ``coco2014-all_train_db.pt`` (train2014 and val2014 together: "all").

SPIN's selection: every person annotation with at least 12 labelled body joints (of the 12 below the
face), visibility flags 1/2 both counted as visible, keypoints converted to the 49-joint format. The box
is the annotation box's centre with side ``max(w, h)`` (square; the loaders enlarge it by 1.3).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from maed.data.database import concat_databases
from maed.data.keypoints import convert_kps
from maed.data.prepare.common import progress
from maed.errors import DataError

RAW_TREE = """\
  <raw>/annotations/person_keypoints_train2014.json
  <raw>/annotations/person_keypoints_val2014.json      (optional; both are used when present)
  <raw>/train2014/COCO_train2014_%012d.jpg
  <raw>/val2014/COCO_val2014_%012d.jpg"""
SETS = ("train2014", "val2014")
MIN_BODY_JOINTS = 12


def find_splits(raw: Path) -> dict[str, list[tuple[str, Path]]]:
    files = [(s, raw / "annotations" / f"person_keypoints_{s}.json") for s in SETS]
    files = [(s, p) for s, p in files if p.is_file()]
    return {"train": files} if files else {}


def read_annotations(path: Path, image_dir: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid json ({e})") from None
    for key in ("images", "annotations"):
        if key not in data:
            raise DataError(f"{path}: missing field '{key}'")
    files = {}
    for k, im in enumerate(data["images"]):
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise DataError(f"{path}: field 'images[{k}]' needs 'id' and 'file_name'")
        files[im["id"]] = im["file_name"]
    names, joints, boxes = [], [], []
    for k, a in enumerate(data["annotations"]):
        if a.get("iscrowd", 0) or "keypoints" not in a:
            continue
        kp = np.asarray(a["keypoints"], dtype=np.float64)
        if kp.size != 51:
            raise DataError(f"{path}: field 'annotations.keypoints' has {kp.size} values, expected 51 (17 x 3)")
        kp = kp.reshape(17, 3)
        kp[:, 2] = kp[:, 2] > 0
        if kp[5:, 2].sum() < MIN_BODY_JOINTS:
            continue
        box = np.asarray(a.get("bbox", []), dtype=np.float64).reshape(-1)
        if box.size != 4:
            raise DataError(f"{path}: field 'annotations[{k}].bbox' has {box.size} values, expected 4 (x, y, w, h)")
        if a.get("image_id") not in files:
            raise DataError(f"{path}: field 'annotations[{k}].image_id' ({a.get('image_id')!r}) is not in 'images'")
        x, y, w, h = (float(v) for v in box)
        side = max(w, h)
        names.append(f"{image_dir}/{files[a['image_id']]}")
        joints.append(kp)
        boxes.append([x + w / 2.0, y + h / 2.0, side, side])
    return {
        "img_name": np.array(names, dtype=str),
        "joints2D": convert_kps(np.asarray(joints).reshape(-1, 17, 3), src="coco", dst="spin").astype(np.float32),
        "bbox": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
    }


def read_split(raw: Path, split: str, source: list[tuple[str, Path]], options) -> dict:
    parts = [read_annotations(p, s) for s, p in progress(source, desc="coco2014", enabled=options.progress)]
    return concat_databases(parts)
