"""Video-clip and image datasets over the processed databases (ORIGINAL.md §4).

A database is a dict of per-row arrays (``maed.data.database``): ``vid_name``, ``frame_id``, ``img_name``
(relative to the dataset root given here), ``joints2D`` (n x 49 x 3 pixels), ``joints3D`` (n x 49 x 4
metres), ``pose`` (n x 3J axis-angle, or n x J x 3 x 3 rotation matrices), ``shape`` (n x S),
``bbox`` (n x 4: cx, cy, w, h pixels), ... Missing optional fields give zeros (and zero weights).

J and S are those of the run's body model, given as a ``pose_layout`` (``maed.body.layout.PoseLayout``;
default SMPL: J = 24, S = 10, so ``theta`` is 85 wide); a database whose pose or shape does not fit it is
refused with one ``DataError``. The layout's left/right permutation drives the horizontal flip.

Samples are dicts of tensors (docs/DESIGN.md, "Dataset samples"). Random choices (frame sampling,
augmentation) come from a numpy generator seeded from torch's RNG for every item, so DataLoader
workers draw different augmentations and ``torch.manual_seed`` makes a run reproducible.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from maed.body.geometry import rotmat_to_axis_angle
from maed.body.layout import PoseLayout
from maed.body.layout import pose_layout as make_pose_layout
from maed.config import DatasetConfig
from maed.data.crop_cache import CropCache, read_image
from maed.data.database import as_str, find_image_prefix, image_path, load_database, validate_database
from maed.data.transforms import ClipAugmentation
from maed.errors import ConfigError, DataError

NUM_JOINTS = 49
VALID_MODES = ("original", "strict")


# ------------------------------------------------------------------------------------------ chunking
def reflect_indices(n: int, total: int) -> np.ndarray:
    """Positions 0..total-1 of a length-``n`` sequence padded by reflection (numpy's ``'reflect'``,
    bouncing back and forth when ``total`` exceeds twice the length)."""
    p = np.arange(total)
    if n <= 1:
        return np.zeros(total, dtype=np.int64)
    period = 2 * (n - 1)
    m = p % period
    return np.where(m < n, m, period - m).astype(np.int64)


def stride_from_overlap(sample_pool: int, overlap: float) -> int:
    """The original's rule: ``overlap < 1`` is a fraction (stride = max(int(pool x (1 - overlap)), 1)),
    ``overlap >= 1`` is the stride itself (3DPW-train uses 8)."""
    if overlap < 1:
        return max(int(sample_pool * (1 - overlap)), 1)
    return int(overlap)


def split_into_chunks(
    vid_names: np.ndarray, sample_pool: int, stride: int, pad: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Cut every video (a run of equal ``vid_name``) into windows of ``sample_pool`` rows (ORIGINAL.md §4).

    With ``pad``, each video is first padded at its end by reflection to a multiple of ``sample_pool``,
    so no frame is dropped; without it, videos shorter than a window are skipped and tails dropped.
    Returns (chunks, real): N x sample_pool row indices, and N x sample_pool booleans that are False at
    padded positions.
    """
    names = np.asarray(vid_names)
    n = len(names)
    if n == 0:
        return np.zeros((0, sample_pool), dtype=np.int64), np.zeros((0, sample_pool), dtype=bool)
    change = np.flatnonzero(names[1:] != names[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [n]])
    chunks, real = [], []
    for s, e in zip(starts, ends):
        length = e - s
        total = length + ((sample_pool - length % sample_pool) % sample_pool if pad else 0)
        if total < sample_pool:
            continue
        positions = reflect_indices(length, total) if pad else np.arange(total)
        for w in range(0, total - sample_pool + 1, stride):
            chunks.append(s + positions[w : w + sample_pool])
            real.append(np.arange(w, w + sample_pool) < length)
    return np.asarray(chunks, dtype=np.int64).reshape(-1, sample_pool), np.asarray(real).reshape(-1, sample_pool)


