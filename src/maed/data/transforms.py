"""Clip and image augmentations (ORIGINAL.md §5), with one parameter draw per clip.

A sample entering a pipeline is a dict of numpy arrays for T frames (an image is a clip of one frame)::

    frames  list of T arrays H x W x 3, uint8 RGB (frames may differ in size)
    bbox    T x 4 (cx, cy, w, h) pixels, or None (the frames are already crops: no crop is applied)
    kp_2d   T x 49 x 3 (x, y pixels, confidence)
    kp_3d   T x 49 x 4 (metres, confidence), optional
    pose    T x 3J axis-angle of the body model's J joints (global orientation first; SMPL: T x 72),
            optional

:class:`ClipAugmentation` draws one :class:`ClipParams` per clip and applies it to every frame, in the
original's order: crop (scale/rotation jitter, random crop; each frame with its own box) -> colour jitter
-> random erase -> horizontal flip -> ImageNet normalisation. The output holds ``images`` (T x 3 x H x W
float32, normalised), ``kp_2d`` (T x 49 x 3, x and y in [-1, 1]), ``kp_3d`` and ``pose`` (transformed),
all torch tensors. With ``normalize=False`` images stay T x H x W x 3 uint8 and keypoints stay in pixels
of the crop (for drawing and tests).

Fixes relative to the original (ORIGINAL.md §9): random erase on the left/right erases columns; erasing
keypoints (``erase_kp``) works; the flip mirrors all 24 SMPL joints (the original skipped joint 23);
a crop rotation also rotates the 3D keypoints and the global orientation, so that 2D and 3D targets stay
consistent (the original rotated only the image and the 2D keypoints).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import torch

from maed.config import DatasetConfig
from maed.data.bbox import BASE_SCALE
from maed.data.keypoints import SMPL_FLIP_PERM, SPIN_FLIP_PERM
from maed.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ERASE_SIDES = ("left", "right", "top", "bottom")
COLOR_OPS = ("brightness", "contrast", "saturation", "hue")
PIPELINES = ("video_3d", "video_2d", "image", "eval")


# ----------------------------------------------------------------------------------------- joint flips
def _flip_permutations() -> tuple[np.ndarray, np.ndarray]:
    """(49-joint permutation, 24-joint SMPL permutation) that swap left and right."""
    return np.asarray(SPIN_FLIP_PERM, dtype=np.int64), np.asarray(SMPL_FLIP_PERM, dtype=np.int64)


def flip_keypoints_2d(kp_2d: np.ndarray, width: int) -> np.ndarray:
    """Mirror 2D keypoints of an image ``width`` pixels wide: ... x 49 x C (x, y pixels, ...).

    Left and right joints swap names, then x -> (width - 1) - x (the pixel-centre convention of an image
    flip). Other columns are carried along.
    """
    perm, _ = _flip_permutations()
    out = np.array(kp_2d[..., perm, :], dtype=np.float32, copy=True)
    out[..., 0] = (width - 1.0) - out[..., 0]
    return out


def flip_keypoints_3d(kp_3d: np.ndarray) -> np.ndarray:
    """Mirror 3D keypoints ... x 49 x C (x, y, z metres, confidence...) about the pelvis's x.

    Left and right joints swap names, then x is mirrored about the mean of the two hips (joints 27, 28).
    """
    perm, _ = _flip_permutations()
    out = np.array(kp_3d[..., perm, :], dtype=np.float32, copy=True)
    pelvis_x = 0.5 * (out[..., 27, 0] + out[..., 28, 0])
    out[..., 0] = 2.0 * pelvis_x[..., None] - out[..., 0]
    return out


def flip_smpl_pose(pose: np.ndarray) -> np.ndarray:
    """Mirror SMPL axis-angle poses ... x 72 about the x = 0 plane: every joint (all 24, root included)
    takes its mirror joint's rotation with the y and z components negated."""
    _, perm = _flip_permutations()
    return flip_pose(pose, perm)


