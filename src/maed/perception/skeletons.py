"""Keypoint layouts of the perception networks: names, drawing edges, left/right swaps, OKS spreads."""

from __future__ import annotations

import numpy as np

#: MoveNet's 17 keypoints, in COCO's order (the same names as ``maed.data.keypoints.COCO_JOINT_NAMES``)
COCO17 = [
    "nose", "leye", "reye", "lear", "rear", "lshoulder", "rshoulder", "lelbow", "relbow", "lwrist",
    "rwrist", "lhip", "rhip", "lknee", "rknee", "lankle", "rankle",
]  # fmt: skip
COCO17_EDGES = [
    (0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (6, 12), (11, 12),
    (11, 13), (13, 15), (12, 14), (14, 16),
]  # fmt: skip
#: COCO's per-keypoint spreads for object keypoint similarity (OKS), as fractions of the object scale
COCO17_OKS_SIGMAS = (
    np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89])
    / 10.0
)

#: BlazePose GHUM 3D's 33 body landmarks (the network computes 6 more for its own tracking, dropped here)
BLAZEPOSE33 = [
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle", "left_heel", "right_heel", "left_foot_index", "right_foot_index",
]  # fmt: skip
BLAZEPOSE33_EDGES = [
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12), (11, 13), (13, 15),
    (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20),
    (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28), (27, 29), (28, 30), (29, 31),
    (30, 32), (27, 31), (28, 32),
]  # fmt: skip
#: the BlazePose landmark of each COCO keypoint (the two layouts share these 17 points by name)
BLAZEPOSE_OF_COCO = [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]


def mirror_permutation(names: list[str]) -> list[int]:
    """Index of each keypoint's left/right counterpart (itself for the middle ones)."""
    swap = {"l": "r", "r": "l", "left": "right", "right": "left"}

    def mirrored(name: str) -> str:
        if "_" in name:
            head, rest = name.split("_", 1)
            if head in ("left", "right"):
                return swap[head] + "_" + rest
            parts = name.split("_")
            return "_".join(swap.get(p, p) for p in parts)
        if name[:1] in ("l", "r") and name[1:] in ("eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
            return swap[name[0]] + name[1:]
        return name

    index = {n: i for i, n in enumerate(names)}
    return [index[mirrored(n)] for n in names]
