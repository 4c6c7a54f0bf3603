"""BlazePose GHUM 3D landmarks for person crops: 33 body landmarks in pixels with visibility, and the same
33 in metres around the hips.

The network sees a 256 x 256 RGB crop (floats in [0, 1]) of one person, rotated so that the body is
upright and scaled so that a circle around the hips holding the whole body fills it with a 25 % margin
(MediaPipe's region of interest). It returns 39 landmarks of (x, y, z, visibility logit, presence logit)
in crop pixels (the last 6 serve MediaPipe's own tracking: 33 is the hip centre, 34 a point on the body
circle), a pose flag (the probability that a person is in the crop), and 39 world landmarks in metres
(x right, y down, z towards the camera, origin between the hips) in the crop's rotated frame.

:func:`roi_from_coco` makes that region from MoveNet's 17 keypoints (or a box), :class:`BlazePose` crops,
batches, runs and maps everything back: landmark pixels into the frame, world landmarks rotated back
upright in the frame's orientation. ``refine=True`` runs a second time on the region that the first run's
tracking landmarks give, as MediaPipe does from one video frame to the next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from maed.errors import ConfigError
from maed.perception.runtime import Network

VARIANTS = ("lite", "full", "heavy")
CROP = 256
NUM_LANDMARKS = 33
ROI_MARGIN = 1.25  # MediaPipe's enlargement of the body circle's square
KEYPOINT_THRESHOLD = 0.3  # MoveNet keypoint score above which a keypoint counts as seen
BATCH = 16

NOSE, L_SHOULDER, R_SHOULDER, L_HIP, R_HIP = 0, 5, 6, 11, 12


@dataclass
class Roi:
    """A square, rotated region: centre (x, y) pixels, side pixels, angle radians (counter-clockwise
    rotation that makes the person upright in the crop)."""

    cx: float
    cy: float
    side: float
    angle: float = 0.0

    def affine(self) -> np.ndarray:
        """2 x 3 matrix mapping frame pixels to crop pixels."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        k = CROP / self.side
        # crop = k * R(angle) @ (p - centre) + CROP / 2, R rotating the frame so the body points up
        rot = np.array([[c, -s], [s, c]]) * k
        return np.concatenate([rot, (CROP / 2 - rot @ np.array([self.cx, self.cy]))[:, None]], axis=1)


def _angle_up(bottom: np.ndarray, top: np.ndarray) -> float:
    """Rotation (radians) that turns the image vector bottom -> top to point straight up."""
    dx, dy = top[0] - bottom[0], top[1] - bottom[1]
    return -math.atan2(dx, -dy)  # 0 when top is right above bottom (image y grows downwards)


def roi_from_coco(keypoints: np.ndarray, box: np.ndarray) -> Roi:
    """The landmark network's region for one person from COCO keypoints (17, 3: x, y pixels, score) and
    the person's box (x1, y1, x2, y2 pixels).

    Centre: the middle of the hips, or for a person whose hips are not seen, a torso length below the
    middle of the shoulders (a half-body portrait's hips lie below the frame). Rotation: hips to shoulders
    made vertical. Size: the circle around the centre that holds every seen keypoint (enlarged for the top
    of the head) and at least 1.6 torso lengths, times 2 x 1.25. Without seen shoulders, the box's square.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    seen = kp[:, 2] >= KEYPOINT_THRESHOLD
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float64)
    if not (seen[L_SHOULDER] and seen[R_SHOULDER]):
        return Roi((x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * ROI_MARGIN)
    shoulders = (kp[L_SHOULDER, :2] + kp[R_SHOULDER, :2]) / 2
    if seen[L_HIP] and seen[R_HIP]:
        hips = (kp[L_HIP, :2] + kp[R_HIP, :2]) / 2
        torso = float(np.linalg.norm(shoulders - hips))
        angle = _angle_up(hips, shoulders)
    else:
        width = float(np.linalg.norm(kp[L_SHOULDER, :2] - kp[R_SHOULDER, :2]))
        torso = 1.3 * width
        angle = 0.0
        hips = shoulders + np.array([0.0, torso])
    dist = np.linalg.norm(kp[seen, :2] - hips, axis=1)
    radius = max(1.15 * float(dist.max()), 1.6 * torso, 1.0)
    return Roi(float(hips[0]), float(hips[1]), 2 * radius * ROI_MARGIN, angle)


def roi_from_landmarks(raw: np.ndarray, roi: Roi) -> Roi:
    """MediaPipe's tracking region from one run's raw landmarks (39, 5 crop pixels): centre at landmark
    33, side 2 x 1.25 x the distance to landmark 34, rotation making 33 -> 34 vertical."""
    inv = invert_affine(roi.affine())
    centre = inv @ np.array([raw[33, 0], raw[33, 1], 1.0])
    point = inv @ np.array([raw[34, 0], raw[34, 1], 1.0])
    side = 2 * ROI_MARGIN * float(np.linalg.norm(point - centre))
    return Roi(float(centre[0]), float(centre[1]), max(side, 1.0), _angle_up(centre, point))


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2 x 3 affine map."""
    a = np.linalg.inv(m[:, :2])
    return np.concatenate([a, -(a @ m[:, 2])[:, None]], axis=1)