def flip_pose(pose: np.ndarray, perm) -> np.ndarray:
    """Mirror axis-angle poses ... x 3J about the x = 0 plane: joint j takes joint ``perm[j]``'s rotation
    with the y and z components negated. ``perm`` is the body model's left/right permutation
    (``maed.body.layout.PoseLayout.flip_permutation``). Right for any body model whose rotations are
    expressed in frames that the mirror maps onto each other, as SMPL's and Anny's (world-aligned at rest,
    mirror-symmetric rest pose)."""
    perm = np.asarray(perm, dtype=np.int64)
    aa = np.asarray(pose, dtype=np.float32).reshape(*pose.shape[:-1], len(perm), 3)
    out = aa[..., perm, :] * np.array([1.0, -1.0, -1.0], dtype=np.float32)
    return out.reshape(pose.shape)


# ------------------------------------------------------------------------------------------ crop/rotate
def crop_affine(
    bbox: np.ndarray,
    *,
    scale: float = BASE_SCALE,
    rot: float = 0.0,
    shift: tuple[float, float] = (0.0, 0.0),
    width: int = 224,
    height: int = 224,
) -> np.ndarray:
    """The 2 x 3 affine matrix from frame pixels to crop pixels (ORIGINAL.md §5).

    bbox: (cx, cy, w, h) pixels. The source rectangle is (w, h) x ``scale``, centred at the box centre
    plus ``shift`` x (w, h), rotated by ``rot`` degrees; it maps onto the ``width`` x ``height`` crop. Built
    like the original from three points with ``cv2.getAffineTransform`` (float32 points).
    """
    bbox = np.asarray(bbox, dtype=np.float64)
    src_w, src_h = bbox[2] * scale, bbox[3] * scale
    center = bbox[:2] + bbox[2:4] * np.asarray(shift, dtype=np.float64)
    rad = np.deg2rad(rot)
    c, s = np.cos(rad), np.sin(rad)
    down = np.array([-s * src_h * 0.5, c * src_h * 0.5])
    right = np.array([c * src_w * 0.5, s * src_w * 0.5])
    src = np.stack([center, center + down, center + right]).astype(np.float32)
    dst_c = np.array([width * 0.5, height * 0.5])
    dst = np.stack([dst_c, dst_c + [0.0, height * 0.5], dst_c + [width * 0.5, 0.0]]).astype(np.float32)
    return cv2.getAffineTransform(src, dst)


def warp_frame(image: np.ndarray, affine: np.ndarray, *, width: int = 224, height: int = 224) -> np.ndarray:
    """Crop H x W x 3 uint8 with a 2 x 3 affine: bilinear, black outside the frame."""
    return cv2.warpAffine(
        image, affine, (int(width), int(height)), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )


