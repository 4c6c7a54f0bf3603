"""2D skeletons drawn over frames (``maed demo --keypoints-only``): lines between keypoints both seen."""

from __future__ import annotations

import numpy as np

SEEN = 0.5  # keypoint score/visibility above which a point is drawn


def draw_skeleton(
    frame: np.ndarray, points: np.ndarray, edges: list[tuple[int, int]], color: tuple[int, int, int]
) -> np.ndarray:
    """A copy of ``frame`` (H, W, 3 uint8 RGB) with ``points`` (K, >=3: x, y pixels, ..., score last) joined
    by ``edges`` and dotted, in ``color`` (RGB 0-255); points scored below 0.5 are left out."""
    import cv2

    out = np.ascontiguousarray(frame).copy()
    h = frame.shape[0]
    thick = max(1, round(h / 240))
    pts = np.asarray(points, np.float64)
    seen = pts[:, -1] > SEEN
    xy = np.round(pts[:, :2]).astype(np.int64)
    for a, b in edges:
        if seen[a] and seen[b]:
            cv2.line(out, tuple(map(int, xy[a])), tuple(map(int, xy[b])), color, thick, cv2.LINE_AA)
    for k in np.flatnonzero(seen):
        cv2.circle(out, tuple(map(int, xy[k])), thick + 1, (255, 255, 255), -1, cv2.LINE_AA)
    return out
