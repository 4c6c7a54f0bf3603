"""One typed configuration for the whole project.

The schema keeps the original MAED key names (``MODEL.ENCODER.SPA_TEMP_MODE``, ``TRAIN.BATCH_SIZE_IMG``,
...) so that the authors' ``config_stage1.yaml`` / ``config_stage2.yaml`` load unchanged, and adds the
project's own keys next to them. Every section is a dataclass; YAML files and dotted command-line
overrides (``TRAIN.BATCH_SIZE_IMG=32``) are merged into it with type checks, and an unknown key is an
error that names the key and the file it came from.

Modules never read this object: ``from_config`` functions (``maed.models.build_model`` and friends)
translate it into explicit keyword arguments once.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PRESET_DIR = Path(__file__).parent / "configs"


from maed.errors import ConfigError  # noqa: E402  (re-exported)


@dataclass
class CudnnConfig:
    BENCHMARK: bool = True
    DETERMINISTIC: bool = False
    ENABLED: bool = True


@dataclass
class OptimConfig:
    OPTIM: str = "Adam"
    LR: float = 1e-4
    WD: float = 1e-4
    MOMENTUM: float = 0.9
    # Adam's epsilon (torch's 1e-8, as the original). Larger values shrink the steps of parameters whose
    # gradients are far smaller than it, which Adam would otherwise move by the full learning rate
    EPS: float = 1e-8
    WARMUP_EPOCH: int = 2
    WARMUP_FACTOR: float = 0.1
    MILESTONES: list[int] = field(default_factory=lambda: [10, 15])


@dataclass
class TrainConfig:
    DATASETS_2D: list[str] = field(default_factory=lambda: ["insta"])
    DATASETS_3D: list[str] = field(default_factory=lambda: ["mpii3d"])
    DATASETS_IMG: list[str] = field(default_factory=lambda: ["coco2014-all"])
    DATASET_EVAL: str = "3dpw"  # the original's default, 'ThreeDPW', was not a dataset name
    BATCH_SIZE_3D: int = 4
    BATCH_SIZE_2D: int = 4
    BATCH_SIZE_IMG: int = 8
    IMG_USE_FREQ: int = 1
    START_EPOCH: int = 0
    END_EPOCH: int = 5
    RESUME: str = ""
    NUM_ITERS_PER_EPOCH: int = -1
    OPTIM: OptimConfig = field(default_factory=OptimConfig)
    # project additions
    PRETRAINED: str = ""  # stage-1 checkpoint whose encoder initialises this run
    AMP: str = "none"  # 'none' | 'bf16' (autocast on CUDA, and on CPUs with AMX or AVX512-BF16)
    GRAD_CLIP: float = 0.0  # max global grad norm; 0 disables
    LOG_FREQ: int = 20  # steps between JSONL log lines
    CKPT_FREQ: int = 0  # steps between periodic checkpoints; 0 = only at epoch ends


@dataclass
class DatasetConfig:
    SEQLEN: int = 20
    OVERLAP: float = 0.5
    SAMPLE_POOL: int = 64
    SIZE_JITTER: float = 0.2
    ROT_JITTER: float = 30.0
    RANDOM_SAMPLE: bool = True
    RANDOM_START: bool = False
    RANDOM_FLIP: float = 0.5
    WIDTH: int = 224
    HEIGHT: int = 224
    RANDOM_CROP_P: float = 0.0
    RANDOM_CROP_SIZE: float = 0.5
    COLOR_JITTER: float = 0.3
    ERASE_PROB: float = 0.3
    ERASE_PART: float = 0.7
    ERASE_FILL: bool = False
    ERASE_KP: bool = False
    ERASE_MARGIN: float = 0.2


@dataclass
class LossConfig:
    KP_2D_W: float = 60.0
    KP_3D_W: float = 30.0
    SHAPE_W: float = 0.001
    POSE_W: float = 1.0
    SMPL_NORM: float = 1.0
    ACCL_W: float = 0.0
    # project additions
    POSE_VIA_AXIS_ANGLE: bool = False  # the original's rotmat -> axis-angle -> rotmat round trip in the pose loss
    MASK_IMAGE_SMPL: bool = True  # image pose/shape losses only where SMPL labels exist (the original did not mask)
    JOINT_HEATMAP_W: float = 0.0  # the 2D-joint loss of MODEL.ENCODER.JOINT_HEATMAP's head (needs that head)


@dataclass
class DecoderConfig:
    BACKBONE: str = "ktd"  # 'ktd' | 'iterative'
    HIDDEN_DIM: int = 1024
    DROPOUT: float = 0.5  # dropout after each trunk layer in training (the original's 0.5)
    # ktd, new runs: start at the 3D training sets' mean pose and shape (as HMR/SPIN's regressor starts from
    # its mean parameters) instead of outputs near 0 (the original); weights loaded later replace it
    INIT_MEAN_POSE: bool = False


@dataclass
class EncoderConfig:
    BACKBONE: str = "ste"  # 'ste' | 'cnn' (images) | 'keypoints' (body landmarks, models/keypoints.py)
    NUM_BLOCKS: int = 6
    NUM_HEADS: int = 12
    SPA_TEMP_MODE: str = "vanilla"  # 'vanilla' | 'series' | 'parallel' | 'coupling' | 'temporal'
    # project additions
    MAX_SEQLEN: int = 16  # length of the learned temporal embedding (the original's 16)
    INTERP_TEMP_EMBED: bool = False  # allow T > MAX_SEQLEN by interpolating the temporal embedding
    INIT_WEIGHTS: str = ""  # local timm R50+ViT-B/16 (ImageNet-21k) file for the 'ste' encoder
    # size of the 'ste' encoder (defaults: the original R50 + ViT-B); the input side is DATASET.WIDTH/HEIGHT
    EMBED_DIM: int = 768  # ViT width and feature width
    MLP_RATIO: float = 4.0  # MLP hidden width / EMBED_DIM
    BACKBONE_LAYERS: list[int] = field(default_factory=lambda: [3, 4, 9])  # ResNetV2 blocks per stage
    BACKBONE_WIDTH: int = 64  # ResNetV2 stem channels; stages have 4x, 8x, 16x (a multiple of 32)
    GRAD_CHECKPOINT: bool = False  # activation checkpointing of the 'ste' encoder in training (less memory)
    POOL: str = "cls"  # the 'ste' frame feature: 'cls' (class token, the original), 'mean' or 'grid' (patch tokens)
    JOINT_HEATMAP: bool = False  # 'ste': a training-only 2D-joint heatmap head on the stride-8 backbone features
    # the 'keypoints' encoder (its size: EMBED_DIM, NUM_BLOCKS, NUM_HEADS, MLP_RATIO above)
    NUM_KEYPOINTS: int = 33  # landmark tokens per frame (33: BlazePose's landmarks)
    KP_WORLD: bool = False  # each landmark also carries its metric world position (3 more channels, metres)


@dataclass
class ModelConfig:
    DECODER: DecoderConfig = field(default_factory=DecoderConfig)
    ENCODER: EncoderConfig = field(default_factory=EncoderConfig)
    BODY_MODEL: str = "smpl"  # 'smpl' | 'anny'
    BODY_RIG: str = ""  # '' = the body model's default rig; anny: 'anny' (104 bones) | 'cmu_mb' (31 bones)


@dataclass
class EvalConfig:
    SEQLEN: int = 16
    SAMPLE_POOL: int = 128
    BATCH_SIZE: int = 32
    INTERPOLATION: int = 1
    PROTOCOL: str = "original"  # 'original' | 'strict' | 'both'


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

    BANK_SIZE: int = 2000  # people (random shape and motion) in the training bank
    BANK_FRAMES: int = 64  # frames of each person's motion
    VAL_SIZE: int = 200  # validation clips (held-out shapes, fixed views), PA-MPJPE selects best.pt
    LANDMARK_MAP: str = ""  # '' = the fitted BlazePose map that ships for the body model and rig
    NOISE: bool = True  # the detector's fitted noise, misses and swaps on the landmarks
    SAMPLES_PER_PASS: int = 20000  # clips per pass of the training stream


@dataclass
class Config:
    OUTPUT_DIR: str = "results"
    EXP_NAME: str = "default"
    DEVICE: str = "cuda"  # without CUDA, the CPU (maed.utils.device)
    DEBUG: bool = True  # accepted so that the original YAML files load; not used
    LOGDIR: str = ""  # set by training to the run directory (a record; changing it changes nothing)
    NUM_WORKERS: int = 8
    DEBUG_FREQ: int = 1000  # accepted so that the original YAML files load; not used
    SEED_VALUE: int = -1
    SAVE_FREQ: int = 5
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
        from maed.utils.io import atomic_write_text

        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    def copy(self) -> Config:
        return copy.deepcopy(self)

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
    """Build a :class:`Config` from defaults, then a YAML file / preset / dict, then ``KEY=value`` overrides.

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
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. TRAIN.BATCH_SIZE_IMG=32")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        cfg.set(key.strip(), value, source=f"override {item!r}")
    return cfg


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
