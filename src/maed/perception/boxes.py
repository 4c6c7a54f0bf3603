"""Box arithmetic shared by the detectors and the tracker: formats, overlap, non-maximum suppression."""

from __future__ import annotations

import numpy as np

NMS_IOU = 0.5


def cxcywh_from_xyxy(b: np.ndarray) -> np.ndarray:
    """M x 4 corners x1, y1, x2, y2 -> centre and size cx, cy, w, h."""
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([(b[:, :2] + b[:, 2:]) / 2.0, b[:, 2:] - b[:, :2]], axis=1)


def xyxy_from_cxcywh(b: np.ndarray) -> np.ndarray:
    """M x 4 centre and size cx, cy, w, h -> corners x1, y1, x2, y2."""
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2] - b[:, 2:] / 2.0, b[:, :2] + b[:, 2:] / 2.0], axis=1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes a (N x 4) and b (M x 4), both x1, y1, x2, y2."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0.0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0.0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0.0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> np.ndarray:
    """Indices of the boxes (K x 4 xyxy) kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep: list[int] = []
    while len(order):
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        overlap = box_iou(boxes[i : i + 1], boxes[rest])[0]
        order = rest[overlap <= iou]
    return np.asarray(keep, dtype=np.int64)
