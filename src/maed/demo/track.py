"""People across frames: IoU/OKS + Hungarian linking with an age buffer, gap filling, box smoothing, square boxes.

Linking (:func:`link_detections`): each open track predicts its box in the next frame from its last two
detections (constant velocity); ``scipy.optimize.linear_sum_assignment`` pairs predicted boxes and the
frame's detections to maximise the summed similarity, and pairs below ``iou_threshold`` are not linked.
The similarity is the boxes' IoU; when the detector gives keypoints (MoveNet), it is the mean of the IoU
and the object keypoint similarity (OKS, COCO's spreads) between the track's last keypoints, moved with
its predicted box, and the detection's, so that two people whose boxes overlap keep their own ids. A track
without a detection survives ``max_age`` frames, so a person hidden for a moment keeps their id; detections
left over start new tracks. (The ``trackers`` package's ByteTrack was not added: for the few people of a
demo clip it would bring a dependency for what thirty lines of IoU matching do; a deep re-identification
tracker would be the step up.)

Tracks (:func:`build_tracks`) cover every frame from their first to their last detection: boxes of frames
without a detection are linearly interpolated. The crop box of each frame is square (the evaluation crop
scales width and height alike, so a non-square box would squash the person): centred on the box, with side
``box_scale x max(w, h)`` (``box_scale`` 1.1 for detectors, as the datasets' boxes are 1.1 x the person's
extent; 1 for user boxes). Detector boxes are then smoothed over time (median of ``SMOOTH_KERNEL`` frames,
then a Gaussian of ``SMOOTH_SIGMA`` frames, on centre and side); boxes the user gave with track ids are used
unchanged. Tracks shorter than ``min(min_length, frames of the input)`` are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maed.data.bbox import smooth_bbox_params
from maed.perception.boxes import box_iou
from maed.perception.detectors import NUM_KEYPOINTS, Detections
from maed.perception.skeletons import COCO17_OKS_SIGMAS

IOU_THRESHOLD = 0.3
MAX_AGE = 15
MIN_TRACK_LENGTH = 25
SMOOTH_KERNEL = 5
SMOOTH_SIGMA = 2.0


@dataclass
class Track:
    """One person over a contiguous run of frames.

    track_id: the person's id (user ids are kept; the tracker numbers people 1, 2, ... by first appearance).
    frames (T,) int64 consecutive frame indices; boxes (T, 4) float64 square crop boxes (cx, cy, side, side)
    in pixels (the crop itself covers 1.3 x the side); detected (T,) bool, False where the box was filled in;
    keypoints (T, 17, 3) float32 the detector's COCO keypoints (x, y pixels, score; 0 where filled in or
    where the detector gives none).
    """

    track_id: int
    frames: np.ndarray
    boxes: np.ndarray
    detected: np.ndarray
    keypoints: np.ndarray | None = None

    def __post_init__(self):
        if self.keypoints is None:
            self.keypoints = np.zeros((len(self.frames), NUM_KEYPOINTS, 3), np.float32)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def first(self) -> int:
        return int(self.frames[0])

    @property
    def last(self) -> int:
        return int(self.frames[-1])


def _predict(history: list[np.ndarray], frames: list[int], frame: int) -> np.ndarray:
    """Constant-velocity guess of a track's box (x1 y1 x2 y2) at ``frame`` from its last two detections."""
    if len(history) < 2:
        return history[-1]
    dt = frames[-1] - frames[-2]
    velocity = (history[-1] - history[-2]) / max(dt, 1)
    return history[-1] + velocity * (frame - frames[-1])


