"""MoveNet MultiPose Lightning: up to 6 people per image, each with a box and the 17 COCO keypoints.

The network takes one RGB image of any size whose sides are multiples of 32 (int32 values 0-255) and
returns 6 candidates of 56 numbers: 17 x (y, x, score) keypoints, then the box ``ymin, xmin, ymax, xmax``
and the person's score, coordinates in [0, 1] of the image it saw. Here a frame is resized so that its
longer side is :attr:`MoveNet.size` pixels (aspect kept), padded at the bottom/right to multiples of 32,
and the results are mapped back to frame pixels.

One size does not fit all people: at 256 pixels the network finds people who fill the frame (a half-body
portrait) but misses those under ~50 input pixels tall, and at 512 it finds small people but loses those
who fill the frame. :func:`input_sizes` therefore runs 256 on every frame and adds a pass at half the
frame's longer side for frames of 600 pixels or more (640 x 480: 256 and 416; 768 x 576 and 720p: 256 and 512);
the passes' people are merged by box overlap.
``sizes`` may be given instead.

The finer pass costs three times the first (15 and 44 ms a 720p frame on two cores), and on most footage
it finds nobody the first pass missed. So on a video it can run where it is needed: with ``fine_every=N``
(the demo's detector uses :data:`FINE_PASS_EVERY`) it runs on every frame while its last run found someone
the first pass did not (small people in the scene), and otherwise on every N-th frame only, which finds a
small person within N frames of appearing. That schedule follows the frames in the order they are given:
one :class:`MoveNet` per video (or :meth:`MoveNet.reset` between videos). The default, ``fine_every=1``,
runs it on every frame, as unrelated images need.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maed.errors import ConfigError
from maed.perception.boxes import box_iou, nms
from maed.perception.runtime import Network

STRIDE = 32
#: people below this score are dropped (the network's own suggestion for multi-person use is 0.2-0.3)
DEFAULT_THRESHOLD = 0.25
BASE_SIZE, MAX_SIZE = 256, 512
#: frames whose longer side is at least this get the second, finer pass
FINE_PASS_FROM = 600
MERGE_IOU = 0.5
#: on a video, while the finer pass finds nobody new, it runs on every this many frames (the demo's default)
FINE_PASS_EVERY = 8


def input_sizes(height: int, width: int) -> tuple[int, ...]:
    """Longer sides of the network's inputs for a ``height`` x ``width`` frame: 256, and for frames of
    600 pixels or more also two thirds of the longer side rounded to a multiple of 32, at most 512 (the
    cost grows with the pixels: 20 ms at 256, 66 ms at 512 on one core for a 720p frame)."""
    longer = max(height, width)
    if longer < FINE_PASS_FROM:
        return (BASE_SIZE,)
    return (BASE_SIZE, int(min(MAX_SIZE, round(longer * 2 / 3 / STRIDE) * STRIDE)))


@dataclass
class People:
    """The people found in one frame, best first.

    boxes (K, 4) x1, y1, x2, y2 pixels; scores (K,); keypoints (K, 17, 3) x, y pixels and score (COCO order).
    """

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray

    @classmethod
    def empty(cls) -> People:
        return cls(np.zeros((0, 4)), np.zeros(0, np.float32), np.zeros((0, 17, 3), np.float32))


class MoveNet:
    """MoveNet MultiPose on RGB frames (H x W x 3 uint8): ``movenet(frames) -> [People per frame]``."""

    def __init__(
        self,
        *,
        threshold: float | None = None,
        size: int | None = None,
        device: str = "cpu",
        threads: int = 0,
        fine_every: int = 1,
    ):
        self.threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        sizes = (size,) if isinstance(size, int) else (tuple(size) if size else None)
        for s in sizes or ():
            if s < STRIDE or s % STRIDE:
                raise ConfigError(f"MoveNet input size {s}: expected a positive multiple of {STRIDE}")
        if int(fine_every) < 1:
            raise ConfigError(f"MoveNet fine_every {fine_every}: expected a whole number of frames, 1 or more")
        self.sizes = sizes
        self.fine_every = int(fine_every)
        self.network = Network("movenet_multipose", device=device, threads=threads)
        self.reset()

    def reset(self) -> None:
        """Start the finer pass's schedule afresh (a new video): it runs on the next frame."""
        self.frames_seen = 0
        self.fine_frames = 0  # frames the finer passes ran on
        self._fine_needed = True

    def describe(self) -> dict:
        sizes = list(self.sizes) if self.sizes else f"auto ({BASE_SIZE}, + a finer pass from {FINE_PASS_FROM} px)"
        return {
            **self.network.describe(),
            "threshold": self.threshold,
            "sizes": sizes,
            "fine_every": self.fine_every,
            "fine_pass_frames": self.fine_frames,  # so far
            "frames": self.frames_seen,
        }

    def prepare(self, frame: np.ndarray, size: int) -> tuple[np.ndarray, float]:
        """frame (H, W, 3) uint8 -> network input (1, h, w, 3) int32 whose longer side is ``size`` before
        padding, and the frame-to-input scale."""
        import cv2

        h, w = frame.shape[:2]
        scale = size / max(h, w)
        rh, rw = max(1, round(h * scale)), max(1, round(w * scale))
        resized = cv2.resize(frame, (rw, rh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        ph, pw = -(-rh // STRIDE) * STRIDE, -(-rw // STRIDE) * STRIDE
        image = np.zeros((1, ph, pw, 3), np.int32)
        image[0, :rh, :rw] = resized
        return image, scale

    def decode(self, raw: np.ndarray, image_hw: tuple[int, int], scale: float, frame_hw: tuple[int, int]) -> People:
        """raw (6, 56) -> the people above the threshold, in frame pixels, clipped to the frame."""
        ph, pw = image_hw
        fh, fw = frame_hw
        keep = raw[:, 55] >= self.threshold
        raw = raw[keep][np.argsort(-raw[keep][:, 55], kind="stable")]
        kp = raw[:, :51].reshape(-1, 17, 3)
        keypoints = np.stack([kp[..., 1] * pw / scale, kp[..., 0] * ph / scale, kp[..., 2]], axis=-1)
        box = raw[:, 51:55]
        boxes = np.stack([box[:, 1] * pw, box[:, 0] * ph, box[:, 3] * pw, box[:, 2] * ph], axis=1) / scale
        boxes = np.clip(boxes, 0, [fw, fh, fw, fh])
        ok = (boxes[:, 2] - boxes[:, 0] > 1) & (boxes[:, 3] - boxes[:, 1] > 1)
        return People(boxes[ok].astype(np.float64), raw[ok, 55].astype(np.float32), keypoints[ok].astype(np.float32))

    def detect(self, frame: np.ndarray, size: int) -> People:
        """One pass over one frame at input size ``size``."""
        image, scale = self.prepare(frame, size)
        raw = self.network(image=image)["people"][0]
        return self.decode(raw, image.shape[1:3], scale, frame.shape[:2])

    def __call__(self, frames: list[np.ndarray]) -> list[People]:
        out = []
        for frame in frames:
            first, *finer = self.sizes or input_sizes(*frame.shape[:2])
            people = self.detect(frame, first)
            if finer and (self._fine_needed or self.frames_seen % self.fine_every == 0):
                passes = [people, *(self.detect(frame, size) for size in finer)]
                merged = merge(passes)
                # someone only a finer pass found: keep running it on every frame
                self._fine_needed = _unmatched(merged.boxes, people.boxes, MERGE_IOU)
                self.fine_frames += 1
                people = merged
            self.frames_seen += 1
            out.append(people)
        return out


def merge(passes: list[People], iou: float = MERGE_IOU) -> People:
    """The people of several passes, one per person: boxes overlapping by more than ``iou`` are one person,
    kept from the pass that scored it highest."""

    boxes = np.concatenate([p.boxes for p in passes])
    scores = np.concatenate([p.scores for p in passes])
    keypoints = np.concatenate([p.keypoints for p in passes])
    keep = nms(boxes, scores, iou)
    return People(boxes[keep], scores[keep], keypoints[keep])


def _unmatched(boxes: np.ndarray, reference: np.ndarray, iou: float) -> bool:
    """Whether some box of ``boxes`` overlaps no box of ``reference`` by more than ``iou``."""
    if len(boxes) == 0:
        return False
    if len(reference) == 0:
        return True
    return bool((box_iou(boxes, reference).max(axis=1) <= iou).any())