def apply_affine_2d(kp: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Map keypoints ... x C (x, y, extra columns kept) through a 2 x 3 affine. Returns float32."""
    kp = np.asarray(kp, dtype=np.float64)
    out = np.array(kp, dtype=np.float64, copy=True)
    out[..., :2] = kp[..., :2] @ affine[:, :2].T + affine[:, 2]
    return out.astype(np.float32)


def in_plane_rotation(rot: float) -> np.ndarray:
    """The 3 x 3 camera-frame rotation that matches an image crop rotated by ``rot`` degrees.

    The crop samples a source rectangle turned by +rot (x right, y down), so the content appears turned by
    -rot about the optical (z) axis. Applying this to camera-frame points (x right, y down, z forward)
    keeps their orthographic projection consistent with the rotated crop.
    """
    rad = np.deg2rad(-rot)
    c, s = np.cos(rad), np.sin(rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotate_keypoints_3d(kp_3d: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Rotate ... x K x C keypoints (xyz first) about the camera origin; other columns are kept."""
    out = np.array(kp_3d, dtype=np.float32, copy=True)
    out[..., :3] = (np.asarray(kp_3d[..., :3], dtype=np.float64) @ rotation.T).astype(np.float32)
    return out


def rotate_global_orient(pose: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Left-multiply the global orientation (first 3 values of ... x 72 axis-angle) by ``rotation``."""
    from scipy.spatial.transform import Rotation

    out = np.array(pose, dtype=np.float32, copy=True)
    root = np.asarray(pose[..., :3], dtype=np.float64).reshape(-1, 3)
    rotated = (Rotation.from_matrix(rotation) * Rotation.from_rotvec(root)).as_rotvec()
    out[..., :3] = rotated.reshape(pose[..., :3].shape)
    return out


# ---------------------------------------------------------------------------------------- colour jitter
def _lut(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def adjust_frame_color(frame: np.ndarray, name: str, factor: float) -> np.ndarray:
    """One colour operation on an H x W x 3 uint8 RGB frame, with torchvision's PIL semantics.

    brightness f: x f; contrast f: blend with the frame's mean grey level (ITU-R 601-2 luma, rounded as
    PIL's); saturation f: blend with the grey image; hue h in [-0.5, 0.5]: the hue channel shifted by
    h x 255 (wrapping). Results are rounded and clipped to uint8.
    """
    ramp = np.arange(256, dtype=np.float64)
    if name == "brightness":
        return cv2.LUT(frame, _lut(ramp * factor))
    if name == "contrast":
        mean = np.floor(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).mean() + 0.5)
        return cv2.LUT(frame, _lut(mean + factor * (ramp - mean)))
    if name == "saturation":
        gray = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        return cv2.addWeighted(frame, factor, gray, 1.0 - factor, 0.0)
    if name == "hue":
        hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV_FULL)
        hsv[..., 0] += np.uint8(int(round(factor * 255.0)) % 256)  # uint8 wrap-around
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)
    raise ValueError(f"unknown colour op {name!r}; expected one of {COLOR_OPS}")


def adjust_color(images: np.ndarray, ops: tuple[tuple[str, float], ...]) -> np.ndarray:
    """Apply colour operations, in order, to every frame of T x H x W x 3 uint8 (see adjust_frame_color)."""
    out = np.empty_like(images)
    for t, frame in enumerate(images):
        for name, factor in ops:
            frame = adjust_frame_color(frame, name, factor)
        out[t] = frame
    return out


# ---------------------------------------------------------------------------------------- random erase
def erase_region(image: np.ndarray, side: str, ratio: float, fill: np.ndarray | None = None) -> tuple:
    """Erase a ``ratio`` fraction of H x W x 3 ``image`` (in place) from ``side``.

    left/right erase columns, top/bottom rows (the original's left/right erased rows, ORIGINAL.md §9). ``fill``:
    None for zeros, else an array broadcastable to the erased block. Returns (axis, start, stop) of the
    erased band along axis 1 (columns) or 0 (rows); start == stop when nothing was erased.
    """
    h, w = image.shape[:2]
    if side in ("left", "right"):
        n = int(w * ratio)
        start, stop = (0, n) if side == "left" else (w - n, w)
        axis = 1
    elif side in ("top", "bottom"):
        n = int(h * ratio)
        start, stop = (0, n) if side == "top" else (h - n, h)
        axis = 0
    else:
        raise ValueError(f"unknown erase side {side!r}; expected one of {ERASE_SIDES}")
    if n > 0:
        index = (slice(None), slice(start, stop)) if axis == 1 else (slice(start, stop),)
        if fill is None:
            image[index] = 0
        else:
            image[index] = fill[: image[index].shape[0], : image[index].shape[1]]
    return axis, start, stop


def erased_keypoints(kp_2d: np.ndarray, side: str, ratio: float, size: tuple[int, int], margin: float):
    """Boolean K mask of keypoints lying inside the erased band deeper than ``margin`` x the image side."""
    h, w = size
    x, y = kp_2d[:, 0], kp_2d[:, 1]
    if side == "left":
        return int(w * ratio) - x > w * margin
    if side == "right":
        return int(w * ratio) - (w - x) > w * margin
    if side == "top":
        return int(h * ratio) - y > h * margin
    return int(h * ratio) - (h - y) > h * margin


# --------------------------------------------------------------------------------------------- params
@dataclass(frozen=True)
class ClipParams:
    """The augmentation drawn once for a clip of T frames."""

    scale: float = BASE_SCALE
    rot: float = 0.0  # degrees
    shift: tuple[float, float] = (0.0, 0.0)  # fraction of the box (w, h)
    color_ops: tuple[tuple[str, float], ...] = ()  # in the (shuffled) order applied
    erase_side: str = "left"
    erase_ratios: tuple[float, ...] = ()  # per frame; 0 = not erased
    flip: bool = False


@dataclass
class ClipAugmentation:
    """One augmentation pipeline (ORIGINAL.md §5) with explicit switches; see the module docstring.

    ``scale`` jitters in [1.3 - size_jitter, 1.3 + size_jitter] and ``rot`` in [-rot_jitter, rot_jitter]
    degrees. With probability ``random_crop_p`` the scale is instead drawn in [1.3 - random_crop_size, 1.3]
    and the centre shifts by up to +-(1.3 - scale) / 2 box sizes. Colour jitter draws brightness, contrast,
    saturation factors in [max(0, 1 - c), 1 + c] and hue in [-c, c] (``c = color_jitter``), applied in one
    random order. Random erase picks one side per clip; each frame is erased with probability
    ``erase_prob`` over a fraction U(0, erase_part), filled with zeros (or noise with ``erase_fill``).
    The flip happens with probability ``flip_prob``; it mirrors the pose with ``pose_flip_perm``, the body
    model's left/right joint permutation (``None``: SMPL's 24 joints; datasets fill it in from their
    ``pose_layout``).

    Defaults are the config schema's ``DATASET.*`` (the original MAED's): ``ClipAugmentation()`` equals
    ``ClipAugmentation.from_config(Config().DATASET)``. :meth:`identity` is the evaluation crop.
    """

    width: int = DatasetConfig.WIDTH
    height: int = DatasetConfig.HEIGHT
    size_jitter: float = DatasetConfig.SIZE_JITTER
    rot_jitter: float = DatasetConfig.ROT_JITTER
    random_crop_p: float = DatasetConfig.RANDOM_CROP_P
    random_crop_size: float = DatasetConfig.RANDOM_CROP_SIZE
    color_jitter: float = DatasetConfig.COLOR_JITTER
    erase_prob: float = DatasetConfig.ERASE_PROB
    erase_part: float = DatasetConfig.ERASE_PART
    erase_fill: bool = DatasetConfig.ERASE_FILL
    erase_kp: bool = DatasetConfig.ERASE_KP
    erase_margin: float = DatasetConfig.ERASE_MARGIN
    flip_prob: float = DatasetConfig.RANDOM_FLIP
    normalize: bool = True
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)
    pose_flip_perm: tuple[int, ...] | None = None

    @classmethod
    def from_config(cls, dataset_cfg, *, normalize: bool = True) -> ClipAugmentation:
        """The full pipeline (``video_3d``) of a ``DatasetConfig`` (``cfg.DATASET``)."""
        return cls(
            width=dataset_cfg.WIDTH,
            height=dataset_cfg.HEIGHT,
            size_jitter=dataset_cfg.SIZE_JITTER,
            rot_jitter=dataset_cfg.ROT_JITTER,
            random_crop_p=dataset_cfg.RANDOM_CROP_P,
            random_crop_size=dataset_cfg.RANDOM_CROP_SIZE,
            color_jitter=dataset_cfg.COLOR_JITTER,
            erase_prob=dataset_cfg.ERASE_PROB,
            erase_part=dataset_cfg.ERASE_PART,
            erase_fill=dataset_cfg.ERASE_FILL,
            erase_kp=dataset_cfg.ERASE_KP,
            erase_margin=dataset_cfg.ERASE_MARGIN,
            flip_prob=dataset_cfg.RANDOM_FLIP,
            normalize=normalize,
        )

    @classmethod
    def identity(
        cls, *, width: int = DatasetConfig.WIDTH, height: int = DatasetConfig.HEIGHT, normalize: bool = True
    ) -> ClipAugmentation:
        """The evaluation crop: the box x 1.3 onto ``width`` x ``height``, then normalisation; nothing random."""
        return cls(
            width=width,
            height=height,
            size_jitter=0.0,
            rot_jitter=0.0,
            random_crop_p=0.0,
            color_jitter=0.0,
            erase_prob=0.0,
            erase_part=0.0,
            erase_kp=False,
            flip_prob=0.0,
            normalize=normalize,
        )

    def for_pipeline(self, kind: str) -> ClipAugmentation:
        """This augmentation as the original's pipeline ``kind`` (see :func:`build_transforms`)."""
        if kind not in PIPELINES:
            raise ConfigError(f"transform pipeline {kind!r}: expected one of {PIPELINES}")
        if kind == "eval":
            return ClipAugmentation.identity(width=self.width, height=self.height, normalize=self.normalize)
        if kind == "video_3d":
            return self
        return replace(self, color_jitter=0.0)  # the original's 2D-video and image pipelines have no colour jitter

    def draw(self, num_frames: int, rng: np.random.Generator) -> ClipParams:
        """Draw the parameters of one clip of ``num_frames`` frames."""
        scale = rng.uniform(BASE_SCALE - self.size_jitter, BASE_SCALE + self.size_jitter)
        rot = rng.uniform(-self.rot_jitter, self.rot_jitter)
        shift = (0.0, 0.0)
        if rng.random() < self.random_crop_p:
            scale = rng.uniform(BASE_SCALE - self.random_crop_size, BASE_SCALE)
            half = (BASE_SCALE - scale) / 2.0
            shift = (float(rng.uniform(-half, half)), float(rng.uniform(-half, half)))

        ops: list[tuple[str, float]] = []
        c = self.color_jitter
        if c > 0:
            for name in ("brightness", "contrast", "saturation"):
                ops.append((name, float(rng.uniform(max(0.0, 1.0 - c), 1.0 + c))))
            ops.append(("hue", float(rng.uniform(-min(c, 0.5), min(c, 0.5)))))
            ops = [ops[i] for i in rng.permutation(len(ops))]

        side = ERASE_SIDES[int(rng.integers(len(ERASE_SIDES)))]
        hit = rng.random(num_frames) < self.erase_prob
        ratios = np.where(hit, rng.random(num_frames) * self.erase_part, 0.0)
        flip = bool(rng.random() < self.flip_prob)
        return ClipParams(
            scale=float(scale),
            rot=float(rot),
            shift=shift,
            color_ops=tuple(ops),
            erase_side=side,
            erase_ratios=tuple(float(r) for r in ratios),
            flip=flip,
        )

    def __call__(self, sample: dict, rng: np.random.Generator | None = None, params: ClipParams | None = None) -> dict:
        """Augment one clip (see the module docstring for the fields). ``params`` overrides the draw."""
        frames = sample["frames"]
        T = len(frames)
        if params is None:
            params = self.draw(T, rng if rng is not None else np.random.default_rng())
        kp_2d = np.array(sample["kp_2d"], dtype=np.float32, copy=True)
        kp_3d = None if sample.get("kp_3d") is None else np.array(sample["kp_3d"], dtype=np.float32)
        pose = None if sample.get("pose") is None else np.array(sample["pose"], dtype=np.float32)
        bbox = sample.get("bbox")

        # crop: one draw, each frame with its own box
        if bbox is not None:
            crops = np.empty((T, self.height, self.width, 3), dtype=np.uint8)
            for t in range(T):
                A = crop_affine(
                    bbox[t],
                    scale=params.scale,
                    rot=params.rot,
                    shift=params.shift,
                    width=self.width,
                    height=self.height,
                )
                crops[t] = warp_frame(frames[t], A, width=self.width, height=self.height)
                kp_2d[t] = apply_affine_2d(kp_2d[t], A)
            if params.rot != 0.0:
                R = in_plane_rotation(params.rot)
                if kp_3d is not None:
                    kp_3d = rotate_keypoints_3d(kp_3d, R)
                if pose is not None:
                    pose = rotate_global_orient(pose, R)
        else:  # already crops (InstaVariety): resize if needed, no geometric augmentation
            crops = np.empty((T, self.height, self.width, 3), dtype=np.uint8)
            for t in range(T):
                h, w = frames[t].shape[:2]
                if (h, w) != (self.height, self.width):
                    crops[t] = cv2.resize(frames[t], (self.width, self.height), interpolation=cv2.INTER_LINEAR)
                    kp_2d[t, :, 0] *= self.width / w
                    kp_2d[t, :, 1] *= self.height / h
                else:
                    crops[t] = frames[t]

        if params.color_ops:
            crops = adjust_color(crops, params.color_ops)

        if any(r > 0 for r in params.erase_ratios):
            noise_rng = rng if rng is not None else np.random.default_rng()
            for t, ratio in enumerate(params.erase_ratios):
                if ratio <= 0:
                    continue
                fill = None
                if self.erase_fill:
                    fill = noise_rng.integers(0, 256, size=crops[t].shape, dtype=np.uint8)
                erase_region(crops[t], params.erase_side, ratio, fill)
                if self.erase_kp:
                    hidden = erased_keypoints(
                        kp_2d[t], params.erase_side, ratio, (self.height, self.width), self.erase_margin
                    )
                    kp_2d[t, hidden, 2] = 0.0

        if params.flip:
            crops = np.stack([cv2.flip(frame, 1) for frame in crops])
            kp_2d = flip_keypoints_2d(kp_2d, self.width)
            if kp_3d is not None:
                kp_3d = flip_keypoints_3d(kp_3d)
            if pose is not None:
                pose = flip_smpl_pose(pose) if self.pose_flip_perm is None else flip_pose(pose, self.pose_flip_perm)

        out = {k: v for k, v in sample.items() if k not in ("frames", "kp_2d", "kp_3d", "pose")}
        if not self.normalize:
            out.update(images=crops, kp_2d=kp_2d, kp_3d=kp_3d, pose=pose)
            return out
        out["images"] = normalize_images(crops, mean=self.mean, std=self.std)
        kp_2d[..., 0] = 2.0 * kp_2d[..., 0] / self.width - 1.0
        kp_2d[..., 1] = 2.0 * kp_2d[..., 1] / self.height - 1.0
        out["kp_2d"] = torch.from_numpy(kp_2d)
        out["kp_3d"] = None if kp_3d is None else torch.from_numpy(kp_3d)
        out["pose"] = None if pose is None else torch.from_numpy(pose)
        return out


def normalize_images(images: np.ndarray, *, mean: tuple = IMAGENET_MEAN, std: tuple = IMAGENET_STD) -> torch.Tensor:
    """T x H x W x 3 uint8 RGB -> T x 3 x H x W float32, (x / 255 - mean) / std."""
    T, H, W, _ = images.shape
    out = np.empty((T, 3, H, W), dtype=np.float32)
    offset = [np.float32(m * 255.0) for m in mean]
    scale = [np.float32(1.0 / (s * 255.0)) for s in std]
    for t in range(T):  # per-plane loops over cv2.split: several times faster than a strided transpose
        for c, plane in enumerate(cv2.split(images[t])):
            np.subtract(plane, offset[c], out=out[t, c], dtype=np.float32)
            out[t, c] *= scale[c]
    return torch.from_numpy(out)


def build_transforms(kind: str, **fields) -> ClipAugmentation:
    """The original's pipelines by name (ORIGINAL.md §5), from :class:`ClipAugmentation` ``fields``
    (the schema's defaults for the rest).

    ``video_3d``: crop, colour jitter, erase, flip, normalise. ``video_2d``: the same without colour
    jitter. ``image``: crop, erase, flip, normalise (the original's image pipeline has no colour jitter).
    ``eval``: the crop with default parameters (scale 1.3, no jitter) and normalisation only.
    """
    return ClipAugmentation(**fields).for_pipeline(kind)