@dataclass
class Landmarks:
    """BlazePose results for N person crops.

    image (N, 33, 4): x, y frame pixels, z (pixels, relative to the hips, smaller = nearer), visibility in
    [0, 1]; presence (N, 33) in [0, 1]; world (N, 33, 3) metres around the hips, x right, y down, z towards
    the camera, turned back to the frame's orientation; pose_flag (N,) the probability of a person.
    """

    image: np.ndarray
    presence: np.ndarray
    world: np.ndarray
    pose_flag: np.ndarray

    @classmethod
    def empty(cls) -> Landmarks:
        z = np.zeros
        return cls(z((0, 33, 4), np.float32), z((0, 33), np.float32), z((0, 33, 3), np.float32), z(0, np.float32))

    def __len__(self) -> int:
        return len(self.image)

    def take(self, index) -> Landmarks:
        """The rows ``index`` (an int keeps a length-1 first axis)."""
        index = [index] if isinstance(index, (int, np.integer)) else index
        return Landmarks(self.image[index], self.presence[index], self.world[index], self.pose_flag[index])

    @classmethod
    def concat(cls, parts: list[Landmarks]) -> Landmarks:
        if not parts:
            return cls.empty()
        return cls(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in ("image", "presence", "world", "pose_flag"))
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"image": self.image, "presence": self.presence, "world": self.world, "pose_flag": self.pose_flag}

    @classmethod
    def from_arrays(cls, arrays: dict) -> Landmarks:
        return cls(*(np.asarray(arrays[f], np.float32) for f in ("image", "presence", "world", "pose_flag")))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class BlazePose:
    """The landmark network on person regions: ``blazepose(frame, rois) -> Landmarks``;
    :meth:`run_many` batches regions of several frames."""

    def __init__(self, variant: str = "full", *, refine: bool = False, device: str = "cpu", threads: int = 0):
        if variant not in VARIANTS:
            raise ConfigError(f"BlazePose variant {variant!r}: expected one of {', '.join(VARIANTS)}")
        self.variant = variant
        self.refine = bool(refine)
        self.network = Network(f"blazepose_{variant}", device=device, threads=threads)

    def describe(self) -> dict:
        return {**self.network.describe(), "variant": self.variant, "refine": self.refine}

    def crop(self, frame: np.ndarray, roi: Roi) -> np.ndarray:
        """frame (H, W, 3) uint8 RGB -> the region as (256, 256, 3) float32 in [0, 1] (zeros outside)."""
        import cv2

        crop = cv2.warpAffine(frame, roi.affine(), (CROP, CROP), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
        return crop.astype(np.float32) / 255.0

    def _raw(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lms, flags, worlds = [], [], []
        for i in range(0, len(crops), BATCH):
            out = self.network(image=crops[i : i + BATCH])
            lms.append(out["landmarks"].reshape(-1, 39, 5))
            flags.append(out["pose_flag"].reshape(-1))
            worlds.append(out["world_landmarks"].reshape(-1, 39, 3))
        return np.concatenate(lms), np.concatenate(flags), np.concatenate(worlds)

    def run_many(self, items: list[tuple[np.ndarray, Roi]]) -> Landmarks:
        """Landmarks of (frame, region) pairs, in their order, run in batches."""
        if not items:
            return Landmarks.empty()
        rois = [roi for _, roi in items]
        raw, flag, world = self._raw(np.stack([self.crop(f, r) for f, r in items]))
        if self.refine:
            rois = [roi_from_landmarks(raw[i], r) for i, r in enumerate(rois)]
            raw, flag, world = self._raw(np.stack([self.crop(f, r) for (f, _), r in zip(items, rois)]))
        image = np.zeros((len(items), NUM_LANDMARKS, 4), np.float32)
        world_up = np.zeros((len(items), NUM_LANDMARKS, 3), np.float32)
        for i, roi in enumerate(rois):
            inv = invert_affine(roi.affine())
            xy = raw[i, :NUM_LANDMARKS, :2] @ inv[:, :2].T + inv[:, 2]
            image[i, :, :2] = xy
            image[i, :, 2] = raw[i, :NUM_LANDMARKS, 2] * roi.side / CROP
            image[i, :, 3] = _sigmoid(raw[i, :NUM_LANDMARKS, 3])
            # world landmarks live in the crop's rotated frame: turn x, y back by the region's angle
            c, s = math.cos(-roi.angle), math.sin(-roi.angle)
            w = world[i, :NUM_LANDMARKS]
            world_up[i, :, 0] = c * w[:, 0] - s * w[:, 1]
            world_up[i, :, 1] = s * w[:, 0] + c * w[:, 1]
            world_up[i, :, 2] = w[:, 2]
        presence = _sigmoid(raw[:, :NUM_LANDMARKS, 4]).astype(np.float32)
        return Landmarks(image, presence, world_up, flag.astype(np.float32))

    def __call__(self, frame: np.ndarray, rois: list[Roi]) -> Landmarks:
        return self.run_many([(frame, r) for r in rois])
