"""Inputs of a keypoint model in evaluation: the shipped BlazePose network on the dataset's own frames, in
the dataset's boxes, as the demo would see them (``maed eval`` on a keypoint checkpoint runs the whole
pipeline on pixels, not on ground-truth keypoints)."""

from __future__ import annotations

import numpy as np
import torch

from maed.errors import DataError
from maed.models.keypoints import inputs_from_landmarks
from maed.perception.blazepose import BlazePose, Roi, roi_from_coco


class LandmarkInputs:
    """``inputs(batch) -> (N, T, 33, 3)``: BlazePose (``variant``) on each window frame's box, converted by
    :func:`maed.models.keypoints.inputs_from_landmarks`. Frames are read from the batch's ``paths``;
    a frame met again (overlapping windows) is not run twice."""

    def __init__(self, variant: str = "full", device: str = "cpu"):

        self.network = BlazePose(variant, device="cuda" if str(device).startswith("cuda") else "cpu")
        self._seen: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}  # landmarks, frame (width, height)

    def __call__(self, batch: dict) -> torch.Tensor:
        import cv2

        boxes = np.asarray(batch["bbox"], np.float64)  # (N, T, 4) cx, cy, w, h (square)
        N, T = boxes.shape[:2]
        paths = np.asarray(batch["paths"], dtype=str)  # collated: T lists of N paths
        paths = paths.T if paths.shape == (T, N) else paths.reshape(N, T)
        landmarks = np.zeros((N, T, 33, 4), np.float32)
        frame_size = np.ones((N, T, 2))  # (width, height) of each frame
        todo: list[tuple[int, int, tuple]] = []
        for n in range(N):
            for t in range(T):
                key = (str(paths[n, t]), *np.round(boxes[n, t], 2).tolist())
                if key in self._seen:
                    landmarks[n, t], frame_size[n, t] = self._seen[key]
                else:
                    todo.append((n, t, key))
        items = []
        for n, t, key in todo:
            image = cv2.imread(key[0])
            if image is None:
                raise DataError(f"{key[0]}: cannot read the frame for BlazePose")
            cx, cy, w, h = boxes[n, t]
            side = max(w, h)
            roi: Roi = roi_from_coco(
                np.zeros((17, 3)), np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
            )
            items.append((cv2.cvtColor(image, cv2.COLOR_BGR2RGB), roi))
            frame_size[n, t] = image.shape[1], image.shape[0]
        if items:
            result = self.network.run_many(items)
            for k, (n, t, key) in enumerate(todo):
                landmarks[n, t] = result.image[k]
                self._seen[key] = (result.image[k], frame_size[n, t].copy())
        square = boxes.copy()
        square[..., 2] = square[..., 3] = boxes[..., 2:].max(-1)
        return torch.from_numpy(inputs_from_landmarks(landmarks, square, frame_size))
