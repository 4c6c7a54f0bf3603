"""A trained model as a file to ship: weights, config and provenance, without the training state.

A training checkpoint (``<run>/checkpoints/best.pt``) also holds the optimizer's moments (twice the
weights again for Adam), the scheduler and the RNG states. :func:`export_checkpoint` keeps what
:func:`maed.models.load_model` needs (``format``, ``model``, ``config``) and adds a ``provenance`` record:
where the weights come from (the checkpoint, its run, epoch, step and seed), the command that trains them,
the training data (databases with their SHA-256, and ``synth.json``'s arguments for ``maed synth`` data),
the validation metrics stored in the checkpoint and any evaluation ``metrics.json`` given.

Parameters can be stored as float16 (half the size; buffers such as BatchNorm statistics stay float32).
``load_model`` copies them into the float32 model, so the model still runs in float32; before anything is
written, the exported model and the training checkpoint's are run on one clip and the largest vertex
difference must be within a tolerance (1 mm by default), else nothing is written. How much float16 moves
the output depends on the network (its depth, its trained weights): ``auto`` (the default) takes float16
when it passes that check and float32 otherwise.

    maed export checkpoint RUN_DIR/checkpoints/best.pt --out checkpoints/maed_kp_anny.pt
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

import torch

from maed.config import load_config
from maed.data.loaders import database_path
from maed.errors import CheckpointError, ConfigError, MaedError
from maed.eval.outputs import file_sha256
from maed.models import build_model
from maed.models.checkpoint import PROJECT_FORMAT, extract_state_dict, load_checkpoint, read_checkpoint
from maed.models.keypoints import random_keypoints
from maed.paths import resolve_paths
from maed.utils.io import atomic_torch_save, check_output_file

#: the keys of a shipped checkpoint besides the weights
EXPORT_VERSION = 1
DTYPES = {"float16": torch.float16, "float32": torch.float32}
DTYPE_CHOICES = ("auto", *DTYPES)


class ExportError(MaedError):
    """The exported model does not reproduce the checkpoint it was made from."""


def _weights(state: dict[str, torch.Tensor], parameters: set[str], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The ``parameters`` of a state dict in ``dtype``, detached copies; buffers (BatchNorm statistics and
    counters: small, and their precision shows in every output) stay as they are."""
    return {
        k: (v.to(dtype) if k in parameters and v.is_floating_point() else v).detach().clone().contiguous()
        for k, v in state.items()
    }


def _sha256(path: Path) -> str | None:
    return file_sha256(path) if path.is_file() else None


def training_data(config: dict[str, Any]) -> dict[str, Any]:
    """What the run trained and validated on, from its config: datasets per stream, the database files
    (path and SHA-256 when still present) and, for ``maed synth`` data, the generator's arguments."""
    cfg = load_config(config)
    paths = resolve_paths(cfg.PATHS)
    train = cfg.TRAIN
    streams = {"3d": train.DATASETS_3D, "2d": train.DATASETS_2D, "img": train.DATASETS_IMG}
    batch = {"3d": train.BATCH_SIZE_3D, "2d": train.BATCH_SIZE_2D, "img": train.BATCH_SIZE_IMG}
    used = {k: list(v) for k, v in streams.items() if v and batch[k] > 0}
    databases = {}
    for name in dict.fromkeys(n for names in used.values() for n in names):
        path = database_path(paths["db_dir"], name, "train")
        databases[name] = {"path": str(path), "sha256": _sha256(path)}
    data: dict[str, Any] = {"streams": used, "databases": databases, "validation": train.DATASET_EVAL or None}
    sidecar = Path(paths["db_dir"]) / "synth.json"
    if "synth" in databases and sidecar.is_file():
        try:
            data["synth"] = json.loads(sidecar.read_text()).get("arguments")
        except (OSError, ValueError):
            data["synth"] = None
    return data


def _evaluations(paths: list[str | os.PathLike]) -> list[dict[str, Any]]:
    """The metrics of evaluation ``metrics.json`` files (``maed eval --out``), without their run signature."""
    out = []
    for p in paths:
        try:
            record = json.loads(Path(p).read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"--metrics {p}: not a readable metrics.json of `maed eval` ({e})") from None
        if not isinstance(record, dict) or "by_protocol" not in record:
            raise ConfigError(f"--metrics {p}: not a metrics.json of `maed eval` (no 'by_protocol')")
        out.append({k: v for k, v in record.items() if k != "run"})
    return out


def compare_outputs(reference: torch.nn.Module, exported: torch.nn.Module, images: torch.Tensor) -> dict[str, float]:
    """Largest absolute differences of two models' outputs on ``images`` (a clip in their input layout, as
    :func:`probe_clip` makes): ``verts`` and ``kp_3d`` in metres, ``theta``."""
    with torch.inference_mode():
        a, b = reference(images), exported(images)
    return {k: float((a[k].float() - b[k].float()).abs().max()) for k in ("verts", "kp_3d", "theta")}


