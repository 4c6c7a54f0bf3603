"""The evaluation protocol runner (ORIGINAL.md §7): predictions over whole windows, per-frame errors, outputs.

Protocols:

- ``original`` (default, the paper's numbers): 128-frame windows with reflect padding; each window is
  predicted as ``sample_freq = L // 16`` interleaved 16-frame clips (frames ``i::sample_freq``, stride 8),
  optionally on every ``frame_step``-th frame with the rest linearly interpolated back; frames kept by the
  original's ``valid`` rule (which still counts the repeated frames of videos shorter than half a
  window); the H36M regressor and ``H36M_TO_J14`` for 3DPW, ``H36M_TO_J17`` (with its order bug) for
  Human3.6M, the model's own 49 joints through ``J49_TO_MPII3D`` for MPI-INF-3DHP; acceleration over the
  concatenation of all kept frames.
- ``strict``: the same predictions, but padded frames never count, acceleration is computed inside each
  sequence (a new sequence also starts at a gap in the frame numbers), and Human3.6M uses the fixed
  ``H36M_TO_J17`` order.

Errors are accumulated per frame while the loader runs, so memory holds joints, not meshes (vertices
are streamed to disk only when they are to be saved).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maed.config import Config, DatasetConfig, EvalConfig
from maed.data.registry import REGRESSOR_FILES, eval_dataset_info
from maed.errors import AssetError, ConfigError, DataError, OutputError
from maed.eval.metrics import (
    M2MM,
    accel_error_per_frame,
    accel_per_frame,
    joint_errors,
    vertex_errors,
)
from maed.utils.io import atomic_path, atomic_write_text

PROTOCOLS = ("original", "strict")
PROTOCOL_CHOICES = ("original", "strict", "both")
METRICS_FILE = "metrics.json"
SEQUENCE_FILE = "per_sequence.csv"
PREDICTIONS_FILE = "predictions.npz"
INFERENCE_PKL = "inference.pkl"
GT_VERTS_CHUNK = 512  # frames per ground-truth SMPL forward


def protocols_for(protocol: str) -> tuple[str, ...]:
    """``original`` | ``strict`` | ``both`` -> the protocols to report, the primary one first."""
    if protocol not in PROTOCOL_CHOICES:
        raise ConfigError(f"--protocol {protocol!r}: expected one of {', '.join(PROTOCOL_CHOICES)}")
    return PROTOCOLS if protocol == "both" else (protocol,)


def joint_ids(dataset: str, protocol: str) -> list[int]:
    """Index map applied to the evaluated joints (H36M order fixed under ``strict``)."""
    return eval_dataset_info(dataset, option="evaluation dataset").joint_ids(strict=protocol == "strict")


def check_frame_step(sample_pool: int, seqlen: int, frame_step: int) -> int:
    """Frames left in a window after keeping every ``frame_step``-th one; must be a multiple of ``seqlen``."""
    if frame_step < 1:
        raise ConfigError(f"EVAL.INTERPOLATION / --frame-step {frame_step}: expected an integer >= 1")
    kept = math.ceil(sample_pool / frame_step)
    if kept < seqlen or kept % seqlen:
        ok = [i for i in range(1, sample_pool + 1) if math.ceil(sample_pool / i) % seqlen == 0]
        raise ConfigError(
            f"EVAL.INTERPOLATION / --frame-step {frame_step}: a {sample_pool}-frame window keeps {kept} frames, which "
            f"is not a whole number of {seqlen}-frame clips; valid values here: {', '.join(map(str, ok))}"
        )
    return kept


def interpolate_frames(seq: np.ndarray, orig_len: int) -> np.ndarray:
    """Linear interpolation of N x L x ... predictions back to N x orig_len x ... (the original's knots:
    the L predictions sit at (1..L)/L, the output frames at linspace(0, 1, orig_len); ends extrapolated)."""
    from scipy.interpolate import interp1d

    L = seq.shape[1]
    if L == orig_len:
        return seq
    knots = np.arange(1, L + 1, dtype=np.float64) / L
    f = interp1d(knots, seq, axis=1, fill_value="extrapolate")
    return f(np.linspace(0.0, 1.0, num=orig_len, endpoint=True)).astype(seq.dtype)


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


@torch.inference_mode()
def predict_windows(
    model: torch.nn.Module,
    images: torch.Tensor,
    *,
    seqlen: int = EvalConfig.SEQLEN,
    frame_step: int = EvalConfig.INTERPOLATION,
    J_regressor: torch.Tensor | None = None,
    device: str | torch.device | None = None,
    keys: Sequence[str] = ("theta", "verts", "kp_3d", "kp_2d", "rotmat"),
) -> dict[str, np.ndarray]:
    """The original protocol's clip scheme: predictions for every frame of whole windows.

    images: N x T x 3 x H x W crops (T = the window, 128 in the protocol). Every ``frame_step``-th frame is
    kept (L frames, a multiple of ``seqlen``); the model sees ``L // seqlen`` interleaved clips (frames
    ``i::L // seqlen``, i.e. stride 8 for 128 / 16), and with ``frame_step > 1`` the predictions are linearly
    interpolated back to T frames. Returns the model outputs named in ``keys`` (``MAEDOutput`` fields), as
    float32 numpy arrays N x T x ..., in frame order. Evaluation and the demo both predict through here.
    """
    device = torch.device(device) if device is not None else images.device
    N, T = images.shape[:2]
    sub = images[:, ::frame_step]
    L = check_frame_step(T, seqlen, frame_step)
    freq = L // seqlen
    outs: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for i in range(freq):
        clip = sub[:, i::freq].to(device, non_blocking=True)  # (N, seqlen, 3, H, W)
        out = model(clip, J_regressor=J_regressor)
        for k in keys:
            outs[k].append(out[k].float().cpu().numpy())
    result = {}
    for key, parts in outs.items():
        # clip i holds frames i, i + freq, ...: stacking on axis 2 and flattening restores the order
        stacked = np.stack(parts, axis=2)  # (N, seqlen, freq, ...)
        merged = stacked.reshape(N, L, *stacked.shape[3:])
        result[key] = interpolate_frames(merged, T) if L != T else merged
    return result


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
class Evaluator:
    """Runs a MAED model over an evaluation loader and computes every requested protocol.

    Args:
        model: a MAED in eval mode: ``model(images N x T x 3 x H x W, J_regressor) -> MAEDOutput``.
        dataset: ``3dpw`` | ``h36m`` | ``mpii3d`` (selects the regressor and joint map).
        protocols: protocols to compute, the primary first (``("original",)`` by default).
        J_regressor: K' x V regressor passed to the model (the H36M one for 3dpw/h36m), or None.
        gt_body_model: neutral SMPL for the ground-truth meshes of PVE (``forward_axis_angle``); None
            disables PVE.
        seqlen: frames per clip (16); frame_step: predict every ``frame_step``-th frame, interpolate the rest.
        device: where the model runs. progress: show a progress bar.
    The loader must yield whole windows with the original ``valid`` rule (``build_eval_loader(...,
    valid_mode='original')``); the strict frames are derived from it.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        dataset: str,
        protocols: Sequence[str] = ("original",),
        J_regressor: torch.Tensor | None = None,
        gt_body_model: torch.nn.Module | None = None,
        seqlen: int = EvalConfig.SEQLEN,
        frame_step: int = EvalConfig.INTERPOLATION,
        device: str | torch.device = "cpu",
        progress: bool = True,
    ):
        for p in protocols:
            if p not in PROTOCOLS:
                raise ConfigError(f"protocol {p!r}: expected one of {', '.join(PROTOCOLS)}")
        self.model = model
        self.dataset = dataset
        self.protocols = tuple(protocols)
        self.jids = {p: joint_ids(dataset, p) for p in self.protocols}
        self.device = torch.device(device)
        self.J_regressor = None if J_regressor is None else J_regressor.to(self.device, torch.float32)
        self.gt_body_model = gt_body_model
        self.seqlen = int(seqlen)
        self.frame_step = int(frame_step)
        self.progress = progress

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
        """Neutral SMPL on ground-truth theta (M x 85: cam, 72 pose, 10 betas) -> M x V x 3, no translation."""
        chunks = []
        for s in range(0, len(theta), GT_VERTS_CHUNK):
            th = torch.from_numpy(np.ascontiguousarray(theta[s : s + GT_VERTS_CHUNK], dtype=np.float32))
            th = th.to(self.device)
            body = self.gt_body_model.forward_axis_angle(th[:, 3:75], th[:, 75:85])
            chunks.append(body.verts.float().cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, 0, 3), np.float32)

    # ----------------------------------------------------------------------------------- main loop
    def _frame_records(self, batch: dict, pred: dict[str, np.ndarray]) -> dict[str, Any]:
        """Per kept frame of one batch: aligned joints and errors per protocol, PVE, theta, boxes, ids."""
        N, T = batch["images"].shape[:2]
        valid = batch["valid"].reshape(-1).cpu().numpy().astype(bool)  # (N*T,)
        kp_3d = batch["kp_3d"].cpu().numpy()  # (N, T, 49, 4)
        # the original takes the ground-truth joints that are confident in the batch's first frame
        gt_joint_ids = np.flatnonzero(kp_3d[0, 0, :, -1] != 0)
        gt = kp_3d[:, :, gt_joint_ids].reshape(N * T, len(gt_joint_ids), 4)[valid]
        rec: dict[str, Any] = {}
        for p in self.protocols:
            jid = self.jids[p]
            if len(jid) != len(gt_joint_ids):
                raise DataError(
                    f"{self.dataset}: the ground truth has {len(gt_joint_ids)} confident 3D joints (indices "
                    f"{gt_joint_ids.tolist()}) in the first frame of a window, but the {self.dataset} protocol "
                    f"evaluates {len(jid)}"
                )
            errs = joint_errors(pred["joints"][:, :, jid].reshape(N * T, len(jid), 3)[valid], gt)
            for key in ("pred", "gt", "mpjpe", "pa_mpjpe"):
                rec[f"{p}:{key}"] = errs[key]

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
        rec.update(
            verts=verts,
            pve=pve,
            theta=pred["theta"].reshape(N * T, -1)[valid],
            boxes=batch["bbox"].reshape(N * T, -1).cpu().numpy()[valid],
            paths=_flat_strings(batch["paths"], N, T)[valid],
            ids=_flat_strings(batch["instance_id"], N, T)[valid],
            window=np.repeat(np.arange(N), T)[valid],  # offset by the caller
        )
        return rec

    def run(self, loader: Iterable[dict], *, vertices_file: str | os.PathLike | None = None) -> EvalResult:
        """Evaluate every window of ``loader``. With ``vertices_file``, the kept frames' predicted
        vertices are appended there (raw float32, K x V x 3) so that they can be saved without RAM."""
        from tqdm import tqdm

        acc: dict[str, list] = {}
        num_windows, num_vertices = 0, 0
        total = len(loader) if hasattr(loader, "__len__") else None
        bar = tqdm(loader, total=total, desc=f"[eval {self.dataset}]", disable=not self.progress, unit="batch")
        with contextlib.ExitStack() as stack:
            vfh = None
            if vertices_file is not None:
                Path(vertices_file).parent.mkdir(parents=True, exist_ok=True)
                vfh = stack.enter_context(open(vertices_file, "wb"))
            for batch in bar:
                rec = self._frame_records(batch, self.predict(batch["images"]))
                rec["window"] = rec["window"] + num_windows
                num_windows += batch["images"].shape[0]
                verts = rec.pop("verts")
                num_vertices = verts.shape[1]
                if vfh is not None:
                    vfh.write(np.ascontiguousarray(verts, dtype=np.float32).tobytes())
                for key, value in rec.items():
                    acc.setdefault(key, []).append(value)

        if not acc:
            raise DataError(f"{self.dataset}: the evaluation loader yielded no windows")
        cat = {k: np.concatenate(v) for k, v in acc.items()}
        ids = cat["ids"].astype(str)
        split = [_split_instance(i) for i in ids]
        sequences = np.array([s for s, _ in split], dtype=str)
        frames = [f for _, f in split]
        # strict frames: no padded frame counts, i.e. each (window, frame) once
        window_ids = np.char.add(cat["window"].astype(str), "|")
        strict_keep = _first_occurrence(np.char.add(window_ids, ids))
        segments = segment_ids(sequences, frames)

        results = {}
        for p in self.protocols:
            keep = np.ones(len(ids), bool) if p == "original" else strict_keep
            frames_p = np.flatnonzero(keep)
            results[p] = self._summarise(
                p,
                frames=frames_p,
                pred_j=cat[f"{p}:pred"][frames_p],
                gt_j=cat[f"{p}:gt"][frames_p],
                mpjpe=cat[f"{p}:mpjpe"][frames_p],
                pa=cat[f"{p}:pa_mpjpe"][frames_p],
                pve=cat["pve"][frames_p],
                seq_labels=None if p == "original" else segments[frames_p],
                sequences=sequences[frames_p],
                segments=segments[frames_p],
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

    def _summarise(self, name, *, frames, pred_j, gt_j, mpjpe, pa, pve, seq_labels, sequences, segments):
        accel = accel_per_frame(pred_j, seq_labels)
        accel_err = accel_error_per_frame(pred_j, gt_j, seq_labels)
        metrics = {
            "mpjpe": _mm(mpjpe),
            "pa-mpjpe": _mm(pa),
            "pve": _mm(pve[~np.isnan(pve)]),
            "accel": _mm(accel),
            "accel_err": _mm(accel_err),
        }
        per_sequence = []
        for seq in dict.fromkeys(sequences.tolist()):  # first-seen order
            rows = np.flatnonzero(sequences == seq)
            # inside one sequence; strict also splits at frame gaps
            labels = segments[rows] if name == "strict" else None
            per_sequence.append(
                {
                    "protocol": name,
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
            name=name,
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


# ------------------------------------------------------------------------------------------ outputs
def file_sha256(path: str | os.PathLike, block: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def run_signature(
    *,
    checkpoint: str | os.PathLike,
    checkpoint_sha256: str,
    dataset: str,
    split: str,
    protocol: str,
    frame_step: int,
    model_config: dict,
) -> dict[str, Any]:
    """What identifies an evaluation run; an output directory holding another signature is refused."""
    return {
        "checkpoint": str(Path(checkpoint).expanduser().resolve()),
        "checkpoint_sha256": checkpoint_sha256,
        "dataset": dataset,
        "split": split,
        "protocol": protocol,
        "frame_step": int(frame_step),
        "model": model_config,
    }


def check_output_dir(out_dir: str | os.PathLike, signature: dict[str, Any], overwrite: bool = False) -> None:
    """Refuse an output directory whose ``metrics.json`` comes from a different run (unless ``overwrite``)."""
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise OutputError(f"--out {out_dir}: exists and is not a directory; choose a directory for the results")
    path = Path(out_dir) / METRICS_FILE
    if overwrite or not path.is_file():
        return
    try:
        previous = json.loads(path.read_text()).get("run")
    except (OSError, ValueError, AttributeError):
        previous = None
    if previous == signature:
        return
    if isinstance(previous, dict):
        diff = sorted(k for k in set(previous) | set(signature) if previous.get(k) != signature.get(k))
        what = f"differs in {', '.join(diff)}"
    else:
        what = "is not a maed evaluation record"
    raise OutputError(
        f"--out {out_dir}: already holds the results of a different evaluation ({path} {what}); "
        "choose another directory or pass --overwrite"
    )


def _write_npy_member(zf: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
        np.lib.format.write_array(fh, np.asarray(array), allow_pickle=False)


def _write_streamed_member(zf: zipfile.ZipFile, name: str, raw: Path, rows: np.ndarray, shape_tail) -> None:
    """``name.npy`` = rows of a raw float32 file, copied in blocks (never the whole array in RAM)."""
    src = np.memmap(raw, dtype=np.float32, mode="r").reshape(-1, *shape_tail)
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype("<f4")),
        "fortran_order": False,
        "shape": (len(rows), *shape_tail),
    }
    with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
        np.lib.format.write_array_header_2_0(fh, header)
        for s in range(0, len(rows), 1024):
            fh.write(np.ascontiguousarray(src[rows[s : s + 1024]], dtype="<f4").tobytes())
    del src


def write_predictions(
    path: Path, result: EvalResult, frames: np.ndarray, save_verts: bool, strict_mask: np.ndarray | None = None
) -> None:
    """``predictions.npz``: theta (N x 85), boxes (N x 4, cx cy w h px), paths, instance_id, sequence,
    and verts (N x V x 3 float32, metres) when asked; ``strict`` (N bool) marks the strict frames."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        _write_npy_member(zf, "theta", result.theta[frames])
        _write_npy_member(zf, "boxes", result.boxes[frames])
        _write_npy_member(zf, "paths", result.paths[frames])
        _write_npy_member(zf, "instance_id", result.instance_ids[frames])
        _write_npy_member(zf, "sequence", result.sequences[frames])
        if strict_mask is not None:
            _write_npy_member(zf, "strict", strict_mask)
        if save_verts and result.vertices_file is not None:
            _write_streamed_member(zf, "verts", result.vertices_file, frames, (result.num_vertices, 3))


def write_inference_pkl(path: Path, result: EvalResult, primary: ProtocolResult) -> None:
    """The original's ``inference.pkl`` (joblib): pred_theta, pred_verts, paths, bboxes, and per-frame
    mpjpe, pa_mpjpe (N) and accel (the acceleration *error*, N - 2), in metres as the original."""
    from maed.utils.io import atomic_joblib_dump

    frames = primary.frames
    if result.vertices_file is not None and result.num_vertices:
        src = np.memmap(result.vertices_file, dtype=np.float32, mode="r").reshape(-1, result.num_vertices, 3)
        verts = np.asarray(src[frames])
        del src
    else:
        verts = np.zeros((len(frames), 0, 3), np.float32)
    atomic_joblib_dump(
        {
            "pred_theta": result.theta[frames],
            "pred_verts": verts,
            "paths": result.paths[frames],
            "bboxes": result.boxes[frames],
            "mpjpe": primary.mpjpe,
            "pa_mpjpe": primary.pa_mpjpe,
            "accel": primary.accel_err,
        },
        path,
    )


def write_sequence_csv(path: Path, result: EvalResult) -> None:
    columns = ["protocol", "sequence", "num_frames", "mpjpe", "pa-mpjpe", "pve", "accel", "accel_err"]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for pr in result.protocols.values():
            for row in pr.per_sequence:
                writer.writerow(
                    {
                        k: ("" if row[k] is None else (f"{row[k]:.4f}" if isinstance(row[k], float) else row[k]))
                        for k in columns
                    }
                )


def _finite_or_none(value):
    """JSON has no NaN: a metric that could not be computed (e.g. too few frames for acceleration) is null."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def metrics_record(result: EvalResult, *, dataset: str, split: str, checkpoint: str, signature: dict) -> dict:
    """The ``metrics.json`` content: the primary protocol's numbers at the top level, every protocol under
    ``by_protocol``; non-finite values become null."""
    names = list(result.protocols)
    primary = result.protocols[names[0]]
    return _finite_or_none(
        {
            **primary.metrics,
            "num_frames": primary.num_frames,
            "protocol": names[0] if len(names) == 1 else "both",
            "primary_protocol": names[0],
            "dataset": dataset,
            "split": split,
            "checkpoint": str(checkpoint),
            "by_protocol": {n: {**pr.metrics, "num_frames": pr.num_frames} for n, pr in result.protocols.items()},
            "units": "mm (accel, accel_err: mm / frame^2)",
            "run": signature,
        }
    )


def format_table(record: dict) -> str:
    """A short side-by-side text table of the protocols in a metrics record."""
    keys = ("mpjpe", "pa-mpjpe", "pve", "accel", "accel_err", "num_frames")
    lines = [f"{record['dataset']} {record['split']}: " + "  ".join(f"{k:>10s}" for k in keys)]
    for name, m in record["by_protocol"].items():
        cells = []
        for k in keys:
            v = m.get(k)
            cells.append(f"{'-':>10s}" if v is None else (f"{v:10d}" if k == "num_frames" else f"{v:10.2f}"))
        lines.append(f"{name:>{len(lines[0].split(':')[0]) + 1}s} " + "  ".join(cells))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ runner
def run_evaluation(
    *,
    checkpoint: str | os.PathLike,
    config,
    out_dir: str | os.PathLike,
    dataset: str = "3dpw",
    split: str = "test",
    db_dir: str | os.PathLike,
    data_root: str | os.PathLike | None,
    body_model_dir: str | os.PathLike | None,
    protocol: str = EvalConfig.PROTOCOL,
    frame_step: int = EvalConfig.INTERPOLATION,
    seqlen: int = EvalConfig.SEQLEN,
    sample_pool: int = EvalConfig.SAMPLE_POOL,
    batch_size: int = EvalConfig.BATCH_SIZE,
    num_workers: int = Config.NUM_WORKERS,
    device: str | torch.device = "cpu",
    save_verts: bool = False,
    save_inference_pkl: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    width: int = DatasetConfig.WIDTH,
    height: int = DatasetConfig.HEIGHT,
    use_crop_cache: bool = True,
) -> dict[str, Any]:
    """Evaluate a checkpoint on one dataset split and write ``metrics.json``, ``per_sequence.csv``,
    ``predictions.npz`` (and ``inference.pkl`` when asked) into ``out_dir``. Returns the metrics record.

    ``config`` is a resolved :class:`maed.config.Config` describing the architecture (the authors'
    checkpoint carries none). Every check that can fail (options, output directory, database, checkpoint,
    body model) runs before the first prediction, and outputs are written atomically at the end, with
    ``metrics.json`` last.
    """
    from maed.data.loaders import build_eval_loader, check_database_file
    from maed.models import load_model

    protocols = protocols_for(protocol)
    joint_ids(dataset, protocols[0])
    check_frame_step(sample_pool, seqlen, frame_step)
    if batch_size < 1:
        raise ConfigError(f"--batch-size / EVAL.BATCH_SIZE {batch_size}: expected an integer >= 1 (windows per batch)")
    if num_workers < 0:
        raise ConfigError(f"--num-workers / NUM_WORKERS {num_workers}: expected an integer >= 0")
    out_dir = Path(out_dir)
    if not Path(checkpoint).is_file():
        from maed.models.checkpoint import read_checkpoint

        read_checkpoint(checkpoint)  # raises the AssetError that says where the checkpoint comes from
    signature = run_signature(
        checkpoint=checkpoint,
        checkpoint_sha256=file_sha256(checkpoint),
        dataset=dataset,
        split=split,
        protocol=protocol,
        frame_step=frame_step,
        model_config=config.to_dict()["MODEL"],
    )
    check_output_dir(out_dir, signature, overwrite=overwrite)
    check_database_file(db_dir, dataset, split)

    model = load_model(checkpoint, body_model_dir=body_model_dir, config=config, device=device)
    body = model.body_model
    J_regressor = None
    regressor = eval_dataset_info(dataset).eval_regressor
    if regressor is not None:
        J_regressor = getattr(body, f"J_regressor_{regressor}", None)
        if J_regressor is None:
            raise AssetError(
                f"{dataset} evaluation needs {REGRESSOR_FILES[regressor]} (17 x 6890 Human3.6M regressor) in the "
                f"body-model directory {body_model_dir}, with the SMPL body model (MODEL.BODY_MODEL=smpl)"
            )
    gt_body = body if getattr(body, "name", "") == "smpl" and hasattr(body, "forward_axis_angle") else None
    if gt_body is None:
        from maed.body import build_body_model

        try:
            gt_body = build_body_model("smpl", model_dir=body_model_dir).to(device)
        except AssetError:
            gt_body = None  # PVE needs SMPL ground-truth meshes; reported as null without them

    loader = build_eval_loader(
        dataset,
        split,
        db_dir=db_dir,
        dataset_root=data_root,
        sample_pool=sample_pool,
        batch_size=batch_size,
        num_workers=num_workers,
        valid_mode="original",
        pin_memory=str(device).startswith("cuda"),
        width=width,
        height=height,
        use_crop_cache=use_crop_cache,
    )
    evaluator = Evaluator(
        model,
        dataset=dataset,
        protocols=protocols,
        J_regressor=J_regressor,
        gt_body_model=gt_body,
        seqlen=seqlen,
        frame_step=frame_step,
        device=device,
        progress=progress,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    need_verts = save_verts or save_inference_pkl
    verts_tmp = out_dir / f".{PREDICTIONS_FILE}.vertices.tmp"
    try:
        result = evaluator.run(loader, vertices_file=verts_tmp if need_verts else None)
        primary = result.protocols[protocols[0]]
        strict_mask = None
        if "strict" in result.protocols and protocols[0] != "strict":
            strict_mask = np.isin(primary.frames, result.protocols["strict"].frames)
        write_predictions(out_dir / PREDICTIONS_FILE, result, primary.frames, save_verts, strict_mask)
        write_sequence_csv(out_dir / SEQUENCE_FILE, result)
        if save_inference_pkl:
            write_inference_pkl(out_dir / INFERENCE_PKL, result, primary)
        record = metrics_record(result, dataset=dataset, split=split, checkpoint=str(checkpoint), signature=signature)
        atomic_write_text(out_dir / METRICS_FILE, json.dumps(record, indent=2, allow_nan=False) + "\n")
    finally:
        if verts_tmp.exists():
            verts_tmp.unlink()
    return record
