"""Person boxes from 2D keypoints, as the original preparation scripts build them.

All boxes are ``(cx, cy, w, h)`` in pixels of the full image, square (``w == h``).
"""

from __future__ import annotations

import numpy as np

#: the crop the model sees (training and evaluation): BASE_SCALE x the square person box, before augmentation
BASE_SCALE = 1.3

#: HMMR's reference person size: a box parameter ``scale`` means the person is ``150 / scale`` px tall
HMMR_PERSON_PX = 150.0


def get_bbox_from_kp2d(kp_2d: np.ndarray, scale: float = 1.1) -> np.ndarray:
    """Square box around keypoints (the original ``get_bbox_from_kp2d``).

    Args:
        kp_2d: K x C or N x K x C (x, y, ... pixels); every given point counts, so drop absent joints first.
        scale: side = ``scale`` x the longer side of the keypoints' bounding rectangle.

    Returns:
        4 (or N x 4): cx, cy, w, h with w == h.
    """
    kp = np.asarray(kp_2d, dtype=np.float64)
    single = kp.ndim == 2
    if single:
        kp = kp[None]
    lo = kp[..., :2].min(axis=1)  # N x 2
    hi = kp[..., :2].max(axis=1)
    center = (lo + hi) / 2.0
    side = (hi - lo).max(axis=1) * scale
    box = np.stack([center[:, 0], center[:, 1], side, side], axis=1)
    return box[0] if single else box


def kp_to_bbox_param(kp: np.ndarray | None, vis_thresh: float) -> np.ndarray | None:
    """HMMR box parameters (cx, cy, scale) of one frame's K x 3 keypoints, or None without a usable box.

    Points with confidence > ``vis_thresh`` count; the person size is the diagonal of their bounding
    rectangle and ``scale = 150 / size``. Fewer than one visible point or a size < 0.5 px gives None.
    """
    if kp is None:
        return None
    kp = np.asarray(kp, dtype=np.float64)
    vis = kp[:, 2] > vis_thresh
    if not vis.any():
        return None
    lo = kp[vis, :2].min(axis=0)
    hi = kp[vis, :2].max(axis=0)
    size = float(np.linalg.norm(hi - lo))
    if size < 0.5:
        return None
    center = (lo + hi) / 2.0
    return np.array([center[0], center[1], HMMR_PERSON_PX / size])


def get_all_bbox_params(kps, vis_thresh: float) -> tuple[np.ndarray, int, int]:
    """Per-frame box parameters between the first and last frame that have one, gaps linearly filled.

    Args:
        kps: sequence of N frames, each K x 3 keypoints (or None).

    Returns:
        params M x 3 (cx, cy, scale) for frames ``start .. end - 1``, ``start`` (first frame with a box),
        ``end`` (one past the last frame with a box); ``start = end = 0`` and M = 0 when no frame has one.
    """
    params = [kp_to_bbox_param(kp, vis_thresh) for kp in kps]
    have = [i for i, p in enumerate(params) if p is not None]
    if not have:
        return np.zeros((0, 3)), 0, 0
    start, end = have[0], have[-1] + 1
    known = np.array(have)
    values = np.stack([params[i] for i in have])  # len(have) x 3
    frames = np.arange(start, end)
    filled = np.stack([np.interp(frames, known, values[:, c]) for c in range(3)], axis=1)
    return filled, start, end


def smooth_bbox_params(params: np.ndarray, kernel_size: int = 11, sigma: float = 8.0) -> np.ndarray:
    """Median filter (zero-padded, as ``scipy.signal.medfilt``) then Gaussian filter (``reflect`` ends) each
    of the M x 3 parameter tracks over time. Tracks shorter than ``kernel_size`` use the longest odd kernel
    that fits (the original's zero padding then gave zero scales). The median is ``scipy.ndimage``'s with
    zero padding, the same numbers as ``medfilt`` without importing ``scipy.signal`` (0.4 s)."""
    from scipy.ndimage import gaussian_filter1d, median_filter

    def medfilt(x, k):
        return median_filter(x, size=k, mode="constant", cval=0.0)

    params = np.asarray(params, dtype=np.float64)
    if len(params) == 0:
        return params.reshape(0, 3)
    # medfilt zero-pads; a kernel longer than the track would put zeros in the median (a zero scale:
    # an infinite box), so short tracks use the longest odd kernel that fits
    kernel_size = min(kernel_size, len(params) if len(params) % 2 else len(params) - 1)
    med = np.stack([medfilt(params[:, c], kernel_size) for c in range(params.shape[1])], axis=1)
    return np.stack([gaussian_filter1d(med[:, c], sigma) for c in range(med.shape[1])], axis=1)


def get_smooth_bbox_params(
    kps, vis_thresh: float = 2.0, kernel_size: int = 11, sigma: float = 8.0
) -> tuple[np.ndarray, int, int]:
    """HMMR smoothed boxes of a track: keypoint boxes, gaps interpolated, median then Gaussian filtered.

    Returns ``(params, start, end)`` with params M x 3 (cx, cy, scale) for frames ``start .. end - 1``
    only. (The original prepended ``start`` rows of zeros and then used the array as if it began at
    ``start``, shifting every box by ``start`` frames; ORIGINAL.md §9.)
    """
    params, start, end = get_all_bbox_params(kps, vis_thresh)
    return smooth_bbox_params(params, kernel_size, sigma), start, end


def bbox_params_to_bbox(params: np.ndarray, scale: float = 1.1) -> np.ndarray:
    """HMMR (cx, cy, scale) M x 3 -> square boxes M x 4 (cx, cy, w, h) of side ``scale x 150 / s``."""
    params = np.asarray(params, dtype=np.float64).reshape(-1, 3)
    side = HMMR_PERSON_PX / params[:, 2] * scale
    return np.stack([params[:, 0], params[:, 1], side, side], axis=1)


def bbox_from_present_kp2d(kp_2d: np.ndarray, present: np.ndarray, scale: float = 1.1) -> np.ndarray:
    """:func:`get_bbox_from_kp2d` of each row's present joints only.

    Args:
        kp_2d: N x K x C keypoints (x, y pixels first). present: N x K bool (rows need one present joint).

    Returns:
        N x 4 (cx, cy, w, h), square; NaN for a row without any present joint.
    """
    kp = np.asarray(kp_2d, dtype=np.float64)[..., :2]
    present = np.asarray(present, dtype=bool)[..., None]
    with np.errstate(invalid="ignore"):
        lo = np.where(present, kp, np.inf).min(axis=1)
        hi = np.where(present, kp, -np.inf).max(axis=1)
        center = (lo + hi) / 2.0
        side = (hi - lo).max(axis=1) * scale
    box = np.stack([center[:, 0], center[:, 1], side, side], axis=1)
    box[~present[..., 0].any(axis=1)] = np.nan
    return box


def run_ids(keep: np.ndarray) -> np.ndarray:
    """Index of the run of consecutive True values each element belongs to (0, 1, ...; -1 where False).

    A video whose dropped frames split it into pieces is stored as one segment per run.
    """
    keep = np.asarray(keep, dtype=bool)
    starts = keep & ~np.concatenate([[False], keep[:-1]])
    ids = np.cumsum(starts) - 1
    return np.where(keep, ids, -1)