def valid_mask(chunk: np.ndarray, real: np.ndarray, mode: str = "original") -> np.ndarray:
    """Which frames of a chunk count in evaluation.

    ``original``: frame t is valid when its row index exceeds frame t-1's (frame 0 always), the
    original's test; a video shorter than half a window is reflected back and forth and its repeated
    frames count twice (ORIGINAL.md §9). ``strict``: exactly the frames that are not padding.
    """
    if mode == "strict":
        return np.asarray(real, dtype=bool).copy()
    if mode != "original":
        raise ConfigError(f"valid mode {mode!r}: expected one of {VALID_MODES}")
    valid = (chunk - np.roll(chunk, 1)) > 0
    valid[0] = True
    return valid


def sample_frames(
    chunk: np.ndarray,
    seqlen: int,
    *,
    random_start: bool = False,
    random_sample: bool = False,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Pick ``seqlen`` positions of a chunk with ``sample_freq = len(chunk) // seqlen`` (ORIGINAL.md §4).

    ``random_sample``: one random frame in each ``sample_freq`` bin; ``random_start``: every
    ``sample_freq``-th frame from a random offset in [0, sample_freq); otherwise from offset 0.
    Returns positions into ``chunk``.
    """
    freq = max(len(chunk) // seqlen, 1)
    if random_sample:
        return freq * np.arange(seqlen) + rng.integers(0, freq, size=seqlen)
    start = int(rng.integers(0, freq)) if random_start else 0
    return np.arange(start, len(chunk), freq)[:seqlen]


# ------------------------------------------------------------------------------------------ helpers
def _item_rng() -> np.random.Generator:
    # torch's RNG is seeded per DataLoader worker (and per epoch), unlike a generator built in __init__
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))


def _load(db, label: str | None) -> tuple[dict, str]:
    if isinstance(db, dict):
        return db, label or "<database>"

    return load_database(db), str(db)


def _check_database(db: dict, label: str, need_video: bool) -> int:
    n = validate_database(db, label)
    if need_video and "vid_name" not in db:
        raise DataError(f"{label}: missing field 'vid_name' (needed for video clips); fields present: {sorted(db)}")
    return n


def _pose_axis_angle(pose: np.ndarray) -> np.ndarray:
    """Rows of pose: N x 3J axis-angle, or N x J x 3 x 3 rotation matrices (converted) -> N x 3J."""
    pose = np.asarray(pose)
    if pose.ndim == 4:
        aa = rotmat_to_axis_angle(torch.from_numpy(pose.astype(np.float64)))
        return aa.reshape(pose.shape[0], -1).numpy().astype(np.float32)
    return pose.astype(np.float32).reshape(pose.shape[0], -1)


def _resolve_layout(pose_layout: PoseLayout | None, db: dict, label: str, transforms):
    """The run's pose layout (default SMPL), checked against the database's pose and shape widths, and the
    transforms with the layout's flip permutation filled in."""
    layout = pose_layout if pose_layout is not None else make_pose_layout("smpl")
    model = f"{layout.body_model} (rig {layout.rig})" if layout.body_model != "smpl" else "smpl"
    if "pose" in db:
        pose = np.asarray(db["pose"])
        joints = pose.shape[1] if pose.ndim == 4 else pose.shape[1] // 3
        if joints != layout.num_joints:
            raise DataError(
                f"{label}: 'pose' holds {joints} joints per row but the body model of this run, {model}, has "
                f"{layout.num_joints}; set MODEL.BODY_MODEL / MODEL.BODY_RIG to the database's body model"
            )
    if "shape" in db and np.asarray(db["shape"]).shape[1] != layout.num_betas:
        raise DataError(
            f"{label}: 'shape' has {np.asarray(db['shape']).shape[1]} values per row but the body model of this "
            f"run, {model}, has {layout.num_betas}; set MODEL.BODY_MODEL / MODEL.BODY_RIG to the database's"
        )
    if layout.body_model != "smpl" and isinstance(transforms, ClipAugmentation):
        perm = tuple(layout.flip_permutation)
        if transforms.pose_flip_perm is None:
            transforms = replace(transforms, pose_flip_perm=perm)
        elif len(transforms.pose_flip_perm) != len(perm):
            raise ConfigError(
                f"{label}: the transforms' pose flip permutation has {len(transforms.pose_flip_perm)} joints, "
                f"the body model {model} {len(perm)}"
            )
    return layout, transforms


def _frame_str(frame) -> str:
    """A ``frame_id`` for ``instance_id``: frame numbers as integers, names (MPI-INF-3DHP's
    ``frame_000001``) as they are."""
    if isinstance(frame, (int, np.integer)) or (isinstance(frame, (float, np.floating)) and float(frame).is_integer()):
        return str(int(frame))
    return as_str(frame)


class _FrameSource:
    """Reads rows' frames, boxes and 2D keypoints, from full frames or from a crop cache."""

    def __init__(self, db: dict, dataset_root, crop_cache_dir, label: str, transforms):
        self.db = db
        self.root = Path(dataset_root) if dataset_root is not None else None
        # the authors' files bake in 'data/<dataset>/...': found once here, dropped from every name
        self.prefix = find_image_prefix(db["img_name"], self.root) if self.root is not None else ""
        self.cache = None
        if "bbox" in db and CropCache.is_complete(crop_cache_dir):
            self.cache = CropCache(crop_cache_dir)
            self.cache.check_database(db, label)
            if isinstance(transforms, ClipAugmentation):
                self.cache.check_coverage(transforms.size_jitter, transforms.rot_jitter)

    def path(self, row: int) -> str:
        return image_path(self.root, self.db["img_name"][row], self.prefix)

    def load(self, rows: np.ndarray) -> dict:
        """frames (list of H x W x 3), bbox (T x 4 or None), kp_2d (T x 49 x 3) in the frames' pixels."""
        T = len(rows)
        kp_2d = (
            np.asarray(self.db["joints2D"][rows], dtype=np.float64)
            if "joints2D" in self.db
            else np.zeros((T, NUM_JOINTS, 3))
        )
        bbox = np.asarray(self.db["bbox"][rows], dtype=np.float64) if "bbox" in self.db else None
        if self.cache is not None:
            frames = [self.cache.read(r) for r in rows]
            bbox = self.cache.map_bbox(rows, bbox)
            kp_2d = self.cache.map_points(rows, kp_2d)
        else:
            frames = [read_image(self.path(r)) for r in rows]
        return {"frames": frames, "bbox": bbox, "kp_2d": kp_2d}


# ------------------------------------------------------------------------------------------ datasets
class VideoDataset(Dataset):
    """Clips of ``seqlen`` frames sampled from ``sample_pool``-frame windows of each video (ORIGINAL.md §4).

    Args:
        db: a ``*_db.pt`` path or a loaded database dict.
        dataset_root: directory the ``img_name`` entries are relative to.
        seqlen: frames per clip (16 in the presets); ``None`` or ``sample_pool`` returns whole windows.
        sample_pool: window length (128 in the presets); ``sample_freq = sample_pool // seqlen``.
        overlap: fraction of window overlap (0.5 -> stride 64), or an integer stride >= 1.
        random_start, random_sample: frame sampling inside a window (at most one of them).
        transforms: a :class:`ClipAugmentation` (default: the evaluation crop and normalisation).
        The sampling defaults are the config schema's ``DATASET.*``.
        is_train: without it, samples also carry ``bbox``, ``paths``, ``instance_id`` and ``valid``.
        crop_cache_dir: a crop cache of this database (``maed.data.crop_cache``), used when complete.
        pad: reflect-pad every video to a multiple of the window (the original always does).
        valid_mode: ``original`` or ``strict`` (padded frames never valid; see :func:`valid_mask`).
        name: the dataset's name, for messages.

        pose_layout: the run's body model (``maed.body.layout.PoseLayout``; default SMPL's).

    Sample (T = seqlen): ``images`` T x 3 x H x W (ImageNet-normalised), ``kp_2d`` T x 49 x 3 (x, y in
    [-1, 1] of the crop, confidence), ``kp_3d`` T x 49 x 4 (metres, confidence), ``theta`` T x (3 + 3J + S)
    (cam (1, 0, 0), pose, shape; SMPL: 85), ``w_smpl`` T (1 where the database has pose), ``w_3d`` T (1 where a
    frame has any confident 3D joint), ``index`` (1,); evaluation adds ``bbox`` T x 4 (the database's
    box in frame pixels), ``paths`` (T image paths), ``instance_id`` (T ``vid/frame``), ``valid`` T bool.
    """

    def __init__(
        self,
        db: str | os.PathLike | dict,
        *,
        dataset_root: str | os.PathLike | None,
        seqlen: int | None = DatasetConfig.SEQLEN,
        sample_pool: int = DatasetConfig.SAMPLE_POOL,
        overlap: float = DatasetConfig.OVERLAP,
        random_start: bool = DatasetConfig.RANDOM_START,
        random_sample: bool = DatasetConfig.RANDOM_SAMPLE,
        transforms: ClipAugmentation | None = None,
        is_train: bool = True,
        crop_cache_dir: str | os.PathLike | None = None,
        pad: bool = True,
        valid_mode: str = "original",
        name: str | None = None,
        pose_layout: PoseLayout | None = None,
    ):
        if random_start and random_sample:
            raise ConfigError("DATASET.RANDOM_START and DATASET.RANDOM_SAMPLE cannot both be true")
        if valid_mode not in VALID_MODES:
            raise ConfigError(f"valid mode {valid_mode!r}: expected one of {VALID_MODES}")
        self.db, self.label = _load(db, name)
        self.name = name or self.label
        _check_database(self.db, self.label, need_video=True)
        self.sample_pool = int(sample_pool)
        self.seqlen = int(seqlen) if seqlen else self.sample_pool
        if self.seqlen > self.sample_pool:
            raise ConfigError(f"seqlen {self.seqlen} is longer than the sample pool {self.sample_pool}")
        self.stride = stride_from_overlap(self.sample_pool, overlap)
        self.random_start, self.random_sample = bool(random_start), bool(random_sample)
        transforms = transforms if transforms is not None else ClipAugmentation.identity()
        self.layout, self.transforms = _resolve_layout(pose_layout, self.db, self.label, transforms)
        self.is_train = bool(is_train)
        self.valid_mode = valid_mode
        self.chunks, self.real = split_into_chunks(self.db["vid_name"], self.sample_pool, self.stride, pad)
        self.source = _FrameSource(self.db, dataset_root, crop_cache_dir, self.label, self.transforms)
        self.has_pose = "pose" in self.db
        if self.has_pose and "shape" not in self.db:
            raise DataError(f"{self.label}: has 'pose' but no 'shape'")

    @property
    def uses_crop_cache(self) -> bool:
        return self.source.cache is not None

    def __len__(self) -> int:
        return len(self.chunks)

    def sample_rows(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(rows of the clip, positions in the window) for window ``index``."""
        pos = sample_frames(
            self.chunks[index],
            self.seqlen,
            random_start=self.random_start,
            random_sample=self.random_sample,
            rng=rng,
        )
        return self.chunks[index][pos], pos

    def __getitem__(self, index: int) -> dict:
        rng = _item_rng()
        rows, pos = self.sample_rows(index, rng)
        T = len(rows)
        db = self.db
        sample = self.source.load(rows)
        sample["kp_3d"] = (
            np.asarray(db["joints3D"][rows], dtype=np.float32)
            if "joints3D" in db
            else np.zeros((T, NUM_JOINTS, 4), np.float32)
        )
        pose_dim, num_betas = self.layout.pose_dim, self.layout.num_betas
        sample["pose"] = _pose_axis_angle(db["pose"][rows]) if self.has_pose else np.zeros((T, pose_dim), np.float32)
        out = self.transforms(sample, rng=rng)

        shape = (
            np.asarray(db["shape"][rows], dtype=np.float32) if self.has_pose else np.zeros((T, num_betas), np.float32)
        )
        cam = np.tile(np.array([1.0, 0.0, 0.0], dtype=np.float32), (T, 1))
        kp_3d = torch.as_tensor(out["kp_3d"]).float()
        target = {
            "images": out["images"],
            "kp_2d": torch.as_tensor(out["kp_2d"]).float(),
            "kp_3d": kp_3d,
            "theta": torch.cat(
                [torch.from_numpy(cam), torch.as_tensor(out["pose"]).float(), torch.from_numpy(shape)], dim=1
            ),
            "w_smpl": torch.full((T,), 1.0 if self.has_pose else 0.0),
            "w_3d": (kp_3d[..., 3] > 0).any(dim=-1).float(),
            "index": torch.tensor([index]),
        }
        if not self.is_train:
            target["bbox"] = (
                torch.as_tensor(np.asarray(db["bbox"][rows], dtype=np.float32)) if "bbox" in db else torch.zeros(T, 4)
            )
            target["paths"] = [self.source.path(r) for r in rows]
            frame_ids = db["frame_id"][rows] if "frame_id" in db else rows
            target["instance_id"] = [f"{as_str(v)}/{_frame_str(f)}" for v, f in zip(db["vid_name"][rows], frame_ids)]
            valid = valid_mask(self.chunks[index], self.real[index], self.valid_mode)[pos]
            target["valid"] = torch.from_numpy(valid)
        return target


class ImageDataset(Dataset):
    """Single images (ORIGINAL.md §4): the rows of an image database, or every ``frame_step``-th row.

    Sample: the fields of a :class:`VideoDataset` sample without the T axis: ``images`` 3 x H x W,
    ``kp_2d`` 49 x 3 ([-1, 1]), ``kp_3d`` 49 x 4, ``theta`` 3 + 3J + S (the database's ``cam`` or (1, 0, 0),
    pose, shape; SMPL: 85), ``w_smpl`` and ``w_3d`` (scalars), ``bbox`` 4 (frame pixels, always: image crops
    are made from boxes), ``index`` (1,); evaluation adds ``paths`` (one path) and ``instance_id``. Arguments
    as :class:`VideoDataset`; ``pose`` may be stored as J x 3 x 3 rotation matrices (converted).
    """

    def __init__(
        self,
        db: str | os.PathLike | dict,
        *,
        dataset_root: str | os.PathLike | None,
        transforms: ClipAugmentation | None = None,
        is_train: bool = True,
        crop_cache_dir: str | os.PathLike | None = None,
        frame_step: int = 1,
        name: str | None = None,
        pose_layout: PoseLayout | None = None,
    ):
        self.db, self.label = _load(db, name)
        self.name = name or self.label
        n = _check_database(self.db, self.label, need_video=False)
        if "bbox" not in self.db:
            raise DataError(f"{self.label}: image databases need a 'bbox' field")
        self.rows = np.arange(0, n, max(int(frame_step), 1))
        transforms = transforms if transforms is not None else ClipAugmentation.identity()
        self.layout, self.transforms = _resolve_layout(pose_layout, self.db, self.label, transforms)
        self.is_train = bool(is_train)
        self.source = _FrameSource(self.db, dataset_root, crop_cache_dir, self.label, self.transforms)
        self.has_pose = "pose" in self.db

    @property
    def uses_crop_cache(self) -> bool:
        return self.source.cache is not None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        rng = _item_rng()
        row = int(self.rows[index])
        rows = np.array([row])
        db = self.db
        sample = self.source.load(rows)
        sample["kp_3d"] = (
            np.asarray(db["joints3D"][rows], dtype=np.float32)
            if "joints3D" in db
            else np.zeros((1, NUM_JOINTS, 4), np.float32)
        )
        pose_dim, num_betas = self.layout.pose_dim, self.layout.num_betas
        sample["pose"] = _pose_axis_angle(db["pose"][rows]) if self.has_pose else np.zeros((1, pose_dim), np.float32)
        out = self.transforms(sample, rng=rng)

        shape = np.asarray(db["shape"][row], dtype=np.float32) if "shape" in db else np.zeros(num_betas, np.float32)
        cam = np.asarray(db["cam"][row], dtype=np.float32) if "cam" in db else np.array([1.0, 0.0, 0.0], np.float32)
        kp_3d = torch.as_tensor(out["kp_3d"][0]).float()
        target = {
            "images": out["images"][0],
            "kp_2d": torch.as_tensor(out["kp_2d"][0]).float(),
            "kp_3d": kp_3d,
            "theta": torch.cat(
                [torch.from_numpy(cam), torch.as_tensor(out["pose"][0]).float(), torch.from_numpy(shape)]
            ),
            "w_smpl": torch.tensor(1.0 if self.has_pose else 0.0),
            "w_3d": (kp_3d[:, 3] > 0).any().float(),
            "bbox": torch.as_tensor(np.asarray(db["bbox"][row], dtype=np.float32)),
            "index": torch.tensor([index]),
        }
        if not self.is_train:
            target["paths"] = self.source.path(row)
            vid = as_str(db["vid_name"][row]) if "vid_name" in db else self.name
            frame = _frame_str(db["frame_id"][row]) if "frame_id" in db else row
            target["instance_id"] = f"{vid}/{frame}"
        return target
