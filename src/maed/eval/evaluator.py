"""The evaluation runner (ORIGINAL.md §7): predictions over whole windows, per-frame errors, every protocol.

Each window (128 frames, reflect-padded) is predicted as ``sample_freq = L // 16`` interleaved 16-frame
clips (frames ``i::sample_freq``, stride 8; :func:`maed.models.windows.predict_windows`), optionally on every
``frame_step``-th frame with the rest linearly interpolated back. The joints compared are the H36M
regressor's for 3DPW and Human3.6M and the model's own 49 for MPI-INF-3DHP (``maed.eval.bodies``),
mapped by the protocol's joint ids. What each protocol counts is a :class:`maed.eval.protocol.Protocol`
value; both protocols come from one inference pass. Outputs are written by ``maed.eval.outputs``; a whole
evaluation (checks, loader, model, outputs) is ``maed.eval.run``.

Errors are accumulated per frame while the loader runs, so memory holds joints, not meshes (vertices
are streamed to disk only when they are to be saved).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maed.config import EvalConfig
from maed.errors import ConfigError, DataError
from maed.eval.keypoints import LandmarkInputs
from maed.eval.metrics import (
    M2MM,
    accel_error_per_frame,
    accel_per_frame,
    joint_errors,
    vertex_errors,
)
from maed.eval.protocol import PROTOCOL_CHOICES, PROTOCOLS, Protocol, joint_ids
from maed.models.windows import predict_windows

__all__ = [
    "PROTOCOLS",
    "PROTOCOL_CHOICES",
    "EvalResult",
    "Evaluator",
    "Protocol",
    "ProtocolResult",
    "joint_ids",
    "segment_ids",
]

GT_VERTS_CHUNK = 512  # frames per ground-truth SMPL forward


def _split_instance(instance_id: str) -> tuple[str, int | None]:
    """'vid/frame' -> (vid, frame number); frame names such as 'frame_000123' (MPI-INF-3DHP) give 123."""
    vid, _, frame = str(instance_id).rpartition("/")
    digits = re.search(r"(\d+)$", frame)
    return (vid or str(instance_id)), (int(digits.group(1)) if digits else None)


def segment_ids(sequences: Sequence[str], frames: Sequence[int | None]) -> np.ndarray:
    """Sequence labels that also change at a gap in the frame numbers (strict acceleration); frames whose
    number is unknown (None) are taken as consecutive."""
    out = np.zeros(len(sequences), dtype=np.int64)
    seg = 0
    for i in range(1, len(sequences)):
        a, b = frames[i - 1], frames[i]
        gap = a is not None and b is not None and b != a + 1
        if sequences[i] != sequences[i - 1] or gap:
            seg += 1
        out[i] = seg
    return out


def _first_occurrence(ids: np.ndarray) -> np.ndarray:
    _, first = np.unique(ids, return_index=True)
    mask = np.zeros(len(ids), dtype=bool)
    mask[first] = True
    return mask


def _flat_strings(batch_field, n: int, t: int) -> np.ndarray:
    """The default collate turns a T-list of per-sample strings into T tuples of N; back to N*T, row-major."""
    arr = np.asarray(batch_field, dtype=str)
    if arr.shape == (t, n):
        arr = arr.T
    return arr.reshape(-1)


# ------------------------------------------------------------------------------------------ results
@dataclass
class ProtocolResult:
    """Metrics of one protocol. ``metrics`` in mm; ``frames``: indices into the evaluator's kept frames."""

    name: str
    metrics: dict[str, float | None]
    num_frames: int
    frames: np.ndarray
    per_sequence: list[dict[str, Any]]
    mpjpe: np.ndarray  # per frame, metres
    pa_mpjpe: np.ndarray
    accel_err: np.ndarray  # per triple, metres


@dataclass
class EvalResult:
    """All protocols of one run plus what the kept frames hold (theta, boxes, paths, ids)."""

    protocols: dict[str, ProtocolResult]
    theta: np.ndarray  # K x 85
    boxes: np.ndarray  # K x 4 (cx, cy, w, h) pixels
    paths: np.ndarray  # K
    instance_ids: np.ndarray  # K
    sequences: np.ndarray  # K
    vertices_file: Path | None = None  # K x V x 3 float32 raw, when streamed
    num_vertices: int = 0


