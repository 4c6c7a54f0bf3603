"""One typed configuration for the whole project.

The schema keeps the original MAED key names (``MODEL.ENCODER.SPA_TEMP_MODE``, ``TRAIN.BATCH_SIZE_IMG``,
...) so that the authors' ``config_stage1.yaml`` / ``config_stage2.yaml`` load unchanged, and adds the
project's own keys next to them. Every section is a dataclass; YAML files and dotted command-line
overrides (``TRAIN.BATCH_SIZE_IMG=32``) are merged into it with type checks, and an unknown key is an
error that names the key and the file it came from.

The values a key may take are declared here too, next to its default: ranges and choices with the field
(``LR: float = setting(1e-4, low=0.0)``), rules across fields in :data:`RULES`. :func:`load_config` checks
them once the file and the overrides are merged, so a bad value fails before anything runs or is written;
the ``from_config`` functions trust the config they are given. Checks that need facts of the run (files,
devices, the data) stay where those facts are known.

Modules never read this object: ``from_config`` functions (``maed.models.build_model`` and friends)
translate it into explicit keyword arguments once.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from maed.body import BODY_MODELS
from maed.body.anny_joints import ANNY_RIGS
from maed.data.registry import DATASETS, EVAL_DATASETS
from maed.errors import ConfigError  # re-exported
from maed.utils.io import atomic_write_text

PRESET_DIR = Path(__file__).parent / "configs"

# Choices of the keys whose implementations are behind torch (a test checks that each equals its module's)
ENCODERS = ("ste", "cnn", "keypoints")  # maed.models.ENCODERS
DECODERS = ("ktd", "iterative")  # maed.models.DECODERS
ATTENTION_MODES = ("vanilla", "series", "parallel", "coupling", "temporal")  # maed.models.attention
POOLS = ("cls", "mean", "grid")  # maed.models.ste.POOLS
AMP_MODES = ("none", "bf16")
OPTIMIZERS = ("adam", "sgd")
PROTOCOL_CHOICES = ("original", "strict", "both")

#: the crop is the box x 1.3 (``maed.data.bbox.BASE_SCALE``): jitters of the scale stay below it
_CROP_SCALE = 1.3


@dataclass(frozen=True)
class Check:
    """What one config value may be, declared with its field (``setting(..., low=0)``) and checked when a
    config is built (:func:`load_config`), before anything runs. For a list, each item is checked.

    low / high: bounds (``low_open`` / ``high_open`` exclude them); a float must also be finite.
    choices: the allowed strings (``ignore_case``: ``Adam`` counts as ``adam``, as the code reads it).
    why: said after the expected range or choices.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None
    ignore_case: bool = False
    why: str = ""

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` (the expectation, as a phrase), or None."""
        if self.choices is not None:
            key = value.lower() if self.ignore_case and isinstance(value, str) else value
            if key in self.choices:
                return None
            return self._say(f"one of {', '.join(map(repr, self.choices))}")
        if isinstance(value, float) and not math.isfinite(value):
            return self._say(f"a finite number{self._bounds()}")
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if too_low or too_high:
            kind = "an integer" if isinstance(value, int) else "a number"
            return self._say(f"{kind}{self._bounds()}")
        return None

    def _bounds(self) -> str:
        if self.low is not None and self.high is not None:
            return f" in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f" {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f" {'<' if self.high_open else '<='} {self.high:g}"
        return ""

    def _say(self, expected: str) -> str:
        return f"expected {expected}" + (f" ({self.why})" if self.why else "")


def setting(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, **check: Any) -> Any:
    """A schema field whose values are checked (:class:`Check`'s arguments), with its default (or a
    ``factory`` for lists and dicts)."""
    return field(default=default, default_factory=factory, metadata={"check": Check(**check)})


_PROBABILITY = dict(low=0.0, high=1.0)


@dataclass
class CudnnConfig:
    BENCHMARK: bool = True
    DETERMINISTIC: bool = False
    ENABLED: bool = True


@dataclass
class OptimConfig:
    OPTIM: str = setting("Adam", choices=OPTIMIZERS, ignore_case=True)
    LR: float = setting(1e-4, low=0.0)
    WD: float = setting(1e-4, low=0.0)
    MOMENTUM: float = setting(0.9, low=0.0, high=1.0, high_open=True)
    # Adam's epsilon (torch's 1e-8, as the original). Larger values shrink the steps of parameters whose
    # gradients are far smaller than it, which Adam would otherwise move by the full learning rate
    EPS: float = setting(1e-8, low=0.0, low_open=True, why="Adam divides by the gradient's scale + EPS")
    WARMUP_EPOCH: int = setting(2, low=0)
    WARMUP_FACTOR: float = setting(0.1, low=0.0, low_open=True)
    MILESTONES: list[int] = setting(factory=lambda: [10, 15], low=0)


@dataclass
class TrainConfig:
    DATASETS_2D: list[str] = setting(factory=lambda: ["insta"], choices=tuple(DATASETS))
    DATASETS_3D: list[str] = setting(factory=lambda: ["mpii3d"], choices=tuple(DATASETS))
    DATASETS_IMG: list[str] = setting(factory=lambda: ["coco2014-all"], choices=tuple(DATASETS))
    # the original's default, 'ThreeDPW', was not a dataset name; '' trains without validation
    DATASET_EVAL: str = setting("3dpw", choices=(*EVAL_DATASETS, ""))
    BATCH_SIZE_3D: int = setting(4, low=0, why="0 disables that stream")
    BATCH_SIZE_2D: int = setting(4, low=0, why="0 disables that stream")
    BATCH_SIZE_IMG: int = setting(8, low=0, why="0 disables that stream")
    IMG_USE_FREQ: int = setting(1, low=1, why="an image batch every n-th step")
    START_EPOCH: int = setting(0, low=0)
    END_EPOCH: int = setting(5, low=0)
    RESUME: str = ""
    NUM_ITERS_PER_EPOCH: int = -1
    OPTIM: OptimConfig = field(default_factory=OptimConfig)
    # project additions
    PRETRAINED: str = ""  # stage-1 checkpoint whose encoder initialises this run
    # 'none' | 'bf16' (autocast on CUDA, and on CPUs with AMX or AVX512-BF16)
    AMP: str = setting("none", choices=AMP_MODES, ignore_case=True)
    GRAD_CLIP: float = setting(0.0, low=0.0, why="max global grad norm; 0 disables")
    LOG_FREQ: int = setting(20, low=0)  # steps between JSONL log lines
    CKPT_FREQ: int = setting(0, low=0)  # steps between periodic checkpoints; 0 = only at epoch ends


@dataclass
class DatasetConfig:
    SEQLEN: int = setting(20, low=1)
    # a fraction of the window in [0, 1), or an integer window stride >= 1 (the original's rule)
    OVERLAP: float = setting(0.5, low=0.0)
    SAMPLE_POOL: int = setting(64, low=1)
    SIZE_JITTER: float = setting(0.2, low=0.0, high=_CROP_SCALE, high_open=True, why="the crop is the box x 1.3")
    ROT_JITTER: float = setting(30.0, low=0.0, high=180.0, why="degrees")
    RANDOM_SAMPLE: bool = True
    RANDOM_START: bool = False
    RANDOM_FLIP: float = setting(0.5, **_PROBABILITY, why="a probability")
    WIDTH: int = setting(224, low=1)
    HEIGHT: int = setting(224, low=1)
    RANDOM_CROP_P: float = setting(0.0, **_PROBABILITY, why="a probability")
    RANDOM_CROP_SIZE: float = setting(0.5, low=0.0, high=_CROP_SCALE, high_open=True, why="the crop is the box x 1.3")
    COLOR_JITTER: float = setting(0.3, low=0.0)
    ERASE_PROB: float = setting(0.3, **_PROBABILITY, why="a probability")
    ERASE_PART: float = setting(0.7, **_PROBABILITY, why="a fraction of the crop")
    ERASE_FILL: bool = False
    ERASE_KP: bool = False
    ERASE_MARGIN: float = setting(0.2, **_PROBABILITY, why="a fraction of the crop")


@dataclass
class LossConfig:
    KP_2D_W: float = setting(60.0, low=0.0, why="0 disables the term")
    KP_3D_W: float = setting(30.0, low=0.0, why="0 disables the term")
    SHAPE_W: float = setting(0.001, low=0.0, why="0 disables the term")
    POSE_W: float = setting(1.0, low=0.0, why="0 disables the term")
    SMPL_NORM: float = setting(1.0, low=0.0, why="0 disables the term")
    ACCL_W: float = setting(0.0, low=0.0, why="0 disables the term")
    # project additions
    POSE_VIA_AXIS_ANGLE: bool = False  # the original's rotmat -> axis-angle -> rotmat round trip in the pose loss
    MASK_IMAGE_SMPL: bool = True  # image pose/shape losses only where SMPL labels exist (the original did not mask)
    # the 3D-joint loss in each body's own frame (the root's rotation undone, prediction and truth each by its
    # own): the articulation alone, so an unsure facing does not pull the limbs in (the keypoint model's)
    KP_3D_BODY_FRAME: bool = False
    # the 2D-joint loss of MODEL.ENCODER.JOINT_HEATMAP's head (needs that head)
    JOINT_HEATMAP_W: float = setting(0.0, low=0.0, why="0 disables the term")


@dataclass
class DecoderConfig:
    BACKBONE: str = setting("ktd", choices=DECODERS, ignore_case=True)
    HIDDEN_DIM: int = setting(1024, low=1)
    # dropout after each trunk layer in training (the original's 0.5)
    DROPOUT: float = setting(0.5, low=0.0, high=1.0, high_open=True, why="a probability")
    # ktd, new runs: start at the 3D training sets' mean pose and shape (as HMR/SPIN's regressor starts from
    # its mean parameters) instead of outputs near 0 (the original); weights loaded later replace it
    INIT_MEAN_POSE: bool = False


@dataclass
class EncoderConfig:
    # 'ste' | 'cnn' (images) | 'keypoints' (body landmarks, models/keypoints.py)
    BACKBONE: str = setting("ste", choices=ENCODERS, ignore_case=True)
    NUM_BLOCKS: int = setting(6, low=0)
    NUM_HEADS: int = setting(12, low=1)
    SPA_TEMP_MODE: str = setting("vanilla", choices=ATTENTION_MODES, ignore_case=True)
    # project additions
    MAX_SEQLEN: int = setting(16, low=1)  # length of the learned temporal embedding (the original's 16)
    INTERP_TEMP_EMBED: bool = False  # allow T > MAX_SEQLEN by interpolating the temporal embedding
    INIT_WEIGHTS: str = ""  # local timm R50+ViT-B/16 (ImageNet-21k) file for the 'ste' encoder
    # size of the 'ste' encoder (defaults: the original R50 + ViT-B); the input side is DATASET.WIDTH/HEIGHT
    EMBED_DIM: int = setting(768, low=1)  # ViT width and feature width
    MLP_RATIO: float = setting(4.0, low=0.0, low_open=True)  # MLP hidden width / EMBED_DIM
    # ResNetV2 blocks per stage (three stages)
    BACKBONE_LAYERS: list[int] = setting(factory=lambda: [3, 4, 9], low=1)
    BACKBONE_WIDTH: int = 64  # ResNetV2 stem channels; stages have 4x, 8x, 16x (a multiple of 32)
    GRAD_CHECKPOINT: bool = False  # activation checkpointing of the 'ste' encoder in training (less memory)
    # the 'ste' frame feature: 'cls' (class token, the original), 'mean' or 'grid' (patch tokens)
    POOL: str = setting("cls", choices=POOLS, ignore_case=True)
    JOINT_HEATMAP: bool = False  # 'ste': a training-only 2D-joint heatmap head on the stride-8 backbone features
    # the 'keypoints' encoder (its size: EMBED_DIM, NUM_BLOCKS, NUM_HEADS, MLP_RATIO above)
    NUM_KEYPOINTS: int = setting(33, low=1)  # landmark tokens per frame (33: BlazePose's landmarks)
    KP_WORLD: bool = False  # each landmark also carries its metric world position (3 more channels, metres)


@dataclass
class ModelConfig:
    DECODER: DecoderConfig = field(default_factory=DecoderConfig)
    ENCODER: EncoderConfig = field(default_factory=EncoderConfig)
    BODY_MODEL: str = setting("smpl", choices=BODY_MODELS, ignore_case=True)
    # False: training builds the body's joints only (Anny's joints_only, several times faster; the losses read
    # joints), the mesh only outside training
    TRAIN_VERTICES: bool = True
    BODY_RIG: str = ""  # '' = the body model's default rig; anny: 'anny' (104 bones) | 'cmu_mb' (31 bones)


@dataclass
class EvalConfig:
    SEQLEN: int = setting(16, low=1)
    SAMPLE_POOL: int = setting(128, low=1)
    BATCH_SIZE: int = setting(32, low=1, why="windows per batch")
    INTERPOLATION: int = setting(1, low=1, why="predict every n-th frame")
    PROTOCOL: str = setting("original", choices=PROTOCOL_CHOICES)


@dataclass
class PathsConfig:
    """Where the user's data lives. Empty values derive from ``maed.paths.data_dir()``."""

    DATA_DIR: str = ""  # root of everything below; default $MAED_DATA_DIR or ./data
    DB_DIR: str = ""  # *_db.pt files; default <DATA_DIR>/database
    BODY_MODEL_DIR: str = ""  # SMPL files; default <DATA_DIR>/smpl_data
    DATASET_ROOTS: dict[str, str] = field(default_factory=dict)  # dataset name -> image root


@dataclass
class KeypointDataConfig:
    """Synthetic keypoint clips (``maed.synth.keypoint_data``): the training data of a model whose encoder is
    ``keypoints``. A bank of posed Anny people is built once (cached in PATHS.DB_DIR), then every sample is
    a new camera, box and detector noise over it."""

    BANK_SIZE: int = setting(2000, low=1)  # people (random shape and motion) in the training bank
    BANK_FRAMES: int = setting(64, low=1)  # frames of each person's motion (at least DATASET.SEQLEN)
    VAL_SIZE: int = setting(200, low=1)  # validation clips (held-out shapes, fixed views), PA-MPJPE selects best.pt
    LANDMARK_MAP: str = ""  # '' = the fitted BlazePose map that ships for the body model and rig
    NOISE: bool = True  # the detector's fitted noise, misses and swaps on the landmarks
    CLOSE_UP: float = setting(0.0, low=0.0, high=1.0)  # share of close-up views (upper body fills the frame)
    SAMPLES_PER_PASS: int = setting(20000, low=1)  # clips per pass of the training stream


@dataclass
class Config:
    OUTPUT_DIR: str = "results"
    EXP_NAME: str = "default"
    DEVICE: str = "cuda"  # without CUDA, the CPU (maed.utils.device)
    DEBUG: bool = True  # accepted so that the original YAML files load; not used
    LOGDIR: str = ""  # set by training to the run directory (a record; changing it changes nothing)
    NUM_WORKERS: int = setting(8, low=0)
    DEBUG_FREQ: int = 1000  # accepted so that the original YAML files load; not used
    SEED_VALUE: int = -1
    SAVE_FREQ: int = setting(5, low=1, why="epochs between validations")
    CUDNN: CudnnConfig = field(default_factory=CudnnConfig)
    TRAIN: TrainConfig = field(default_factory=TrainConfig)
    DATASET: DatasetConfig = field(default_factory=DatasetConfig)
    LOSS: LossConfig = field(default_factory=LossConfig)
    MODEL: ModelConfig = field(default_factory=ModelConfig)
    EVAL: EvalConfig = field(default_factory=EvalConfig)
    PATHS: PathsConfig = field(default_factory=PathsConfig)
    KEYPOINTS: KeypointDataConfig = field(default_factory=KeypointDataConfig)

    # ------------------------------------------------------------------ helpers
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def dump(self, path: str | os.PathLike) -> None:
        """Write the resolved config as YAML (atomically) so that a run can be reproduced."""
        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    def copy(self) -> Config:
        return copy.deepcopy(self)

    def validate(self, source: str = "config") -> Config:
        """Check every value against the schema (each field's :class:`Check`, then :data:`RULES` across
        fields); one ``ConfigError`` naming each bad key, or this config. :func:`load_config` calls it."""
        problems = [*_field_problems(self, prefix=""), *(p for rule in RULES if (p := rule(self)))]
        if problems:
            raise ConfigError(f"{source}: " + "; ".join(problems))
        return self

    def merge(self, data: dict[str, Any], source: str = "<dict>") -> Config:
        """Merge a nested dict (as read from YAML) into this config in place and return it."""
        _merge_into(self, data, prefix="", source=source)
        return self

    def set(self, dotted_key: str, value: Any, source: str = "command line") -> Config:
        """Set one dotted key (``TRAIN.BATCH_SIZE_IMG``) with type checking."""
        parts = dotted_key.split(".")
        nested: dict[str, Any] = {parts[-1]: value}
        for p in reversed(parts[:-1]):
            nested = {p: nested}
        return self.merge(nested, source=source)


def _field_problems(obj: Any, prefix: str) -> list[str]:
    problems = []
    for f in dataclasses.fields(obj):
        value, key = getattr(obj, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            problems += _field_problems(value, prefix=f"{key}.")
            continue
        check = f.metadata.get("check")
        if check is None:
            continue
        if not isinstance(value, list):
            problem = check.problem(value)
            problems += [f"{key}={value!r}: {problem}"] if problem else []
            continue
        bad = next(((item, p) for item in value if (p := check.problem(item))), None)
        if bad:
            problems.append(f"{key}={value!r}: item {bad[0]!r}: {bad[1]}")
    return problems


def _overlap_rule(cfg: Config) -> str | None:
    overlap = cfg.DATASET.OVERLAP
    if overlap < 1 or float(overlap).is_integer():
        return None
    return (
        f"DATASET.OVERLAP={overlap!r}: expected a fraction of the window in [0, 1) or an integer stride >= 1 "
        f"(this value would be read as stride {int(overlap)})"
    )


def _body_rig_rule(cfg: Config) -> str | None:
    body, rig = cfg.MODEL.BODY_MODEL.lower(), cfg.MODEL.BODY_RIG
    if body == "smpl" and rig not in ("", "smpl"):
        return f"MODEL.BODY_RIG={rig!r}: SMPL has one rig; leave it empty"
    if body == "anny" and rig not in ("", *ANNY_RIGS):
        return f"MODEL.BODY_RIG={rig!r}: Anny's rigs are {', '.join(ANNY_RIGS)} ('' is anny)"
    return None


def _clip_sampling_rule(cfg: Config) -> str | None:
    ds = cfg.DATASET
    if ds.RANDOM_START and ds.RANDOM_SAMPLE:
        return "DATASET.RANDOM_START and DATASET.RANDOM_SAMPLE cannot both be true"
    if ds.SEQLEN > ds.SAMPLE_POOL:
        return f"DATASET.SEQLEN={ds.SEQLEN} is longer than DATASET.SAMPLE_POOL={ds.SAMPLE_POOL}"
    return None


def frame_step_problem(sample_pool: int, seqlen: int, frame_step: int) -> str | None:
    """Why keeping every ``frame_step``-th frame of a ``sample_pool``-frame window cannot be cut into
    ``seqlen``-frame clips (the frames kept must be a whole number of clips), or None."""
    if frame_step < 1:
        return f"{frame_step}: expected an integer >= 1"
    kept = math.ceil(sample_pool / frame_step)
    if kept >= seqlen and kept % seqlen == 0:
        return None
    ok = [i for i in range(1, sample_pool + 1) if math.ceil(sample_pool / i) % seqlen == 0]
    return (
        f"{frame_step}: a {sample_pool}-frame window keeps {kept} frames, which is not a whole number of "
        f"{seqlen}-frame clips; valid values here: {', '.join(map(str, ok))}"
    )


def check_frame_step(sample_pool: int, seqlen: int, frame_step: int) -> int:
    """Frames left in a window after keeping every ``frame_step``-th one; a ConfigError unless they are a
    whole number of ``seqlen``-frame clips (the schema's rule for ``EVAL.INTERPOLATION``, for ``--frame-step``)."""
    problem = frame_step_problem(sample_pool, seqlen, frame_step)
    if problem:
        raise ConfigError(f"EVAL.INTERPOLATION / --frame-step {problem}")
    return math.ceil(sample_pool / frame_step)


def _eval_window_rule(cfg: Config) -> str | None:
    ev = cfg.EVAL
    if ev.SEQLEN < 1 or ev.SAMPLE_POOL < 1:
        return None  # the field checks say so
    problem = frame_step_problem(ev.SAMPLE_POOL, ev.SEQLEN, ev.INTERPOLATION)
    return f"EVAL.INTERPOLATION={problem}" if problem else None


def _ste_size_rule(cfg: Config) -> str | None:
    """The ``ste`` encoder's sizes (the ``cnn`` ResNet-50 has none)."""
    enc, ds = cfg.MODEL.ENCODER, cfg.DATASET
    if enc.BACKBONE.lower() != "ste":
        return (
            "MODEL.ENCODER.JOINT_HEATMAP: only the ste encoder has the joint heatmap head"
            if enc.JOINT_HEATMAP
            else None
        )
    problems = []
    if ds.WIDTH != ds.HEIGHT or ds.WIDTH < 16 or ds.WIDTH % 16:
        problems.append(
            f"DATASET.WIDTH/HEIGHT={ds.WIDTH}/{ds.HEIGHT}: the ste encoder takes square crops whose side is a "
            "multiple of 16 (the backbone's stride)"
        )
    if enc.NUM_HEADS >= 1 and enc.EMBED_DIM % enc.NUM_HEADS:
        problems.append(
            f"MODEL.ENCODER.EMBED_DIM={enc.EMBED_DIM}, NUM_HEADS={enc.NUM_HEADS}: the width must be a multiple of "
            "the number of heads"
        )
    if len(enc.BACKBONE_LAYERS) != 3:
        problems.append(f"MODEL.ENCODER.BACKBONE_LAYERS={list(enc.BACKBONE_LAYERS)}: expected three stage depths")
    if enc.BACKBONE_WIDTH < 32 or enc.BACKBONE_WIDTH % 32:
        problems.append(
            f"MODEL.ENCODER.BACKBONE_WIDTH={enc.BACKBONE_WIDTH}: expected a multiple of 32 (GroupNorm has 32 groups)"
        )
    return "; ".join(problems) or None


def _dataset_roots_rule(cfg: Config) -> str | None:
    problems = []
    for name, root in cfg.PATHS.DATASET_ROOTS.items():
        if name in DATASETS:
            if not root:
                problems.append(f"PATHS.DATASET_ROOTS.{name} is empty: expected the folder of its images")
            continue
        if ":" in name:
            head, _, tail = name.partition(":")
            problems.append(
                f"PATHS.DATASET_ROOTS has the key {name!r}: YAML reads '{{{name}}}' as one key, since a colon "
                f"separates a key from its value only when a space follows it; write '{{{head}: {tail}}}'"
            )
        else:
            problems.append(
                f"PATHS.DATASET_ROOTS.{name}: unknown dataset {name!r}; expected one of {', '.join(DATASETS)}"
            )
    return "; ".join(problems) or None


#: checks across fields, run by :meth:`Config.validate` after each field's own :class:`Check`
def _keypoint_bank_rule(cfg: Config) -> str | None:
    if cfg.MODEL.ENCODER.BACKBONE == "keypoints" and cfg.KEYPOINTS.BANK_FRAMES < cfg.DATASET.SEQLEN:
        return (
            f"KEYPOINTS.BANK_FRAMES={cfg.KEYPOINTS.BANK_FRAMES}: each person's motion must hold a training clip "
            f"(at least DATASET.SEQLEN={cfg.DATASET.SEQLEN} frames)"
        )
    return None


RULES = (
    _overlap_rule,
    _body_rig_rule,
    _clip_sampling_rule,
    _eval_window_rule,
    _ste_size_rule,
    _dataset_roots_rule,
    _keypoint_bank_rule,
)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
                return value.lower() in ("true", "yes", "1")
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise TypeError
        if tp is int:
            if isinstance(value, bool):
                raise TypeError
            if isinstance(value, float) and value.is_integer():
                return int(value)
            return int(value) if isinstance(value, (int, str)) else _raise()
        if tp is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value)  # YAML reads '1e-4' as a string; float() accepts it
        if tp is str:
            if value is None:
                return ""
            if isinstance(value, (dict, list)):
                raise TypeError
            return str(value)
        if origin is list:
            (item_tp,) = typing.get_args(tp)
            if value is None:
                return []
            if isinstance(value, str):
                value = yaml.safe_load(value) if value.strip().startswith("[") else [value]
            if not isinstance(value, (list, tuple)):
                raise TypeError
            return [_coerce(v, item_tp, key, source) for v in value]
        if origin is dict:
            if value is None:
                return {}
            if not isinstance(value, dict):
                raise TypeError
            _, val_tp = typing.get_args(tp)
            return {str(k): _coerce(v, val_tp, f"{key}.{k}", source) for k, v in value.items()}
    except (TypeError, ValueError):
        pass
    else:
        return value
    tname = getattr(tp, "__name__", str(tp))
    raise ConfigError(f"config key {key} in {source}: expected {tname}, got {value!r}")


def _raise() -> Any:
    raise TypeError


def _merge_into(obj: Any, data: dict[str, Any], prefix: str, source: str) -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"config section {prefix.rstrip('.') or '<root>'} in {source}: expected a mapping")
    types = _field_types(type(obj))
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in types:
            known = ", ".join(sorted(types))
            raise ConfigError(f"unknown config key {full} in {source}; keys allowed here: {known}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if value is None:
                continue
            _merge_into(current, value, prefix=f"{full}.", source=source)
        elif typing.get_origin(types[key]) is dict and isinstance(value, dict):
            merged = dict(current)
            merged.update(_coerce(value, types[key], full, source))
            setattr(obj, key, merged)
        else:
            setattr(obj, key, _coerce(value, types[key], full, source))


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def resolve_config_path(name_or_path: str | os.PathLike) -> Path:
    """A YAML path, or the name of a shipped preset (``maed``, ``hmr``, ``stage1``, ``stage2``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    preset = PRESET_DIR / f"{name_or_path}.yaml"
    if preset.is_file():
        return preset
    raise ConfigError(
        f"config {str(name_or_path)!r} is neither a file nor a preset; presets: {', '.join(preset_names())}"
    )


def load_config(config: str | os.PathLike | dict | Config | None = None, overrides: list[str] | None = None) -> Config:
    """Build a :class:`Config` from defaults, then a YAML file / preset / dict, then ``KEY=value`` overrides,
    and check its values (:meth:`Config.validate`).

    A file may name a base with the project key ``_BASE_: <preset or path relative to the file>``.
    """
    if isinstance(config, Config):
        cfg = config.copy()
    else:
        cfg = Config()
        if isinstance(config, dict):
            cfg.merge(config)
        elif config is not None:
            _merge_file(cfg, resolve_config_path(config), seen=())
    source = "config" if config is None or isinstance(config, (dict, Config)) else f"config {config}"
    if overrides:
        source += " with its overrides"
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. TRAIN.BATCH_SIZE_IMG=32")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        cfg.set(key.strip(), value, source=f"override {item!r}")
    return cfg.validate(source)


def format_override(key: str, value: Any) -> str:
    """The ``KEY=VALUE`` word that :func:`load_config` reads back as ``value`` (a string, number or flat
    mapping of strings): quoted for YAML only where needed (``PATHS.DB_DIR=data/synth``,
    ``PATHS.DATASET_ROOTS={synth: data/synth}``). Quoting it for a shell is the caller's (``shlex.join``)."""
    if isinstance(value, dict):
        items = ", ".join(f"{_yaml_scalar(str(k))}: {_yaml_scalar(str(v))}" for k, v in value.items())
        return f"{key}={{{items}}}"
    return f"{key}={_yaml_scalar(str(value)) if isinstance(value, (str, os.PathLike)) else value}"


def _yaml_scalar(text: str) -> str:
    """``text`` as a YAML flow scalar: as is where YAML reads it back unchanged, else double-quoted."""
    try:
        plain = yaml.safe_load(f"[{text}]") == [text] and "#" not in text
    except yaml.YAMLError:
        plain = False
    return text if plain and text else json.dumps(text)


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping: YAML keeps the last silently, so a
    second ``DATASET:`` block would drop every key of the first."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {key!r} appears twice in one mapping (first on line {seen[key] + 1}); merge the two",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def _merge_file(cfg: Config, path: Path, seen: tuple[Path, ...]) -> None:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"config {path}: _BASE_ chain loops back on itself")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config {path} is not a YAML text file (it holds binary data)") from None
    except OSError as e:
        raise ConfigError(f"config {path} cannot be read: {e.strerror or e}") from None
    try:
        # a safe loader: tags such as !!python/object are refused, never run; duplicate keys are refused too
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or " ".join(str(e).split())
        raise ConfigError(f"config {path} is not valid YAML: {problem}{where}") from None
    if data is None:
        raise ConfigError(f"config {path} is empty; expected a mapping of config keys (MODEL: ..., TRAIN: ...)")
    if not isinstance(data, dict):
        raise ConfigError(f"config {path}: expected a mapping of config keys at the top level")
    base = data.pop("_BASE_", None)
    if base:
        base_path = (path.parent / base) if (path.parent / base).is_file() else resolve_config_path(base)
        _merge_file(cfg, Path(base_path), seen + (path,))
    cfg.merge(data, source=str(path))