def plain_model(ckpt: dict[str, Any], *, body_model_dir=None, body_model=None) -> torch.nn.Module:
    """The float32 model of a project checkpoint dict, in eval mode, as built for training: the comparison of
    two weight precisions must not depend on how ``load_model`` sets a model up for fast inference."""
    cfg = load_config(ckpt["config"])
    cfg.MODEL.ENCODER.INIT_WEIGHTS = ""  # the checkpoint provides every weight
    model = build_model(cfg, body_model=body_model, body_model_dir=body_model_dir)
    load_checkpoint(model, ckpt)
    return model.eval()


def probe_clip(config: dict[str, Any], seed: int = 0) -> torch.Tensor:
    """A random clip in the model's input layout, to compare two versions of a model on: 1 x T x 3 x S x S
    crops, or for the keypoints encoder 1 x T x K x C landmarks (T = the evaluation clip length, within the
    temporal embedding)."""
    cfg = load_config(config)
    enc = cfg.MODEL.ENCODER
    T = min(cfg.EVAL.SEQLEN, enc.MAX_SEQLEN)
    generator = torch.Generator().manual_seed(seed)
    if enc.BACKBONE.lower() == "keypoints":
        return random_keypoints(1, T, enc.NUM_KEYPOINTS, enc.KP_WORLD, generator=generator)
    return torch.randn(1, T, 3, cfg.DATASET.HEIGHT, cfg.DATASET.WIDTH, generator=generator)


def export_checkpoint(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    dtype: str = "auto",
    train_command: str | None = None,
    metrics: list[str | os.PathLike] = (),
    tolerance_mm: float = 1.0,
    body_model_dir: str | os.PathLike | None = None,
    export_command: str | None = None,
) -> dict[str, Any]:
    """Write the shipped form of the training checkpoint ``source`` to ``out`` (atomically); returns its
    ``provenance``.

    ``dtype``: ``float16`` or ``float32`` parameters, or ``auto``: float16 when it passes the check below,
    else float32. ``train_command``: the command that trains this model
    (default: ``maed train --config RUN_DIR/config.yaml``, the run's recorded config, seed included).
    ``metrics``: evaluation ``metrics.json`` files to record; ``export_command``: this export's command
    line. The exported model must reproduce ``source``'s vertices within ``tolerance_mm`` on a probe clip
    (:class:`ExportError` otherwise, and nothing is written).
    """
    if dtype not in DTYPE_CHOICES:
        raise ConfigError(f"--dtype {dtype}: expected one of {', '.join(DTYPE_CHOICES)}")
    source, out = Path(source), Path(out)
    check_output_file(out, option="--out")
    ckpt = read_checkpoint(source)
    state, layout = extract_state_dict(ckpt)
    config = ckpt.get("config")
    if layout != PROJECT_FORMAT or not isinstance(config, dict) or not config:
        raise CheckpointError(
            f"{source}: expected a checkpoint written by `maed train` (with its config); got the {layout} layout"
        )
    evaluations = _evaluations(list(metrics))
    run_dir = source.parent.parent if source.parent.name == "checkpoints" else source.parent
    seed = ckpt.get("seed", config.get("SEED_VALUE"))
    provenance = {
        "version": EXPORT_VERSION,
        "source": str(source),
        "source_sha256": _sha256(source),
        "run_dir": str(run_dir),
        "epoch": ckpt.get("epoch"),
        "step": ckpt.get("step"),
        "seed": seed,
        "train_command": train_command or f"maed train --config {shlex.quote(str(run_dir / 'config.yaml'))}",
        "export_command": export_command,
        "data": training_data(config),
        "validation": {
            "dataset": config.get("TRAIN", {}).get("DATASET_EVAL") or None,
            "best_pa_mpjpe_mm": ckpt.get("best_metric"),
            "best_epoch": ckpt.get("best_epoch"),
            "metrics": ckpt.get("metrics") or {},
        },
        "evaluations": evaluations,
        "torch": str(torch.__version__),  # a TorchVersion object would not load with weights_only
    }
    reference = plain_model(ckpt, body_model_dir=body_model_dir)
    parameters = {name for name, _ in reference.named_parameters()}
    probe = probe_clip(config)
    tried = {}
    for candidate in ("float16", "float32") if dtype == "auto" else (dtype,):
        shipped = {"format": PROJECT_FORMAT, "model": _weights(state, parameters, DTYPES[candidate]), "config": config}
        exported = plain_model(shipped, body_model_dir=body_model_dir, body_model=reference.body_model)
        tried[candidate] = compare_outputs(reference, exported, probe)["verts"] * 1000.0
        if tried[candidate] <= tolerance_mm:
            break
    verts_mm = tried[candidate]
    if not verts_mm <= tolerance_mm:
        raise ExportError(
            f"{candidate} weights move the vertices by up to {verts_mm:.3f} mm on a probe clip (tolerance "
            f"{tolerance_mm} mm); nothing was written. Export with --dtype float32 (or --dtype auto)"
        )
    provenance["weights_dtype"] = candidate
    provenance["vertex_difference_mm"] = {k: float(v) for k, v in tried.items()}
    provenance["max_vertex_difference_mm"] = float(verts_mm)
    shipped["provenance"] = provenance
    atomic_torch_save(shipped, out)
    return provenance
