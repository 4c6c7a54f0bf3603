"""A contact sheet of synthetic frames with their 2D joints and boxes drawn, to see what was generated."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from maed.data.keypoints import SPIN_DRAW_BONES, SPIN_JOINT_NAMES

_INDEX = {n: i for i, n in enumerate(SPIN_JOINT_NAMES)}
_PERSON_COLOURS = [(0, 220, 255), (255, 120, 0), (200, 0, 255)]  # BGR


def draw_frame(image_bgr: np.ndarray, joints2d: list[np.ndarray], boxes: list[np.ndarray]) -> np.ndarray:
    """Draw every person's visible joints (49 x 3, x, y, confidence) with their bones, hidden joints as
    small rings, and each square box (cx, cy, w, h), on a copy of an H x W x 3 BGR frame."""
    out = image_bgr.copy()
    for k, (kp, box) in enumerate(zip(joints2d, boxes)):
        colour = _PERSON_COLOURS[k % len(_PERSON_COLOURS)]
        cx, cy, w, h = (float(v) for v in box)
        cv2.rectangle(out, (int(cx - w / 2), int(cy - h / 2)), (int(cx + w / 2), int(cy + h / 2)), colour, 1)
        for a, b in SPIN_DRAW_BONES:
            i, j = _INDEX[a], _INDEX[b]
            if kp[i, 2] > 0 and kp[j, 2] > 0:
                side = a.replace("OP ", "")[:1].lower()
                bone = (255, 128, 0) if side == "l" else (0, 0, 255) if side == "r" else (0, 255, 0)
                cv2.line(out, _pt(kp[i]), _pt(kp[j]), bone, 1, cv2.LINE_AA)
        for j in range(len(kp)):
            if kp[j, 2] > 0:
                cv2.circle(out, _pt(kp[j]), 2, (255, 255, 255), -1, cv2.LINE_AA)
            else:
                cv2.circle(out, _pt(kp[j]), 2, colour, 1, cv2.LINE_AA)
    return out


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def contact_sheet(
    db: dict, root: str | os.PathLike, frames: list[str], *, columns: int = 4, width: int = 320
) -> np.ndarray:
    """Tile the frames ``frames`` (``img_name`` values) of a database, drawn with all their rows' joints and
    boxes, ``columns`` wide, each ``width`` pixels wide. Returns an image (BGR uint8)."""
    names = np.asarray(db["img_name"]).astype(str)
    tiles = []
    for name in frames:
        image = cv2.imread(str(Path(root) / name), cv2.IMREAD_COLOR)
        rows = np.flatnonzero(names == name)
        drawn = draw_frame(image, [db["joints2D"][r] for r in rows], [db["bbox"][r] for r in rows])
        scale = width / drawn.shape[1]
        tiles.append(cv2.resize(drawn, (width, int(round(drawn.shape[0] * scale))), interpolation=cv2.INTER_AREA))
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    lines = [np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return np.concatenate(lines, axis=0)
