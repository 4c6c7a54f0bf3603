"""Evaluation metrics of the original MAED/VIBE protocol (ORIGINAL.md §7), as pure functions.

Inputs are numpy arrays or torch tensors in metres; everything is computed in float64 on the CPU. The
per-frame functions return metres; :func:`compute_metrics` returns millimetres.

Protocol (``lib/core/evaluate.py`` of the original):

1. both joint sets are multiplied by the ground truth's visibility (confidence), then aligned at the
   pelvis, the mean of joints 2 and 3 (the hips in the 14-joint LSP order and its 17-joint extensions);
2. MPJPE: mean per-joint L2 distance; PA-MPJPE: the same after a similarity Procrustes alignment (scale,
   rotation, translation) of each predicted frame onto its ground truth;
3. PVE: mean per-vertex L2 distance with no alignment at all;
4. accel: mean over joints of ``|x[t-1] - 2 x[t] + x[t+1]|`` of the aligned prediction; accel_err: the same
   norm of the difference of predicted and ground-truth accelerations. The original takes every triple of
   consecutive rows of the concatenated evaluation set, across the boundaries between videos; passing
   ``sequence_ids`` keeps only triples inside one sequence (the ``strict`` protocol).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from maed.body.geometry import similarity_procrustes

M2MM = 1000.0
PELVIS_JOINTS = (2, 3)  # right and left hip of the LSP order
METRIC_KEYS = ("mpjpe", "pa-mpjpe", "pve", "accel", "accel_err")


def _f64(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _check_joints(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"predicted joints: expected N x K x 3, got {pred.shape}")
    if gt.shape[:2] != pred.shape[:2]:
        raise ValueError(f"ground-truth joints {gt.shape} do not match the prediction {pred.shape}")


def split_confidence(gt_joints, vis=None) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth N x K x 3 (or N x K x 4 with a confidence column) -> (N x K x 3, visibility N x K x 1).

    An explicit ``vis`` (N x K or N x K x 1) wins over the confidence column; without either, every joint
    is visible.
    """
    gt = _f64(gt_joints)
    conf = gt[..., 3:4] if gt.shape[-1] == 4 else None
    gt = gt[..., :3]
    if vis is not None:
        v = _f64(vis)
        conf = v[..., None] if v.ndim == 2 else v
    if conf is None:
        conf = np.ones(gt.shape[:-1] + (1,))
    return gt, conf


