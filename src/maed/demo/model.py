"""The model of a demo run: resolved before any work (:func:`resolve_model`), loaded only when a stage needs it
(:class:`DemoModel`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maed.body import body_model_from_config
from maed.config import load_config
from maed.demo.cache import file_digest, folder_fingerprint
from maed.demo.infer import KeypointPredictor, ModelPredictor
from maed.demo.options import DemoOptions
from maed.models import load_model
from maed.models.checkpoint import read_checkpoint
from maed.models.fast import resolve_precision
from maed.paths import default_checkpoint, resolve_paths
from maed.utils.device import resolve_device


@dataclass
class ModelSpec:
    """The model a run uses, resolved without loading its weights (those load only if inference runs)."""

    checkpoint: Path
    checkpoint_data: dict
    config: Any
    body_model_dir: str | None
    device: str
    sha256: str

    def signature(self) -> dict:
        cfg = self.config.to_dict()
        return {
            "checkpoint": str(self.checkpoint.resolve()),
            "checkpoint_sha256": self.sha256,
            "model": cfg["MODEL"],
            "crop": [cfg["DATASET"]["WIDTH"], cfg["DATASET"]["HEIGHT"]],
            "seqlen": cfg["EVAL"]["SEQLEN"],
            "sample_pool": cfg["EVAL"]["SAMPLE_POOL"],
            "body_model_dir": folder_fingerprint(self.body_model_dir),
        }

    def build_body_model(self):
        """The body model alone (cached predictions need only it to become meshes), on the CPU."""
        return body_model_from_config(self.config, model_dir=self.body_model_dir)


def resolve_model(options: DemoOptions) -> ModelSpec:
    """Checkpoint (``--checkpoint`` or the shipped default), its config, body-model directory and device."""
    checkpoint = Path(options.checkpoint).expanduser() if options.checkpoint else default_checkpoint()
    data = read_checkpoint(checkpoint)
    if options.config is not None:
        cfg = load_config(options.config)
    else:
        stored = data.get("config") if isinstance(data, dict) else None
        cfg = load_config(stored if isinstance(stored, dict) and stored else "stage2")
    body_dir = options.body_model_dir or resolve_paths(cfg.PATHS)["body_model_dir"]
    if cfg.MODEL.BODY_MODEL.lower() != "smpl":  # only SMPL reads files; Anny's come with its package
        body_dir = None
    device = str(resolve_device(options.device))  # None: CUDA when present, else the CPU
    return ModelSpec(
        checkpoint=checkpoint,
        checkpoint_data=data,
        config=cfg,
        body_model_dir=str(body_dir) if body_dir is not None else None,
        device=device,
        sha256=file_digest(checkpoint),
    )


def build_predictor(spec: ModelSpec, options: DemoOptions, signature: dict):
    """The network of ``spec`` loaded for inference, wrapped as a :class:`maed.demo.infer.ModelPredictor`."""
    cfg = spec.config
    model = load_model(
        spec.checkpoint_data,
        body_model_dir=spec.body_model_dir,
        config=cfg,
        device=spec.device,
        precision=options.precision,
    )
    kind = KeypointPredictor if cfg.MODEL.ENCODER.BACKBONE == "keypoints" else ModelPredictor
    return kind(
        model,
        crop_width=cfg.DATASET.WIDTH,
        crop_height=cfg.DATASET.HEIGHT,
        seqlen=cfg.EVAL.SEQLEN,
        sample_pool=cfg.EVAL.SAMPLE_POOL,
        frame_step=options.frame_step if options.frame_step is not None else cfg.EVAL.INTERPOLATION,
        batch_size=options.batch_size,
        device=spec.device,
        signature=signature,
    )


class DemoModel:
    """The run's model, loaded on first use and timed as ``load_model``: the network only if inference runs,
    the body model alone when cached predictions need only meshes, nothing when nobody was found.

    ``spec``: the checkpoint to load; or ``predictor``: a ready predictor (an object with ``body_model``,
    ``signature`` and ``predict(tracks, frames, clock=, on_predicted=, warn=)``, as
    :class:`maed.demo.infer.ModelPredictor`), which then replaces the checkpoint.
    """

    def __init__(self, options: DemoOptions, clock, *, spec: ModelSpec | None = None, predictor=None):
        if (spec is None) == (predictor is None):
            raise ValueError("DemoModel takes a spec or a predictor")
        self.options, self.clock, self.spec = options, clock, spec
        self._predictor = predictor
        self._body_model = None

    @property
    def device(self) -> str:
        return self.spec.device if self.spec is not None else "cpu"

    def signature(self) -> dict:
        """What identifies the network's output: the model, and the precision it runs at on this device
        (``auto`` resolved, so another machine's cache is redone)."""
        if self.spec is None:
            return {"model": dict(self._predictor.signature), "precision": self.options.precision}
        return {
            "model": self.spec.signature(),
            "precision": resolve_precision(self.options.precision, self.spec.device),
        }

    def predictor(self):
        """The predictor, loading the checkpoint the first time."""
        if self._predictor is None:
            with self.clock("load_model"):
                self._predictor = build_predictor(self.spec, self.options, self.spec.signature())
        return self._predictor

    def body_model(self):
        """The network's body model; without a loaded network, the body model alone (on the run's device)."""
        if self._body_model is None:
            if self._predictor is not None:
                self._body_model = self._predictor.body_model
            else:
                with self.clock("load_model"):
                    self._body_model = self.spec.build_body_model().to(self.device)
        return self._body_model

    def summary(self) -> dict:
        """``summary.json``'s ``model``: what was loaded, from where, and at what precision."""
        spec, body_model, predictor = self.spec, self._body_model, self._predictor
        if body_model is None:  # no person: the model was not needed
            base = {"body_model": spec.config.MODEL.BODY_MODEL if spec is not None else None}
        else:  # the sizes of what tracks.npz holds
            base = {
                "body_model": getattr(body_model, "name", type(body_model).__name__),
                "rig": getattr(body_model, "rig", None),
                "joints": int(body_model.num_output_joints),  # joints3d, joints2d
                "kinematic_joints": int(body_model.num_joints),  # pose, rotmat
                "vertices": int(body_model.num_vertices),
            }
        setup = getattr(getattr(predictor, "model", None), "inference_setup", None)
        if setup is not None:  # maed.models.fast: what --precision resolved to, and the instructions it uses
            base["precision"] = setup.describe()
        if spec is None:
            return base | {"checkpoint": None, "predictor": type(predictor).__name__}
        return base | {
            "checkpoint": str(spec.checkpoint),
            "sha256": spec.sha256,
            "device": spec.device,
            "body_model_dir": spec.body_model_dir,
        }
