"""Generated databases and frames in the real on-disk format, for tests and benchmarks.

``write_synthetic_dataset`` writes ``<out>/database/<name>_<split>_db.pt`` (a joblib dict with the fields
of ORIGINAL.md §4) and ``<out>/images/<vid>/<frame>.jpg`` frames showing a stick figure at the database's 2D
joints over a smooth random background. Joints come from a fixed 49-joint skeleton (metres, camera frame:
x right, y down) that walks, turns and sways, projected orthographically into the frame.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from maed.data.database import database_filename, save_database
from maed.utils.io import atomic_path

# 24 "GT" joints (indices 25-48 of the 49-joint format), metres, person facing the camera: the body's
# right side is on the image's left (x < 0), y down.
_GT_TEMPLATE = np.array([
    [-0.10, 0.85, 0.00], [-0.10, 0.45, 0.02], [-0.10, 0.05, 0.00], [0.10, 0.05, 0.00],  # rank rkn rhip lhip
    [0.10, 0.45, 0.02], [0.10, 0.85, 0.00], [-0.45, -0.05, 0.05], [-0.32, -0.25, 0.03],  # lkn lank rwri relb
    [-0.18, -0.45, 0.00], [0.18, -0.45, 0.00], [0.32, -0.25, 0.03], [0.45, -0.05, 0.05],  # rsho lsho lelb lwri
    [0.00, -0.50, 0.00], [0.00, -0.75, 0.00], [0.00, 0.00, 0.00], [0.00, -0.45, 0.00],  # neck headtop pelv thorax
    [0.00, -0.20, 0.00], [0.00, -0.58, -0.05], [0.00, -0.65, 0.00], [0.00, -0.62, -0.09],  # spine jaw head nose
    [0.03, -0.66, -0.07], [-0.03, -0.66, -0.07], [0.07, -0.64, -0.02], [-0.07, -0.64, -0.02],  # leye reye lear rear
])  # fmt: skip
# OpenPose-25 joints (0-24) as copies of GT joints (index into the 24 above); toes/heels near the ankles
_OP_FROM_GT = [19, 12, 8, 7, 6, 9, 10, 11, 14, 2, 1, 0, 3, 4, 5, 21, 20, 23, 22, 5, 5, 5, 0, 0, 0]
_OP_OFFSETS = {
    19: (0.03, 0.08, -0.1),
    20: (0.06, 0.08, -0.08),
    21: (0.0, 0.05, 0.05),
    22: (-0.03, 0.08, -0.1),
    23: (-0.06, 0.08, -0.08),
    24: (0.0, 0.05, 0.05),
}
_BONES = [
    (25, 26),
    (26, 27),
    (27, 28),
    (28, 29),
    (29, 30),
    (31, 32),
    (32, 33),
    (33, 37),
    (34, 37),
    (34, 35),
    (35, 36),
    (37, 38),
    (27, 39),
    (28, 39),
    (39, 40),
    (40, 37),
]


def skeleton_template() -> np.ndarray:
    """The 49 x 3 rest skeleton (metres, camera frame, pelvis at the origin)."""
    joints = np.zeros((49, 3))
    joints[25:] = _GT_TEMPLATE
    for i, g in enumerate(_OP_FROM_GT):
        joints[i] = _GT_TEMPLATE[g] + np.asarray(_OP_OFFSETS.get(i, (0.0, 0.0, 0.0)))
    return joints


@dataclass
class SyntheticDataset:
    db_path: Path
    dataset_root: Path
    db: dict


def _rot_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    coarse = rng.integers(0, 256, size=(9, 16, 3), dtype=np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    grain = rng.integers(-12, 13, size=(height // 4, width // 4, 3)).astype(np.int16)
    grain = cv2.resize(grain, (width, height), interpolation=cv2.INTER_NEAREST)
    return np.clip(image.astype(np.int16) + grain, 0, 255).astype(np.uint8)


def draw_figure(image: np.ndarray, kp_2d: np.ndarray, thickness: int) -> None:
    """Draw a stick figure of 49 x 3 pixel keypoints onto an H x W x 3 RGB image (in place)."""
    for a, b in _BONES:
        pa, pb = kp_2d[a, :2].round().astype(int), kp_2d[b, :2].round().astype(int)
        cv2.line(image, tuple(int(v) for v in pa), tuple(int(v) for v in pb), (235, 235, 235), thickness)
    for j in range(25, 49):
        color = (255, 40, 40) if _GT_TEMPLATE[j - 25, 0] > 0 else (40, 40, 255)
        cv2.circle(image, tuple(int(v) for v in kp_2d[j, :2].round()), thickness, color, -1)


def write_synthetic_dataset(
    out_dir: str | os.PathLike,
    *,
    name: str = "synth",
    split: str = "train",
    num_videos: int = 2,
    frames_per_video: int = 32,
    image_size: tuple[int, int] = (1920, 1080),
    seed: int = 0,
    with_pose: bool = True,
    with_3d: bool = True,
    jpeg_quality: int = 90,
) -> SyntheticDataset:
    """Write a generated database and its frames; returns the paths and the database dict.

    ``image_size`` is (width, height). Rows: ``num_videos`` x ``frames_per_video`` (video ``i`` is
    ``synth_vid{i}``; its frames are contiguous, as in real databases). Fields: ``vid_name``, ``frame_id``,
    ``img_name`` (relative to ``<out>/images``), ``joints2D`` (n x 49 x 3, confidence 1 inside the frame),
    ``bbox`` (n x 4, the keypoints' square box x 1.1), ``valid`` (n), and with ``with_3d`` ``joints3D``
    (n x 49 x 4, confidence 1 on joints 25-38 as 3DPW), with ``with_pose`` ``pose`` (n x 72) and
    ``shape`` (n x 10). Existing frames are kept, so a rerun with the same arguments is cheap.
    """
    out_dir = Path(out_dir)
    root = out_dir / "images"
    width, height = image_size
    rng = np.random.default_rng(seed)
    template = skeleton_template()
    px_per_m = 0.42 * height  # the figure spans about 70 % of the frame's height

    fields: dict[str, list] = {k: [] for k in ("vid_name", "frame_id", "img_name", "joints2D", "joints3D", "bbox")}
    for v in range(num_videos):
        vid = f"{name}_vid{v}"
        start = np.array([rng.uniform(0.3, 0.7) * width, rng.uniform(0.45, 0.55) * height])
        velocity = rng.uniform(-1.0, 1.0, size=2) * np.array([0.002 * width, 0.0005 * height])
        turn, sway = rng.uniform(-0.02, 0.02), rng.uniform(0.0, 2 * np.pi)
        background = _background(rng, width, height)
        for f in range(frames_per_video):
            R = _rot_y(turn * f + 0.3 * np.sin(0.2 * f + sway))
            j3d = template @ R.T
            center = start + velocity * f
            kp = np.zeros((49, 3))
            kp[:, :2] = center + px_per_m * j3d[:, :2]
            inside = (kp[:, 0] >= 0) & (kp[:, 0] <= width - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= height - 1)
            kp[:, 2] = inside
            lo, hi = kp[25:, :2].min(axis=0), kp[25:, :2].max(axis=0)
            side = 1.1 * (hi - lo).max()
            fields["bbox"].append([*(0.5 * (lo + hi)), side, side])
            j3d_conf = np.zeros((49, 4))
            j3d_conf[:, :3] = j3d
            j3d_conf[25:39, 3] = 1.0
            img_name = f"{vid}/{f:06d}.jpg"
            fields["vid_name"].append(vid)
            fields["frame_id"].append(f)
            fields["img_name"].append(img_name)
            fields["joints2D"].append(kp)
            fields["joints3D"].append(j3d_conf)

            path = root / img_name
            if not path.is_file():
                image = background.copy()
                draw_figure(image, kp, thickness=max(2, height // 200))
                ok, buf = cv2.imencode(
                    ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
                )
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(path) as tmp:
                    tmp.write_bytes(buf.tobytes())

    n = len(fields["img_name"])
    db = {
        "vid_name": np.array(fields["vid_name"]),
        "frame_id": np.array(fields["frame_id"], dtype=np.int64),
        "img_name": np.array(fields["img_name"]),
        "joints2D": np.array(fields["joints2D"], dtype=np.float32),
        "bbox": np.array(fields["bbox"], dtype=np.float32),
        "valid": np.ones(n, dtype=np.float32),
    }
    if with_3d:
        db["joints3D"] = np.array(fields["joints3D"], dtype=np.float32)
    if with_pose:
        db["pose"] = rng.normal(scale=0.2, size=(n, 72)).astype(np.float32)
        db["shape"] = rng.normal(scale=0.5, size=(n, 10)).astype(np.float32)
    db_path = save_database(db, out_dir / "database" / database_filename(name, split))
    return SyntheticDataset(db_path=db_path, dataset_root=root, db=db)