# ------------------------------------------------------------------------------------------ evaluator
@dataclass
class _ProtocolFrames:
    """One protocol's per-frame joint results, batch by batch: aligned joints (metres) and errors."""

    protocol: Protocol
    pred: list[np.ndarray] = field(default_factory=list)  # each (M, K, 3)
    gt: list[np.ndarray] = field(default_factory=list)
    mpjpe: list[np.ndarray] = field(default_factory=list)  # each (M,)
    pa_mpjpe: list[np.ndarray] = field(default_factory=list)

    def add(self, errors: dict[str, np.ndarray]) -> None:
        for name in ("pred", "gt", "mpjpe", "pa_mpjpe"):
            getattr(self, name).append(errors[name])

    def rows(self, frames: np.ndarray) -> tuple[np.ndarray, ...]:
        """(pred, gt, mpjpe, pa_mpjpe) of the given kept frames."""
        return tuple(np.concatenate(getattr(self, n))[frames] for n in ("pred", "gt", "mpjpe", "pa_mpjpe"))


class Evaluator:
    """Runs a MAED model over an evaluation loader and computes every requested protocol.

    Args:
        model: a MAED in eval mode: ``model(images N x T x 3 x H x W, J_regressor) -> MAEDOutput``.
        dataset: an evaluation set (``3dpw`` | ``h36m`` | ``mpii3d``), which selects the joint maps.
        protocols: protocol names to compute, the primary first (``("original",)`` by default); see
            :class:`maed.eval.protocol.Protocol`.
        J_regressor: K' x V regressor passed to the model (the H36M one for 3dpw/h36m), or None; see
            :func:`evaluation_bodies`.
        gt_body_model: the body model of the ground-truth meshes of PVE (``forward_axis_angle``): neutral SMPL
            for the real datasets, the run's own for ``synth``; None disables PVE.
        seqlen: frames per clip (16); frame_step: predict every ``frame_step``-th frame, interpolate the rest.
        device: where the model runs. progress: show a progress bar.
        keypoint_model: for a keypoint model (``MODEL.ENCODER.BACKBONE=keypoints``), the BlazePose variant run
            on the frames in the dataset's boxes (:class:`maed.eval.keypoints.LandmarkInputs`).

    The loader yields whole windows (``build_eval_loader``) whose ``valid`` marks the frames that count.
    With ``valid_mode='original'`` (the original's rule) every protocol can be computed, the strict one
    by keeping each frame of a window once; a ``valid_mode='strict'`` loader has dropped the repeated
    frames the original protocol counts, so only ``strict`` can be computed from it (a ``ConfigError``
    otherwise).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        dataset: str,
        protocols: Sequence[str] = (EvalConfig.PROTOCOL,),
        J_regressor: torch.Tensor | None = None,
        gt_body_model: torch.nn.Module | None = None,
        seqlen: int = EvalConfig.SEQLEN,
        frame_step: int = EvalConfig.INTERPOLATION,
        device: str | torch.device = "cpu",
        progress: bool = True,
        keypoint_model: str = "full",
    ):
        self.model = model
        self.dataset = dataset
        self.protocols = tuple(Protocol.of(name, dataset) for name in protocols)
        self.device = torch.device(device)
        self.J_regressor = None if J_regressor is None else J_regressor.to(self.device, torch.float32)
        self.gt_body_model = gt_body_model
        self.seqlen = int(seqlen)
        self.frame_step = int(frame_step)
        self.progress = progress
        # a keypoint model reads BlazePose's landmarks on the frames instead of the crops
        self.inputs = None
        if getattr(getattr(model, "encoder", None), "input_kind", "images") == "keypoints":
            self.inputs = LandmarkInputs(keypoint_model, device=self.device)

    # ----------------------------------------------------------------------------------- inference
    def predict(self, images: torch.Tensor) -> dict[str, np.ndarray]:
        """images N x T x 3 x H x W (whole windows) -> theta N x T x 85, verts N x T x V x 3 and joints
        N x T x K' x 3 (the regressor's joints, or the model's own), float32 numpy, in frame order."""
        out = predict_windows(
            self.model,
            images,
            seqlen=self.seqlen,
            frame_step=self.frame_step,
            J_regressor=self.J_regressor,
            device=self.device,
            keys=("theta", "verts", "kp_3d"),
        )
        out["joints"] = out.pop("kp_3d")
        return out

    @torch.inference_mode()
    def _gt_vertices(self, theta: np.ndarray) -> np.ndarray:
        """The ground-truth body model on ground-truth theta (M x (3 + 3J + S): cam, axis-angle pose, shape;
        SMPL: 85) -> M x V x 3, no translation (root-relative, as the predicted meshes)."""
        pose_dim = 3 * self.gt_body_model.num_joints
        num_betas = self.gt_body_model.num_betas
        chunks = []
        for s in range(0, len(theta), GT_VERTS_CHUNK):
            th = torch.from_numpy(np.ascontiguousarray(theta[s : s + GT_VERTS_CHUNK], dtype=np.float32))
            th = th.to(self.device)
            body = self.gt_body_model.forward_axis_angle(
                th[:, 3 : 3 + pose_dim], th[:, 3 + pose_dim : 3 + pose_dim + num_betas]
            )
            chunks.append(body.verts.float().cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, 0, 3), np.float32)

    # ----------------------------------------------------------------------------------- main loop
    def _check_loader(self, loader) -> None:
        valid_mode = getattr(getattr(loader, "dataset", None), "valid_mode", "original")
        counting = [p.name for p in self.protocols if p.counts_repeated_frames]
        if valid_mode == "strict" and counting:
            raise ConfigError(
                f"the {', '.join(counting)} protocol counts the repeated frames of short videos, which a loader "
                "built with valid_mode='strict' has dropped; build it with valid_mode='original' (strict frames "
                "are derived from it)"
            )

    def _frame_records(self, batch: dict, pred: dict[str, np.ndarray], joints: dict[Protocol, _ProtocolFrames]):
        """Per kept frame of one batch: aligned joints and errors per protocol (into ``joints``); returns
        PVE, theta, boxes, paths, ids, window and the predicted vertices of those frames."""
        N, T = batch["images"].shape[:2]
        valid = batch["valid"].reshape(-1).cpu().numpy().astype(bool)  # (N*T,)
        kp_3d = batch["kp_3d"].cpu().numpy()  # (N, T, 49, 4)
        for protocol, frames in joints.items():
            # the original takes the ground-truth joints that are confident in the batch's first frame
            gt_joint_ids = (
                np.asarray(protocol.gt_joint_ids)
                if protocol.gt_joint_ids is not None
                else np.flatnonzero(kp_3d[0, 0, :, -1] != 0)
            )
            gt = kp_3d[:, :, gt_joint_ids].reshape(N * T, len(gt_joint_ids), 4)[valid]
            jid = list(protocol.joint_ids)
            if len(jid) != len(gt_joint_ids):
                raise DataError(
                    f"{self.dataset}: the ground truth has {len(gt_joint_ids)} confident 3D joints (indices "
                    f"{gt_joint_ids.tolist()}) in the first frame of a window, but the {self.dataset} protocol "
                    f"evaluates {len(jid)}"
                )
            frames.add(joint_errors(pred["joints"][:, :, jid].reshape(N * T, len(jid), 3)[valid], gt))

        verts = pred["verts"].reshape(N * T, *pred["verts"].shape[2:])[valid]  # (M, V, 3)
        has_smpl = np.ones(len(verts), bool)
        if "w_smpl" in batch:
            has_smpl = batch["w_smpl"].reshape(-1).cpu().numpy()[valid] > 0
        pve = np.full(len(verts), np.nan)
        if self.gt_body_model is not None and has_smpl.any():
            gt_theta = batch["theta"].reshape(N * T, -1).cpu().numpy()[valid]
            gt_verts = self._gt_vertices(gt_theta[has_smpl])
            if gt_verts.shape[1:] == verts.shape[1:]:  # PVE only compares meshes of one topology
                pve[has_smpl] = vertex_errors(verts[has_smpl], gt_verts)
        return {
            "pve": pve,
            "theta": pred["theta"].reshape(N * T, -1)[valid],
            "boxes": batch["bbox"].reshape(N * T, -1).cpu().numpy()[valid],
            "paths": _flat_strings(batch["paths"], N, T)[valid],
            "ids": _flat_strings(batch["instance_id"], N, T)[valid],
            "window": np.repeat(np.arange(N), T)[valid],  # offset by the caller
        }, verts

    def run(self, loader: Iterable[dict], *, vertices_file: str | os.PathLike | None = None) -> EvalResult:
        """Evaluate every window of ``loader``. With ``vertices_file``, the kept frames' predicted
        vertices are appended there (raw float32, K x V x 3) so that they can be saved without RAM."""
        from tqdm import tqdm

        self._check_loader(loader)
        joints = {p: _ProtocolFrames(p) for p in self.protocols}
        per_frame: dict[str, list[np.ndarray]] = {}
        num_windows, num_vertices = 0, 0
        total = len(loader) if hasattr(loader, "__len__") else None
        bar = tqdm(loader, total=total, desc=f"[eval {self.dataset}]", disable=not self.progress, unit="batch")
        with contextlib.ExitStack() as stack:
            vfh = None
            if vertices_file is not None:
                Path(vertices_file).parent.mkdir(parents=True, exist_ok=True)
                vfh = stack.enter_context(open(vertices_file, "wb"))
            for batch in bar:
                inputs = batch["images"] if self.inputs is None else self.inputs(batch)
                rec, verts = self._frame_records(batch, self.predict(inputs), joints)
                rec["window"] = rec["window"] + num_windows
                num_windows += batch["images"].shape[0]
                num_vertices = verts.shape[1]
                if vfh is not None:
                    vfh.write(np.ascontiguousarray(verts, dtype=np.float32).tobytes())
                for key, value in rec.items():
                    per_frame.setdefault(key, []).append(value)

        if not per_frame:
            raise DataError(f"{self.dataset}: the evaluation loader yielded no windows")
        cat = {k: np.concatenate(v) for k, v in per_frame.items()}
        ids = cat["ids"].astype(str)
        split = [_split_instance(i) for i in ids]
        sequences = np.array([s for s, _ in split], dtype=str)
        segments = segment_ids(sequences, [f for _, f in split])
        # each frame of a window once: the first time its (window, frame) pair appears
        once = _first_occurrence(np.char.add(np.char.add(cat["window"].astype(str), "|"), ids))

        results = {}
        for protocol, frames_of in joints.items():
            frames = np.flatnonzero(np.ones(len(ids), bool) if protocol.counts_repeated_frames else once)
            pred_j, gt_j, mpjpe, pa = frames_of.rows(frames)
            results[protocol.name] = self._summarise(
                protocol,
                frames=frames,
                pred_j=pred_j,
                gt_j=gt_j,
                mpjpe=mpjpe,
                pa=pa,
                pve=cat["pve"][frames],
                sequences=sequences[frames],
                segments=segments[frames],
            )
        return EvalResult(
            protocols=results,
            theta=cat["theta"].astype(np.float32),
            boxes=cat["boxes"].astype(np.float32),
            paths=cat["paths"].astype(str),
            instance_ids=ids,
            sequences=sequences,
            vertices_file=Path(vertices_file) if vertices_file is not None else None,
            num_vertices=num_vertices,
        )

    @staticmethod
    def _summarise(protocol: Protocol, *, frames, pred_j, gt_j, mpjpe, pa, pve, sequences, segments) -> ProtocolResult:
        def accel_labels(rows: np.ndarray | slice) -> np.ndarray | None:
            # the segmenting rule: triples inside one sequence (split at frame gaps), or across everything
            return segments[rows] if protocol.accel_within_sequences else None

        accel_err = accel_error_per_frame(pred_j, gt_j, accel_labels(slice(None)))
        metrics = {
            "mpjpe": _mm(mpjpe),
            "pa-mpjpe": _mm(pa),
            "pve": _mm(pve[~np.isnan(pve)]),
            "accel": _mm(accel_per_frame(pred_j, accel_labels(slice(None)))),
            "accel_err": _mm(accel_err),
        }
        per_sequence = []
        for seq in dict.fromkeys(sequences.tolist()):  # first-seen order
            rows = np.flatnonzero(sequences == seq)  # one sequence: acceleration stays inside it either way
            labels = accel_labels(rows)
            per_sequence.append(
                {
                    "protocol": protocol.name,
                    "sequence": seq,
                    "num_frames": len(rows),
                    "mpjpe": _mm(mpjpe[rows]),
                    "pa-mpjpe": _mm(pa[rows]),
                    "pve": _mm(pve[rows][~np.isnan(pve[rows])]),
                    "accel": _mm(accel_per_frame(pred_j[rows], labels)),
                    "accel_err": _mm(accel_error_per_frame(pred_j[rows], gt_j[rows], labels)),
                }
            )
        return ProtocolResult(
            name=protocol.name,
            metrics=metrics,
            num_frames=len(frames),
            frames=frames,
            per_sequence=per_sequence,
            mpjpe=mpjpe,
            pa_mpjpe=pa,
            accel_err=accel_err,
        )


def _mm(values: np.ndarray) -> float | None:
    """Mean in millimetres; None (JSON null) when there is nothing to average."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean() * M2MM) if values.size else None
