"""PoseTrack 2018 json annotations -> ``posetrack_{train,val}_db.pt``.

Per video file and ``track_id``: the labelled frames with any keypoint and a non-degenerate box, in
frame order; tracks with fewer than 8 such frames are dropped. Keypoints are reordered by the names in
``categories[0].keypoints``, given visibility 1 unless at (0, 0) (as the original, which ignores the
file's flags) and converted to the 49-joint format. The box is the annotation box's centre with side
``0.8 x max(w, h)``, as the original. The one file the original meant to skip
(``021133_mpii_train.json``, broken annotations) is skipped; the original's path never matched.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from maed.data.database import concat_databases
from maed.data.keypoints import convert_kps
from maed.data.prepare.common import progress
from maed.data.registry import dataset_info
from maed.errors import DataError

SPLITS = dataset_info("posetrack").splits
RAW_TREE = """\
  <raw>/posetrack_data/annotations/{train,val}/*.json   (PoseTrack 2018)
  <raw>/posetrack_data/images/{train,val}/<video>/%06d.jpg
  (or <raw> = the posetrack_data directory itself)"""

MIN_FRAMES = 8
BOX_SCALE = 0.8
SKIP_FILES = frozenset({"021133_mpii_train.json"})
#: the file's keypoint names in the order of the ``posetrack`` format
ORIGINAL_NAMES = [
    "nose", "head_bottom", "head_top", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
]  # fmt: skip


def _data_root(raw: Path) -> Path:
    """The directory holding ``annotations/`` and ``images/`` (file names are relative to it)."""
    return raw / "posetrack_data" if (raw / "posetrack_data" / "annotations").is_dir() else raw


def find_splits(raw: Path) -> dict[str, list[Path]]:
    root = _data_root(raw)
    found = {}
    for split in SPLITS:
        files = sorted((root / "annotations" / split).glob("*.json"))
        if files:
            found[split] = files
    return found


def _load_json(path: Path) -> dict:
    try:
        with open(path) as f:
            anns = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid json ({e})") from None
    for key in ("images", "annotations", "categories"):
        if key not in anns:
            raise DataError(f"{path}: missing field '{key}'")
    return anns


def read_video(path: Path, prefix: str) -> list[dict]:
    """Tracks of one annotation file: dicts of vid_name, img_name, joints2D (49-joint), bbox arrays."""
    anns = _load_json(path)
    try:
        names = list(anns["categories"][0]["keypoints"])
        order = [names.index(n) for n in ORIGINAL_NAMES]
    except (IndexError, KeyError, ValueError):
        raise DataError(
            f"{path}: field 'categories[0].keypoints' must name the 17 PoseTrack joints {ORIGINAL_NAMES}"
        ) from None
    position = {}  # image id -> its place in the video (the order of 'images')
    file_of = {}
    for k, im in enumerate(anns["images"]):
        if not im.get("is_labeled", True):
            continue
        if "file_name" not in im:
            raise DataError(f"{path}: field 'images[{k}].file_name' is missing")
        for key in ("id", "frame_id"):
            if key in im:
                position.setdefault(im[key], k)
                file_of.setdefault(im[key], im["file_name"])
    tracks: dict[int, list] = {}
    for k, a in enumerate(anns["annotations"]):
        if a.get("image_id") not in position or "keypoints" not in a or "track_id" not in a:
            continue
        kps = np.asarray(a["keypoints"], dtype=np.float64)
        if kps.size != 3 * len(names):
            raise DataError(f"{path}: field 'annotations.keypoints' has {kps.size} values, expected {3 * len(names)}")
        if not np.count_nonzero(kps):
            continue
        try:
            track_id = int(a["track_id"])
        except (TypeError, ValueError):
            raise DataError(
                f"{path}: field 'annotations[{k}].track_id' is {a['track_id']!r}, expected an integer"
            ) from None
        tracks.setdefault(track_id, []).append(a)
    out = []
    for track_id in sorted(tracks):
        items = sorted(tracks[track_id], key=lambda a: position[a["image_id"]])
        if len(items) < MIN_FRAMES:
            continue
        j2d, boxes, imgs = [], [], []
        for a in items:
            box = a.get("bbox")
            if box is None or len(box) != 4 or box[2] == 0 or box[3] == 0:
                continue
            kp = np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3)[order]
            kp[:, 2] = 1.0
            kp[(kp[:, 0] == 0) & (kp[:, 1] == 0), 2] = 0.0
            x, y, w, h = (float(v) for v in box)
            side = max(w, h) * BOX_SCALE
            j2d.append(kp)
            boxes.append([x + w / 2.0, y + h / 2.0, side, side])
            imgs.append(prefix + file_of[a["image_id"]])
        if len(j2d) < MIN_FRAMES:
            continue
        out.append(
            {
                "vid_name": np.array([f"{path.stem}_{track_id}"] * len(j2d)),
                "img_name": np.array(imgs),
                "joints2D": convert_kps(np.stack(j2d), src="posetrack", dst="spin").astype(np.float32),
                "bbox": np.asarray(boxes, dtype=np.float32),
            }
        )
    return out


def read_split(raw: Path, split: str, source: list[Path], options) -> dict:
    root = _data_root(raw)
    prefix = "" if root == raw else f"{root.name}/"
    parts, skipped = [], []
    for path in progress(source, desc=f"posetrack {split}", enabled=options.progress):
        if path.name in SKIP_FILES:
            skipped.append(path.name)
            continue
        parts += read_video(path, prefix)
    db = concat_databases(parts) if parts else {"img_name": np.zeros((0,), dtype=str)}
    db["__notes__"] = [f"skipped {', '.join(skipped)}"] if skipped else []
    return db