def keypoint_similarity(a: np.ndarray, b: np.ndarray, area: np.ndarray) -> np.ndarray:
    """COCO's object keypoint similarity between keypoint sets a (N, 17, 3) and b (M, 17, 3) (x, y pixels,
    score), over the keypoints both see (score > 0.3); ``area`` (M,) the b boxes' areas in pixels^2.
    Returns (N, M) in [0, 1]; 0 where no keypoint is seen by both."""
    seen = (a[:, None, :, 2] > 0.3) & (b[None, :, :, 2] > 0.3)  # (N, M, 17)
    d2 = ((a[:, None, :, :2] - b[None, :, :, :2]) ** 2).sum(-1)
    var = (2 * COCO17_OKS_SIGMAS) ** 2
    e = d2 / (2 * var[None, None, :] * np.maximum(area, 1.0)[None, :, None])
    sim = (np.exp(-e) * seen).sum(-1)
    return np.where(seen.any(-1), sim / np.maximum(seen.sum(-1), 1), 0.0)


def link_detections(det: Detections, *, iou_threshold: float = IOU_THRESHOLD, max_age: int = MAX_AGE) -> np.ndarray:
    """Track id (0, 1, ... in order of first appearance) of every detection row of ``det``.

    Greedy per frame in time order, optimal (Hungarian) within a frame; see the module docstring.
    """
    from scipy.optimize import linear_sum_assignment

    ids = np.full(len(det.frame), -1, dtype=np.int64)
    xyxy = det.xyxy
    use_keypoints = det.has_keypoints
    open_tracks: dict[int, dict] = {}  # id -> {"boxes": [...], "frames": [...], "keypoints": last (17, 3)}
    next_id = 0
    order = np.argsort(det.frame, kind="stable")
    rows_by_frame: dict[int, list[int]] = {}
    for r in order:
        rows_by_frame.setdefault(int(det.frame[r]), []).append(int(r))
    for frame in sorted(rows_by_frame):
        rows = rows_by_frame[frame]
        for tid in [t for t, tr in open_tracks.items() if frame - tr["frames"][-1] > max_age + 1]:
            del open_tracks[tid]
        tids = list(open_tracks)
        matched_rows: set[int] = set()
        if tids:
            predicted = np.stack([_predict(open_tracks[t]["boxes"], open_tracks[t]["frames"], frame) for t in tids])
            sim = box_iou(predicted, xyxy[rows])  # (tracks, detections)
            if use_keypoints:  # last keypoints moved by the predicted box's shift
                shift = (predicted[:, :2] + predicted[:, 2:]) / 2
                shift -= np.stack(
                    [(open_tracks[t]["boxes"][-1][:2] + open_tracks[t]["boxes"][-1][2:]) / 2 for t in tids]
                )
                last = np.stack([open_tracks[t]["keypoints"] for t in tids]).copy()
                last[..., :2] += shift[:, None, :]
                area = np.prod(xyxy[rows, 2:] - xyxy[rows, :2], axis=1)
                sim = 0.5 * (sim + keypoint_similarity(last, det.keypoints[rows], area))
            ti, di = linear_sum_assignment(-sim)
            for a, b in zip(ti, di):
                if sim[a, b] >= iou_threshold:
                    tr = open_tracks[tids[a]]
                    tr["boxes"].append(xyxy[rows[b]])
                    tr["frames"].append(frame)
                    tr["keypoints"] = det.keypoints[rows[b]]
                    ids[rows[b]] = tids[a]
                    matched_rows.add(rows[b])
        for r in rows:
            if r not in matched_rows:
                open_tracks[next_id] = {"boxes": [xyxy[r]], "frames": [frame], "keypoints": det.keypoints[r]}
                ids[r] = next_id
                next_id += 1
    return ids


