"""What ``maed eval`` writes, each file atomically: ``metrics.json`` (written last, so its presence means a
finished run), ``per_sequence.csv``, ``predictions.npz`` and the original's ``inference.pkl``; plus the run
signature that keeps an output directory from mixing two evaluations.
"""

from __future__ import annotations

import csv
import json
import math
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maed.errors import OutputError
from maed.utils.io import atomic_joblib_dump, atomic_path, atomic_write_text, file_sha256

if TYPE_CHECKING:
    from maed.eval.evaluator import EvalResult, ProtocolResult

METRICS_FILE = "metrics.json"
SEQUENCE_FILE = "per_sequence.csv"
PREDICTIONS_FILE = "predictions.npz"
INFERENCE_PKL = "inference.pkl"


def _resolved(path: str | os.PathLike | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().resolve())


def run_signature(
    *,
    checkpoint: str | os.PathLike,
    database: str | os.PathLike,
    dataset: str,
    split: str,
    data_root: str | os.PathLike | None,
    body_model_dir: str | os.PathLike | None,
    crop_cache: str | os.PathLike | None,
    protocol: str,
    frame_step: int,
    model_config: dict,
    inputs: dict[str, Any],
) -> dict[str, Any]:
    """What identifies an evaluation run: every input that changes its numbers. An output directory whose
    ``metrics.json`` holds another signature is refused (:func:`check_previous_run`).

    The checkpoint and the database file are identified by path and content (SHA-256 of their bytes, read
    once in 4 MiB pieces: about 0.15 s per 100 MB on the development CPU, AMD EPYC with SHA extensions); the
    data root and the body-model directory by resolved path; the crop cache the loader reads (None when it
    reads the frames) by its ``meta.json`` (rows, crop size, margin); ``model_config`` is the config's
    ``MODEL`` section and ``inputs`` the evaluation's window, clip and crop sizes. Options that do not change
    the numbers (batch size, workers, device, progress) are not part of it, nor is the content of the
    images and body-model files (their folders are).
    """
    crop_meta = Path(crop_cache) / "meta.json" if crop_cache is not None else None
    return {
        "checkpoint": _resolved(checkpoint),
        "checkpoint_sha256": file_sha256(checkpoint),
        "dataset": dataset,
        "split": split,
        "database": _resolved(database),
        "database_sha256": file_sha256(database),
        "data_root": _resolved(data_root),
        "body_model_dir": _resolved(body_model_dir),
        "crop_cache": None
        if crop_meta is None
        else {"dir": _resolved(crop_cache), "meta_sha256": file_sha256(crop_meta)},
        "protocol": protocol,
        "frame_step": int(frame_step),
        "model": model_config,
        "inputs": dict(inputs),
    }


def check_previous_run(out_dir: str | os.PathLike, signature: dict[str, Any], overwrite: bool = False) -> None:
    """Refuse an output directory whose ``metrics.json`` comes from a different run (unless ``overwrite``);
    the same run again is accepted and writes its files anew."""
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


def write_metrics(path: Path, record: dict) -> None:
    """``metrics.json``: the record of :func:`metrics_record` (no NaN: JSON has none)."""
    atomic_write_text(path, json.dumps(record, indent=2, allow_nan=False) + "\n")
