"""Tiny raw datasets in each dataset's real on-disk format, written by the tests themselves.

Each ``write_*`` function writes a raw tree under a directory and returns the arrays it wrote, so that
tests can compute the expected databases independently of the code under test. Imported by the tests as
``tests.data.prepare.raw_data``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from maed.testing.smpl import py2_pickle_bytes  # noqa: F401  (re-exported for the tests)

# -------------------------------------------------------------------------------------------- helpers
#: index of each ground-truth joint in the 49-joint format, written out independently of maed.data.keypoints
SPIN = {
    "rankle": 25, "rknee": 26, "rhip": 27, "lhip": 28, "lknee": 29, "lankle": 30, "rwrist": 31, "relbow": 32,
    "rshoulder": 33, "lshoulder": 34, "lelbow": 35, "lwrist": 36, "neck": 37, "headtop": 38, "hip": 39,
    "thorax": 40, "nose": 44, "leye": 45, "reye": 46, "lear": 47, "rear": 48,
}  # fmt: skip


def prepare(name: str, raw, out, *extra: str) -> int:
    """``maed prepare NAME --raw RAW --out OUT --no-progress EXTRA...``; returns the exit code."""
    from maed.cli import main

    return main(["prepare", name, "--raw", str(raw), "--out", str(out), "--no-progress", *extra])


def square(points: np.ndarray, scale: float) -> np.ndarray:
    """The square box (cx, cy, w, h) around 2D points, side ``scale`` x their longer extent."""
    lo, hi = points.min(0), points.max(0)
    side = (hi - lo).max() * scale
    return np.array([*(lo + hi) / 2, side, side])


def tiny_jpeg(path: Path, h: int = 8, w: int = 8, value: int = 128) -> bytes:
    import cv2

    img = np.full((h, w, 3), value, dtype=np.uint8)
    img[: h // 2, : w // 2] = 255 - value
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    data = buf.tobytes()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return data


# --------------------------------------------------------------------------------------------- 3DPW
THREEDPW_TO_LSP = {  # 3DPW poses2d index of each LSP joint (rankle .. lwrist); neck/head top absent
    "rankle": 10, "rknee": 9, "rhip": 8, "lhip": 11, "lknee": 12, "lankle": 13,
    "rwrist": 4, "relbow": 3, "rshoulder": 2, "lshoulder": 5, "lelbow": 6, "lwrist": 7,
}  # fmt: skip


def _rotation(rng) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(rng.normal(scale=0.3, size=3)).as_matrix()


def write_3dpw(raw: Path, seed: int = 0, frames: int = 20) -> dict:
    """``sequenceFiles/{train,validation,test}/<seq>.pkl`` with the real keys, one sequence per split,
    two actors. Returns {split: {seq: data dict}}."""
    rng = np.random.default_rng(seed)
    out = {}
    for split in ("train", "validation", "test"):
        seq = f"seq_{split}"
        n = frames
        cam_poses = np.zeros((n, 4, 4))
        for i in range(n):
            cam_poses[i, :3, :3] = _rotation(rng)
            cam_poses[i, :3, 3] = rng.normal(size=3) + [0.0, 0.0, 4.0]
            cam_poses[i, 3, 3] = 1.0
        data = {
            "sequence": seq,
            "genders": ["m", "f"],
            "poses": [],
            "betas": [],
            "trans": [],
            "poses2d": [],
            "jointPositions": [],
            "cam_poses": cam_poses,
            "cam_intrinsics": np.array([[1961.0, 0.0, 540.0], [0.0, 1969.0, 960.0], [0.0, 0.0, 1.0]]),
            "campose_valid": [],
            "img_frame_ids": np.arange(n),
            "v_template_clothed": [np.zeros((20, 3)), np.zeros((20, 3))],
            "betas_clothed": [np.zeros(10), np.zeros(10)],
            "texture_maps": [np.zeros((2, 2, 3), np.uint8)] * 2,
        }
        for p in range(2):
            pose = rng.normal(scale=0.2, size=(n, 72))
            pose[:, :3] = rng.normal(scale=1.0, size=(n, 3))
            data["poses"].append(pose)
            data["betas"].append(rng.normal(size=10))
            data["trans"].append(rng.normal(size=(n, 3)))
            data["jointPositions"].append(rng.normal(size=(n, 72)))
            center = np.array([500.0 + 10 * p, 900.0]) + np.cumsum(rng.normal(scale=5, size=(n, 2)), axis=0)
            xy = center[:, None, :] + rng.normal(scale=150.0, size=(n, 18, 2))
            conf = rng.uniform(0.35, 1.0, size=(n, 18))
            if p == 0:
                conf[:3] = 0.1  # no visible joint before frame 3: the box track starts there
                conf[5, :12] = 0.2  # too few visible joints: dropped
            conf[-1] = 0.0  # last frame: no box
            j2d = np.concatenate([xy, conf[..., None]], axis=-1)  # n x 18 x 3
            data["poses2d"].append(j2d.transpose(0, 2, 1).copy())  # n x 3 x 18, as the files
            valid = np.ones(n, dtype=bool)
            valid[6 + p] = False
            data["campose_valid"].append(valid)
        path = raw / "sequenceFiles" / split / f"{seq}.pkl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(py2_pickle_bytes(data))
        for f in range(n):
            tiny_jpeg(raw / "imageFiles" / seq / f"image_{f:05d}.jpg")
        out[split] = {seq: data}
    return out


# ----------------------------------------------------------------------------------------- MPI-INF-3DHP
#: mpii3d (28-joint) index of each 49-joint index it fills
MPII3D_TO_SPIN = {
    41: 3, 39: 4, 37: 5, 43: 6, 38: 7, 34: 9, 35: 10, 36: 11, 33: 14, 32: 15, 31: 16,
    28: 18, 29: 19, 30: 20, 27: 23, 26: 24, 25: 25,
}  # fmt: skip


def write_mpii3d(raw: Path, seed: int = 0, frames: int = 12) -> dict:
    """``S1/Seq1/annot.mat`` (cell arrays of 14 cameras) and frames for cameras 0 and 1 (camera 2 has no
    frames). Camera 0: frames 5, 6 (1-based) leave the image. Camera 1: frame 1 leaves it."""
    import scipy.io

    rng = np.random.default_rng(seed)
    seq_dir = raw / "S1" / "Seq1"
    annot2 = np.empty((14, 1), dtype=object)
    annot3 = np.empty((14, 1), dtype=object)
    for cam in range(14):
        a2 = rng.uniform(300, 1700, size=(frames, 28, 2))
        if cam == 0:
            a2[4, 7, 0] = 2050.0  # head top right of the image
            a2[5, 3, 1] = -3.0  # spine above it
        if cam == 1:
            a2[0, 25, 0] = 2048.0  # exactly on the border: outside
        a2[:, 0] = 5000.0  # spine3 is not in the 49-joint format: never checked
        annot2[cam, 0] = a2.reshape(frames, 56)
        annot3[cam, 0] = rng.normal(scale=400.0, size=(frames, 84)) + 3000.0
    seq_dir.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(seq_dir / "annot.mat", {"annot2": annot2, "annot3": annot3, "frames": np.arange(frames)[:, None]})
    (seq_dir / "camera.calibration").write_text("Skeletool Camera Calibration File V1.0\n")
    for cam in (0, 1):
        for i in range(1, frames + 1):
            tiny_jpeg(seq_dir / "imageFrames" / f"video_{cam}" / f"frame_{i:06d}.jpg")
    return {"annot2": annot2, "annot3": annot3, "frames": frames}


def write_mpii3d_test(
    raw: Path, seed: int = 1, frames: int = 6, size: tuple[int, int] = (60, 80), hdf5: bool = False
) -> dict:
    """``mpi_inf_3dhp_test_set/TS1/annot_data.mat`` in MATLAB axis order (2 x 17 x 1 x N ...), frames
    ``imageSequence/img_%06d.jpg`` of ``size`` (h, w); frame 3 (1-based) leaves the image. ``hdf5``: a
    MATLAB v7.3 file as the real one (HDF5 behind a 512-byte MATLAB header, axes reversed)."""
    import scipy.io

    rng = np.random.default_rng(seed)
    h, w = size
    ts = raw / "mpi_inf_3dhp_test_set" / "TS1"
    a2 = np.stack([rng.uniform(1, w - 1, size=(frames, 17)), rng.uniform(1, h - 1, size=(frames, 17))], axis=-1)
    a2[2, 0, 0] = w + 1.0
    a3 = rng.normal(scale=300.0, size=(frames, 17, 3))
    valid = (np.arange(frames) % 2 == 0).astype(np.uint8)
    ts.mkdir(parents=True, exist_ok=True)
    if hdf5:
        _write_matlab_v73(
            ts / "annot_data.mat",
            {
                "annot2": a2[:, None],
                "univ_annot3": a3[:, None],
                "valid_frame": valid[:, None].astype(np.float64),
            },
        )
    else:
        scipy.io.savemat(
            ts / "annot_data.mat",
            {
                "annot2": a2.transpose(2, 1, 0)[:, :, None, :],  # 2 x 17 x 1 x N
                "univ_annot3": a3.transpose(2, 1, 0)[:, :, None, :],
                "valid_frame": valid[None, :],
            },
        )
    for i in range(1, frames + 1):
        tiny_jpeg(ts / "imageSequence" / f"img_{i:06d}.jpg", h=h, w=w)
    return {"annot2": a2, "univ_annot3": a3, "valid_frame": valid, "size": size}


def _write_matlab_v73(path: Path, arrays: dict) -> None:
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v)
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2018 HDF5 schema 1.00 ."
    header = header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as f:
        f.write(header)


# ------------------------------------------------------------------------------------------- Human3.6M
def write_h36m(raw: Path, seed: int = 0) -> dict:
    """SPIN-style ``h36m_train.npz`` (two videos, rows interleaved) and ``h36m_valid_protocol2.npz``."""
    rng = np.random.default_rng(seed)
    names = [
        "images/S1_Walking_1.54138969_000011.jpg",
        "images/S1_Directions_1.54138969_000001.jpg",
        "images/S1_Walking_1.54138969_000006.jpg",
        "images/S1_Directions_1.54138969_000006.jpg",
        "images/S1_Walking_1.54138969_000001.jpg",
    ]
    n = len(names)
    train = {
        "imgname": np.array(names),
        "center": rng.uniform(300, 700, size=(n, 2)),
        "scale": rng.uniform(1.0, 2.0, size=n),
        "part": np.concatenate([rng.uniform(0, 1000, size=(n, 24, 2)), rng.integers(0, 2, (n, 24, 1))], -1),
        "S": np.concatenate([rng.normal(size=(n, 24, 3)), rng.integers(0, 2, (n, 24, 1))], -1),
        "pose": rng.normal(size=(n, 72)),
        "shape": rng.normal(size=(n, 10)),
    }
    test = {k: train[k][:3] for k in ("imgname", "center", "scale", "S")}
    raw.mkdir(parents=True, exist_ok=True)
    np.savez(raw / "h36m_train.npz", **train)
    np.savez(raw / "h36m_valid_protocol2.npz", **test)
    for name in names:
        tiny_jpeg(raw / name)
    return {"train": train, "test": test}


# --------------------------------------------------------------------------------------- InstaVariety
def _varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def encode_feature(value) -> bytes:
    """A tf.train.Feature: list of bytes -> BytesList, float array -> packed FloatList, ints -> Int64List."""
    if isinstance(value, list) and (not value or isinstance(value[0], bytes)):
        return _ld(1, b"".join(_ld(1, v) for v in value))
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        return _ld(2, _ld(1, arr.astype("<f4").tobytes()) if arr.size else b"")
    return _ld(3, _ld(1, b"".join(_varint(int(v)) for v in arr.reshape(-1))) if arr.size else b"")


def encode_example(features: dict) -> bytes:
    entries = b"".join(_ld(1, _ld(1, k.encode()) + _ld(2, encode_feature(v))) for k, v in features.items())
    return _ld(1, entries)


def _crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 * (crc & 1))
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    crc = _crc32c_bitwise(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord_bytes(records: list[bytes]) -> bytes:
    out = bytearray()
    for r in records:
        length = struct.pack("<Q", len(r))
        out += length + struct.pack("<I", _masked(length)) + r + struct.pack("<I", _masked(r))
    return bytes(out)


def write_insta(raw: Path, seed: int = 0, size: tuple[int, int] = (48, 64)) -> dict:
    """``train/part-0.tfrecord`` with two videos: one preprocessed (``image/phis``, points in [-1, 1],
    frames of ``size`` h x w), one in pixels with no toe points."""
    rng = np.random.default_rng(seed)
    h, w = size
    videos = []
    for k, n in enumerate((3, 2)):
        jpegs = [tiny_jpeg(None, h=h, w=w, value=40 * i + 20) for i in range(n)]
        xys = rng.uniform(-1, 1, size=(n, 2, 14)) if k == 0 else rng.uniform(0, 40, size=(n, 2, 14))
        vis = rng.integers(0, 2, size=(n, 1, 14))
        face = np.concatenate([rng.uniform(-1, 1, (n, 2, 5)), rng.integers(0, 2, (n, 1, 5))], axis=1)
        toes = np.concatenate([rng.uniform(-1, 1, (n, 2, 6)), rng.integers(0, 2, (n, 1, 6))], axis=1)
        feat = {
            "meta/N": [n],
            "image/encoded": jpegs,
            "image/xys": xys.astype(np.float32),
            "image/visibilities": vis,
            "image/face_pts": face.astype(np.float32),
            "image/centers": rng.integers(0, 100, size=(n, 2)),
        }
        if k == 0:
            feat["image/toe_pts"] = toes.astype(np.float32)
            feat["image/phis"] = np.zeros(n, dtype=np.float32)
        else:
            feat["image/toe_pts"] = np.zeros(0, dtype=np.float32)
        videos.append(
            {
                "n": n,
                "jpegs": jpegs,
                "xys": xys.astype(np.float32),
                "vis": vis,
                "face": face.astype(np.float32),
                "toes": toes.astype(np.float32) if k == 0 else None,
                "phis": k == 0,
                "example": encode_example(feat),
            }
        )
    path = raw / "train" / "part-0.tfrecord"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tfrecord_bytes([v["example"] for v in videos]))
    return {"videos": videos, "size": size, "path": path}


# ------------------------------------------------------------------------------------------ PoseTrack
POSETRACK_FILE_ORDER = [  # the category's keypoint order in the files (differs from ours on purpose)
    "right_ankle", "nose", "head_bottom", "head_top", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle",
]  # fmt: skip


def write_posetrack(raw: Path, seed: int = 0) -> dict:
    """``posetrack_data/annotations/train/000001_bonn_train.json``: 12 frames (10 labelled); track 0 on all
    labelled frames (one with a zero-width box), track 1 on 5 frames only (dropped); plus the broken
    ``021133_mpii_train.json`` the reader must skip."""
    rng = np.random.default_rng(seed)
    ann_dir = raw / "posetrack_data" / "annotations" / "train"
    ann_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for f in range(12):
        images.append(
            {
                "id": 10000010000 + f,
                "frame_id": 10000010000 + f,
                "is_labeled": f not in (2, 9),
                "file_name": f"images/train/000001_bonn_train/{f:06d}.jpg",
                "nframes": 12,
            }
        )
    track0 = {}
    for f in [11, 0, 1, 3, 4, 5, 6, 7, 8, 10]:  # annotations out of frame order
        kp = np.concatenate([rng.uniform(10, 300, (17, 2)), np.zeros((17, 1))], axis=1)
        kp[4, :2] = 0.0  # one unannotated point
        box = [float(v) for v in rng.uniform(10, 50, 2)] + [float(rng.uniform(50, 90)), float(rng.uniform(90, 200))]
        if f == 6:
            box[2] = 0.0
        annotations.append(
            {"image_id": 10000010000 + f, "track_id": 0, "keypoints": kp.reshape(-1).tolist(), "bbox": box}
        )
        track0[f] = (kp, box)
    for f in range(5):
        kp = np.concatenate([rng.uniform(10, 300, (17, 2)), np.ones((17, 1))], axis=1)
        annotations.append(
            {
                "image_id": 10000010000 + f,
                "track_id": 1,
                "keypoints": kp.reshape(-1).tolist(),
                "bbox": [1.0, 2.0, 30.0, 60.0],
            }
        )
    doc = {
        "images": images,
        "annotations": annotations,
        "categories": [{"name": "person", "keypoints": POSETRACK_FILE_ORDER}],
    }
    (ann_dir / "000001_bonn_train.json").write_text(json.dumps(doc))
    (ann_dir / "021133_mpii_train.json").write_text("{broken")
    for im in images:
        tiny_jpeg(raw / "posetrack_data" / im["file_name"])
    return {"track0": track0}


# ----------------------------------------------------------------------------------------- PennAction
PENN_ORDER = [
    "headtop",
    "lshoulder",
    "rshoulder",
    "lelbow",
    "relbow",
    "lwrist",
    "rwrist",
    "lhip",
    "rhip",
    "lknee",
    "rknee",
    "lankle",
    "rankle",
]


def write_pennaction(raw: Path, seed: int = 0, frames: int = 5) -> dict:
    import scipy.io

    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 480, size=(frames, 13))
    y = rng.uniform(0, 360, size=(frames, 13))
    vis = rng.integers(0, 2, size=(frames, 13)).astype(np.uint8)
    vis[:, 0] = 1
    (raw / "labels").mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(
        raw / "labels" / "0001.mat",
        {
            "action": "baseball_pitch",
            "pose": "back",
            "x": x,
            "y": y,
            "visibility": vis,
            "train": np.array([[1]]),
            "bbox": np.zeros((frames, 4)),
            "dimensions": np.array([[360, 480, frames]]),
            "nframes": np.array([[frames]]),
        },
    )
    for i in range(1, frames + 1):
        tiny_jpeg(raw / "frames" / "0001" / f"{i:06d}.jpg")
    return {"x": x, "y": y, "visibility": vis}


# ------------------------------------------------------------------------------------------------ COCO
COCO_ORDER = [
    "nose",
    "leye",
    "reye",
    "lear",
    "rear",
    "lshoulder",
    "rshoulder",
    "lelbow",
    "relbow",
    "lwrist",
    "rwrist",
    "lhip",
    "rhip",
    "lknee",
    "rknee",
    "lankle",
    "rankle",
]


def write_coco(raw: Path, seed: int = 0) -> dict:
    """train2014 with 3 annotations (one with only 11 body joints: skipped; one crowd: skipped), val2014
    with one."""
    rng = np.random.default_rng(seed)
    kept = []
    for s, count in (("train2014", 3), ("val2014", 1)):
        images = [{"id": 7 + k, "file_name": f"COCO_{s}_{7 + k:012d}.jpg"} for k in range(2)]
        anns = []
        for k in range(count):
            kp = np.concatenate([rng.uniform(0, 600, (17, 2)), rng.choice([1, 2], size=(17, 1))], axis=1)
            if s == "train2014" and k == 1:
                kp[16] = 0  # 11 labelled body joints
            box = [float(v) for v in rng.uniform(0, 300, 4)]
            a = {
                "image_id": 7 + k % 2,
                "keypoints": kp.reshape(-1).astype(int).tolist(),
                "bbox": box,
                "iscrowd": int(s == "train2014" and k == 2),
                "num_keypoints": int((kp[:, 2] > 0).sum()),
            }
            anns.append(a)
            if not (s == "train2014" and k in (1, 2)):
                kept.append((f"{s}/{images[k % 2]['file_name']}", np.asarray(a["keypoints"]).reshape(17, 3), box))
        for im in images:
            tiny_jpeg(raw / s / im["file_name"])
        (raw / "annotations").mkdir(parents=True, exist_ok=True)
        (raw / "annotations" / f"person_keypoints_{s}.json").write_text(
            json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1}]})
        )
    return {"kept": kept}


# ------------------------------------------------------------------------------------------------ MPII
def write_mpii(raw: Path, seed: int = 0) -> dict:
    """The official ``RELEASE`` struct: 3 images; image 0 (train) has two people (one with 3 joints:
    skipped), image 1 is a test image, image 2 (train) has one person with every joint."""
    import scipy.io

    rng = np.random.default_rng(seed)
    point_dt = [("x", "O"), ("y", "O"), ("id", "O"), ("is_visible", "O")]
    rect_dt = [("x1", "O"), ("y1", "O"), ("x2", "O"), ("y2", "O"), ("annopoints", "O"), ("scale", "O"), ("objpos", "O")]

    def rect(ids):
        pts = np.zeros((1, len(ids)), dtype=point_dt)
        xy = {}
        for k, j in enumerate(ids):
            x, y = rng.uniform(10, 700, 2)
            pts[0, k] = (np.array([[x]]), np.array([[y]]), np.array([[j]]), np.array(["1"] if k % 2 else [[0]]))
            xy[j] = (x, y)
        annopoints = np.zeros((1, 1), dtype=[("point", "O")])
        annopoints[0, 0] = (pts,)
        r = (
            np.array([[1.0]]),
            np.array([[2.0]]),
            np.array([[3.0]]),
            np.array([[4.0]]),
            annopoints,
            np.array([[1.5]]),
            np.zeros((1, 1), dtype=[("x", "O"), ("y", "O")]),
        )
        return r, xy

    people = []
    annolist = np.zeros((1, 3), dtype=[("image", "O"), ("annorect", "O"), ("frame_sec", "O"), ("vididx", "O")])
    names = ["015601864.jpg", "015599452.jpg", "005808361.jpg"]
    for i, name in enumerate(names):
        image = np.zeros((1, 1), dtype=[("name", "O")])
        image[0, 0] = (np.array([name]),)
        if i == 0:
            rects = np.zeros((1, 2), dtype=rect_dt)
            r0, xy0 = rect([0, 1, 2, 3, 4, 5, 8, 9, 12, 13])
            r1, _ = rect([6, 7, 9])
            rects[0, 0], rects[0, 1] = r0, r1
            people.append((name, xy0))
        elif i == 1:
            rects = np.zeros((1, 1), dtype=[("scale", "O"), ("objpos", "O")])
            rects[0, 0] = (np.array([[2.0]]), np.zeros((1, 1), dtype=[("x", "O"), ("y", "O")]))
        else:
            rects = np.zeros((1, 1), dtype=rect_dt)
            r2, xy2 = rect(list(range(16))[::-1])
            rects[0, 0] = r2
            people.append((name, xy2))
        annolist[0, i] = (image, rects, np.array([]), np.array([]))
    release = np.zeros((1, 1), dtype=[("annolist", "O"), ("img_train", "O"), ("version", "O")])
    release[0, 0] = (annolist, np.array([[1, 0, 1]]), np.array(["12"]))
    d = raw / "mpii_human_pose_v1_u12_2"
    d.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(d / "mpii_human_pose_v1_u12_1.mat", {"RELEASE": release})
    for name in names:
        tiny_jpeg(raw / "images" / name)
    return {"people": people}


# ----------------------------------------------------------------------------------------------- LSPet
def write_lspet(raw: Path, seed: int = 0, n: int = 4, lsp_layout: bool = False) -> dict:
    """``joints.mat`` (14 x 3 x N, LSPet; or 3 x 14 x N with occlusion flags, LSP) and ``images/``."""
    import scipy.io

    rng = np.random.default_rng(seed)
    xy = rng.uniform(5, 200, size=(n, 14, 2))
    flag = rng.integers(0, 2, size=(n, 14)).astype(np.float64)
    flag[:, :4] = 0 if lsp_layout else 1  # at least 4 visible joints each
    xy[1, 5] = -1.0  # unannotated
    if lsp_layout:
        joints = np.concatenate([xy, flag[..., None]], axis=-1).transpose(2, 1, 0)  # 3 x 14 x N
    else:
        joints = np.concatenate([xy, flag[..., None]], axis=-1).transpose(1, 2, 0)  # 14 x 3 x N
    raw.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(raw / "joints.mat", {"joints": joints})
    for i in range(n):
        tiny_jpeg(raw / "images" / (f"im{i + 1:04d}.jpg" if lsp_layout else f"im{i + 1:05d}.jpg"))
    visible = (1 - flag if lsp_layout else flag) > 0
    visible &= (xy[..., 0] > 0) & (xy[..., 1] > 0)
    return {"xy": xy, "visible": visible}