def square_boxes(boxes: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Boxes (N x 4: cx, cy, w, h) -> square (cx, cy, side, side) with side = ``scale`` x max(w, h)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    side = scale * np.max(boxes[:, 2:], axis=1)
    return np.stack([boxes[:, 0], boxes[:, 1], side, side], axis=1)


def smooth_boxes(boxes: np.ndarray, kernel: int = SMOOTH_KERNEL, sigma: float = SMOOTH_SIGMA) -> np.ndarray:
    """Median then Gaussian filter over time of square boxes (T x 4: cx, cy, side, side)."""
    if len(boxes) < 3:
        return np.asarray(boxes, dtype=np.float64)
    smoothed = smooth_bbox_params(np.asarray(boxes, dtype=np.float64)[:, :3], kernel_size=kernel, sigma=sigma)
    return np.concatenate([smoothed, smoothed[:, 2:3]], axis=1)


def _fill_gaps(frames: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows at sorted ``frames`` -> every frame from first to last, missing rows linearly interpolated."""
    full = np.arange(frames[0], frames[-1] + 1)
    filled = np.stack([np.interp(full, frames, values[:, c]) for c in range(values.shape[1])], axis=1)
    return full, filled, np.isin(full, frames)


def build_tracks(
    det: Detections,
    ids: np.ndarray,
    *,
    min_length: int = MIN_TRACK_LENGTH,
    smooth: bool = True,
) -> tuple[list[Track], list[Track]]:
    """Group detection rows by track id into :class:`Track` objects (see the module docstring).

    ``ids``: per-row track ids (the user's or :func:`link_detections`'s). Boxes get ``det.box_scale`` and
    are squared; ``smooth`` applies the box filter. Returns (kept, dropped): kept tracks are numbered by
    first appearance when the ids came from the tracker, and keep the user's ids otherwise.
    """
    user_ids = det.has_track_ids
    tracks: list[Track] = []
    for tid in np.unique(ids):
        rows = np.flatnonzero(ids == tid)
        rows = rows[np.argsort(det.frame[rows], kind="stable")]
        frames = det.frame[rows]
        if len(np.unique(frames)) != len(frames):
            raise ValueError(f"track {tid} has two boxes in one frame")
        full, cxcywh, detected = _fill_gaps(frames, det.boxes[rows])
        boxes = square_boxes(cxcywh, det.box_scale)
        if smooth and not user_ids:
            boxes = smooth_boxes(boxes)
        keypoints = np.zeros((len(full), NUM_KEYPOINTS, 3), np.float32)
        keypoints[frames - full[0]] = det.keypoints[rows]
        tracks.append(Track(int(tid), full.astype(np.int64), boxes, detected, keypoints))
    tracks.sort(key=lambda t: (t.first, t.track_id))
    if not user_ids:
        for k, t in enumerate(tracks, start=1):
            t.track_id = k
    need = max(1, min(int(min_length), int(det.num_frames)))
    kept = [t for t in tracks if len(t) >= need]
    dropped = [t for t in tracks if len(t) < need]
    if not user_ids:  # number the people the user will see 1, 2, ... without holes
        for k, t in enumerate(kept, start=1):
            t.track_id = k
    return kept, dropped


def tracks_to_arrays(tracks: list[Track]) -> dict[str, np.ndarray]:
    """Flat arrays (one row per track frame) for the stage cache."""
    if not tracks:
        return {
            "track_id": np.zeros(0, np.int64),
            "frame": np.zeros(0, np.int64),
            "box": np.zeros((0, 4)),
            "detected": np.zeros(0, bool),
            "keypoints": np.zeros((0, NUM_KEYPOINTS, 3), np.float32),
        }
    return {
        "track_id": np.concatenate([np.full(len(t), t.track_id, np.int64) for t in tracks]),
        "frame": np.concatenate([t.frames for t in tracks]),
        "box": np.concatenate([t.boxes for t in tracks]),
        "detected": np.concatenate([t.detected for t in tracks]),
        "keypoints": np.concatenate([t.keypoints for t in tracks]),
    }


def tracks_from_arrays(z) -> list[Track]:
    track_id = np.asarray(z["track_id"])
    out = []
    for tid in dict.fromkeys(track_id.tolist()):  # stored order
        rows = track_id == tid
        keypoints = np.asarray(z["keypoints"])[rows] if "keypoints" in z else None
        out.append(
            Track(
                int(tid),
                np.asarray(z["frame"])[rows],
                np.asarray(z["box"])[rows],
                np.asarray(z["detected"])[rows],
                keypoints,
            )
        )
    return out