def align_joints(pred_joints, gt_joints, vis=None) -> tuple[np.ndarray, np.ndarray]:
    """Visibility multiply, then pelvis alignment (mean of joints 2 and 3), as the original.

    pred_joints: N x K x 3; gt_joints: N x K x 3 or N x K x 4 (confidence last). Returns both N x K x 3.
    Invisible joints become zero before the pelvis is subtracted, so they still count in the mean (the
    original's behaviour; on 3DPW every evaluated joint is visible).
    """
    gt, conf = split_confidence(gt_joints, vis)
    pred = _f64(pred_joints)
    _check_joints(pred, gt)
    pred, gt = pred * conf, gt * conf
    a, b = PELVIS_JOINTS
    pred = pred - (pred[:, [a]] + pred[:, [b]]) / 2.0
    gt = gt - (gt[:, [a]] + gt[:, [b]]) / 2.0
    return pred, gt


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Each frame of ``pred`` (N x K x 3) aligned onto ``gt`` by the best similarity transform."""
    if len(pred) == 0:
        return pred.copy()
    return similarity_procrustes(torch.from_numpy(pred), torch.from_numpy(gt)).numpy()


def joint_errors(pred_joints, gt_joints, vis=None) -> dict[str, np.ndarray]:
    """Per-frame ``mpjpe`` and ``pa_mpjpe`` (N,), metres, plus the aligned ``pred`` and ``gt`` (N x K x 3)."""
    pred, gt = align_joints(pred_joints, gt_joints, vis)
    mpjpe = np.linalg.norm(pred - gt, axis=-1).mean(axis=-1)
    pa = np.linalg.norm(procrustes_align(pred, gt) - gt, axis=-1).mean(axis=-1)
    return {"mpjpe": mpjpe, "pa_mpjpe": pa, "pred": pred, "gt": gt}


def vertex_errors(pred_verts, gt_verts) -> np.ndarray:
    """Per-frame PVE (N,), metres: mean vertex L2 distance of N x V x 3 meshes, without alignment."""
    pred, gt = _f64(pred_verts), _f64(gt_verts)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"vertices: expected two N x V x 3 arrays of one shape, got {pred.shape} and {gt.shape}")
    return np.linalg.norm(pred - gt, axis=-1).mean(axis=-1)


def _acceleration(joints: np.ndarray) -> np.ndarray:
    return joints[:-2] - 2.0 * joints[1:-1] + joints[2:]  # (N-2, K, 3)


def triple_mask(sequence_ids: Sequence | np.ndarray | None, n: int) -> np.ndarray:
    """(n-2,) booleans: True where rows t, t+1, t+2 belong to one sequence (all True without ids)."""
    if n < 3:
        return np.zeros(0, dtype=bool)
    if sequence_ids is None:
        return np.ones(n - 2, dtype=bool)
    ids = np.asarray(sequence_ids)
    if len(ids) != n:
        raise ValueError(f"sequence_ids: {len(ids)} entries for {n} frames")
    same = ids[1:] == ids[:-1]  # (n-1,) row t and t+1 in one sequence
    return same[:-1] & same[1:]


def accel_per_frame(joints, sequence_ids=None) -> np.ndarray:
    """Acceleration magnitude of N x K x 3 joints, mean over joints, metres / frame^2.

    One value per kept triple of consecutive rows: N-2 without ``sequence_ids``, fewer with them.
    """
    j = _f64(joints)
    if len(j) < 3:
        return np.zeros(0)
    norms = np.linalg.norm(_acceleration(j), axis=-1).mean(axis=-1)
    return norms[triple_mask(sequence_ids, len(j))]


def accel_error_per_frame(pred_joints, gt_joints, sequence_ids=None) -> np.ndarray:
    """Norm of the predicted minus ground-truth acceleration, mean over joints, per kept triple (metres)."""
    pred, gt = _f64(pred_joints), _f64(gt_joints)
    if len(pred) < 3:
        return np.zeros(0)
    norms = np.linalg.norm(_acceleration(pred) - _acceleration(gt), axis=-1).mean(axis=-1)
    return norms[triple_mask(sequence_ids, len(pred))]


def _mean_mm(values: np.ndarray) -> float:
    return float(np.mean(values) * M2MM) if len(values) else float("nan")


def compute_metrics(
    pred_j14,
    gt_j14,
    pred_verts=None,
    gt_verts=None,
    *,
    vis=None,
    sequence_ids=None,
) -> dict[str, float]:
    """The original protocol's five numbers, in millimetres.

    Args:
        pred_j14: N x K x 3 predicted joints, metres (K = 14 LSP joints for 3DPW; joints 2, 3 are the hips).
        gt_j14: N x K x 3 ground truth, or N x K x 4 with the visibility/confidence last.
        pred_verts, gt_verts: N x V x 3 meshes, metres; without them ``pve`` is NaN.
        vis: optional N x K visibility (overrides a confidence column).
        sequence_ids: optional N sequence labels; acceleration then skips triples that cross a boundary
            (the ``strict`` protocol). Without them rows are one sequence, as the original.

    Returns ``{'mpjpe', 'pa-mpjpe', 'pve', 'accel', 'accel_err'}`` (floats, mm; accel in mm / frame^2).
    """
    errs = joint_errors(pred_j14, gt_j14, vis)
    pve = vertex_errors(pred_verts, gt_verts) if pred_verts is not None and gt_verts is not None else np.zeros(0)
    return {
        "mpjpe": _mean_mm(errs["mpjpe"]),
        "pa-mpjpe": _mean_mm(errs["pa_mpjpe"]),
        "pve": _mean_mm(pve),
        "accel": _mean_mm(accel_per_frame(errs["pred"], sequence_ids)),
        "accel_err": _mean_mm(accel_error_per_frame(errs["pred"], errs["gt"], sequence_ids)),
    }


def compute_metrics_strict(pred_j14, gt_j14, sequence_ids, pred_verts=None, gt_verts=None, *, vis=None):
    """:func:`compute_metrics` with acceleration computed per sequence (boundaries excluded)."""
    if sequence_ids is None:
        raise ValueError("compute_metrics_strict needs sequence_ids")
    return compute_metrics(pred_j14, gt_j14, pred_verts, gt_verts, vis=vis, sequence_ids=sequence_ids)


def compute_metrics_per_frame(pred_j14, gt_j14, pred_verts=None, gt_verts=None, *, vis=None) -> dict[str, np.ndarray]:
    """Per-frame errors in millimetres: ``mpjpe``, ``pa-mpjpe`` (N,) and ``pve`` (N,) when meshes are given;
    ``accel`` and ``accel_err`` (N-2,) over consecutive rows, as the original's ``inference.pkl``."""
    errs = joint_errors(pred_j14, gt_j14, vis)
    out = {
        "mpjpe": errs["mpjpe"] * M2MM,
        "pa-mpjpe": errs["pa_mpjpe"] * M2MM,
        "accel": accel_per_frame(errs["pred"]) * M2MM,
        "accel_err": accel_error_per_frame(errs["pred"], errs["gt"]) * M2MM,
    }
    if pred_verts is not None and gt_verts is not None:
        out["pve"] = vertex_errors(pred_verts, gt_verts) * M2MM
    return out
