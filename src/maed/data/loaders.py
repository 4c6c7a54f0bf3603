"""Training datasets and evaluation loaders (ORIGINAL.md §4, "Loaders").

Training reads three independent sets, each a ``ConcatDataset`` (datasets mixed in proportion to their
sizes, as the original): 2D-keypoint videos, 3D videos and images. They are built here
(:func:`build_train_datasets`) and read by ``maed.train.streams.BatchStream``, which shuffles and shards
them itself (every batch a function of the seed and its position, so that a resumed run reads exactly
what an uninterrupted one would). An empty dataset list or a zero batch size gives ``None``.

The evaluation loader reads whole ``sample_pool``-frame windows (128, no overlap, reflect padding), in
order; a distributed evaluation splits the windows between ranks without padding or duplicates (the
original's DistributedSampler duplicated windows, ORIGINAL.md §9).

Databases are ``<db_dir>/<name>_<split>_db.pt``; image roots come from ``maed.paths.resolve_paths``. A
database's crop cache (``<db_dir>/crop_cache/<name>_<split>_db``) is used when present. Defaults are the
config schema's (``TrainDataSettings()`` equals ``TrainDataSettings.from_config(Config())``).
"""

from __future__ import annotations

import os
import shlex
import signal
from dataclasses import dataclass, field
from pathlib import Path

from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler

from maed.body.layout import PoseLayout, pose_layout, pose_layout_from_config
from maed.config import Config, DatasetConfig, EvalConfig, TrainConfig
from maed.data.crop_cache import default_crop_cache_dir
from maed.data.database import database_filename
from maed.data.datasets import ImageDataset, VideoDataset
from maed.data.registry import dataset_info
from maed.data.transforms import ClipAugmentation
from maed.errors import DataError
from maed.paths import resolve_paths


def database_path(db_dir: str | os.PathLike, name: str, split: str) -> Path:
    """``<db_dir>/<name>_<split>_db.pt`` (the authors' file names)."""
    return Path(db_dir) / database_filename(name, split)


def check_database_file(db_dir: str | os.PathLike, name: str, split: str) -> Path:
    """The database path of a dataset split; an unknown name or a missing file raises one clear error, which
    says how to make it: the generator's command for a dataset the project makes (``maed synth``), otherwise a
    ``maed prepare`` command, only for a split the dataset's reader can write (the registry's)."""
    info = dataset_info(name)
    path = database_path(db_dir, name, split)
    if path.is_file():
        return path
    missing = f"database not found: {path} (dataset {name}, split {split})"
    if info.generator is not None:
        raise DataError(
            f"{missing}. Make it with `{info.generator} --out {shlex.quote(str(db_dir))}` (it prints the commands "
            f"that read it); that folder is then both --db-dir and --data-root of `maed eval`, and PATHS.DB_DIR "
            f"and PATHS.DATASET_ROOTS.{name} of a config"
        )
    if split not in info.splits:
        raise DataError(
            f"{missing}. {name} has no split {split!r}: `maed prepare` writes its splits "
            f"{', '.join(info.splits)}; choose one of those, or place a database of that split there"
        )
    if info.reader is None:
        raise DataError(f"{missing}; place the database file there (PATHS.DB_DIR / $MAED_DATA_DIR set the directory)")
    raise DataError(
        f"{missing}. Build it with `maed prepare {name} --raw RAW_DIR --out {shlex.quote(str(db_dir))} "
        f"--splits {split}` (RAW_DIR: the raw {name} files, docs/DATA.md), or place the authors' file there; "
        "PATHS.DB_DIR / $MAED_DATA_DIR set the directory."
    )


def _root(dataset_roots: dict, name: str) -> str | None:
    return dataset_roots.get(name) if dataset_roots else None


def _cache_dir(db_path: Path, use_crop_cache: bool) -> Path | None:
    return default_crop_cache_dir(db_path) if use_crop_cache else None


class ShardSampler(Sampler):
    """In-order, non-overlapping shard of ``range(n)`` for one rank (no padding, no duplicates)."""

    def __init__(self, dataset: Dataset, *, rank: int, world_size: int):
        self.indices = list(range(rank, len(dataset), world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which Slurm and containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def ignore_stop_signals(worker_id: int) -> None:
    """``worker_init_fn`` of our DataLoaders: workers ignore SIGTERM and SIGUSR1 (as PyTorch's ignore SIGINT).
    Slurm and ``kill -- -PGID`` signal every process of a job; a worker that died of it would make training
    fail mid-step instead of finishing the step and saving last.pt. Workers stop when their loader does."""
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)


def _eval_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    num_workers: int,
    distributed: bool,
    rank: int,
    world_size: int,
    pin_memory: bool,
) -> DataLoader:
    sampler = ShardSampler(dataset, rank=rank, world_size=world_size) if distributed else None
    # NUM_WORKERS is written for 8-GPU nodes; never start more workers than this process may use
    num_workers = min(num_workers, usable_cpus())
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        worker_init_fn=ignore_stop_signals if num_workers > 0 else None,
    )


# ------------------------------------------------------------------------------------------ training
@dataclass
class TrainDataSettings:
    """What the training streams read, translated once from ``TRAIN.*``, ``DATASET.*`` and ``NUM_WORKERS``.

    ``augmentation`` is the full (``video_3d``) pipeline; the 2D-video and image pipelines are derived
    from it (:meth:`ClipAugmentation.for_pipeline`). Batch sizes are per process. ``pose_layout`` is the
    body model's (``MODEL.BODY_MODEL`` / ``MODEL.BODY_RIG``): the width of ``theta`` and the pose flip.
    """

    datasets_2d: list[str] = field(default_factory=lambda: list(TrainConfig().DATASETS_2D))
    datasets_3d: list[str] = field(default_factory=lambda: list(TrainConfig().DATASETS_3D))
    datasets_img: list[str] = field(default_factory=lambda: list(TrainConfig().DATASETS_IMG))
    batch_size_2d: int = TrainConfig.BATCH_SIZE_2D
    batch_size_3d: int = TrainConfig.BATCH_SIZE_3D
    batch_size_img: int = TrainConfig.BATCH_SIZE_IMG
    seqlen: int = DatasetConfig.SEQLEN
    sample_pool: int = DatasetConfig.SAMPLE_POOL
    overlap: float = DatasetConfig.OVERLAP
    random_start: bool = DatasetConfig.RANDOM_START
    random_sample: bool = DatasetConfig.RANDOM_SAMPLE
    augmentation: ClipAugmentation = field(default_factory=ClipAugmentation)
    num_workers: int = Config.NUM_WORKERS
    pose_layout: PoseLayout = field(default_factory=lambda: pose_layout("smpl"))

    @classmethod
    def from_config(cls, cfg: Config) -> TrainDataSettings:
        return cls(
            datasets_2d=list(cfg.TRAIN.DATASETS_2D),
            datasets_3d=list(cfg.TRAIN.DATASETS_3D),
            datasets_img=list(cfg.TRAIN.DATASETS_IMG),
            batch_size_2d=cfg.TRAIN.BATCH_SIZE_2D,
            batch_size_3d=cfg.TRAIN.BATCH_SIZE_3D,
            batch_size_img=cfg.TRAIN.BATCH_SIZE_IMG,
            seqlen=cfg.DATASET.SEQLEN,
            sample_pool=cfg.DATASET.SAMPLE_POOL,
            overlap=cfg.DATASET.OVERLAP,
            random_start=cfg.DATASET.RANDOM_START,
            random_sample=cfg.DATASET.RANDOM_SAMPLE,
            augmentation=ClipAugmentation.from_config(cfg.DATASET),
            num_workers=cfg.NUM_WORKERS,
            pose_layout=pose_layout_from_config(cfg),
        )

    def batch_size(self, stream: str) -> int:
        """Per-process batch size of stream ``2d``, ``3d`` or ``img``."""
        return {"2d": self.batch_size_2d, "3d": self.batch_size_3d, "img": self.batch_size_img}[stream]


@dataclass
class TrainDatasets:
    """The three training sets; each is None when its dataset list is empty or its batch size 0."""

    video_2d: ConcatDataset | None
    video_3d: ConcatDataset | None
    images: ConcatDataset | None

    def by_stream(self) -> dict[str, ConcatDataset | None]:
        """``{'2d': ..., '3d': ..., 'img': ...}``, the stream names of ``maed.train``."""
        return {"2d": self.video_2d, "3d": self.video_3d, "img": self.images}


def build_train_datasets(
    settings: TrainDataSettings,
    *,
    db_dir: str | os.PathLike,
    dataset_roots: dict[str, str],
    use_crop_cache: bool = True,
    split: str = "train",
) -> TrainDatasets:
    """The 2D-video, 3D-video and image training sets (ORIGINAL.md §4).

    The registry's per-dataset rules apply (``maed.data.registry``: 3DPW in the 3D set uses stride 8 as the
    original; mpii3d as images keeps every 5th row). Every database is checked before any dataset is
    built, so a missing file fails fast.
    """
    s = settings
    for name in [*s.datasets_2d, *s.datasets_3d, *s.datasets_img]:
        check_database_file(db_dir, name, split)

    def video_set(names: list[str], kind: str) -> ConcatDataset:
        transforms = s.augmentation.for_pipeline(kind)
        parts = []
        for name in names:
            path = database_path(db_dir, name, split)
            parts.append(
                VideoDataset(
                    path,
                    dataset_root=_root(dataset_roots, name),
                    seqlen=s.seqlen,
                    sample_pool=s.sample_pool,
                    overlap=(dataset_info(name).stride_3d or s.overlap) if kind == "video_3d" else s.overlap,
                    random_start=s.random_start,
                    random_sample=s.random_sample,
                    transforms=transforms,
                    is_train=True,
                    crop_cache_dir=_cache_dir(path, use_crop_cache),
                    name=f"{name}_{split}",
                    pose_layout=s.pose_layout,
                )
            )
        return ConcatDataset(parts)

    def image_set(names: list[str]) -> ConcatDataset:
        transforms = s.augmentation.for_pipeline("image")
        parts = []
        for name in names:
            path = database_path(db_dir, name, split)
            parts.append(
                ImageDataset(
                    path,
                    dataset_root=_root(dataset_roots, name),
                    transforms=transforms,
                    is_train=True,
                    crop_cache_dir=_cache_dir(path, use_crop_cache),
                    frame_step=dataset_info(name).image_frame_step,
                    name=f"{name}_{split}",
                    pose_layout=s.pose_layout,
                )
            )
        return ConcatDataset(parts)

    def wanted(names: list[str], batch_size: int) -> bool:
        return bool(names) and batch_size > 0

    return TrainDatasets(
        video_2d=video_set(s.datasets_2d, "video_2d") if wanted(s.datasets_2d, s.batch_size_2d) else None,
        video_3d=video_set(s.datasets_3d, "video_3d") if wanted(s.datasets_3d, s.batch_size_3d) else None,
        images=image_set(s.datasets_img) if wanted(s.datasets_img, s.batch_size_img) else None,
    )


# ------------------------------------------------------------------------------------------ evaluation
def build_eval_dataset(
    dataset: str,
    split: str,
    *,
    db_dir: str | os.PathLike,
    dataset_root: str | os.PathLike | None,
    sample_pool: int = EvalConfig.SAMPLE_POOL,
    valid_mode: str = "original",
    width: int = DatasetConfig.WIDTH,
    height: int = DatasetConfig.HEIGHT,
    use_crop_cache: bool = True,
    pose_layout: PoseLayout | None = None,
) -> VideoDataset:
    """Whole non-overlapping ``sample_pool``-frame windows with the evaluation crop (ORIGINAL.md §7);
    ``pose_layout``: the body model's (default SMPL)."""
    path = check_database_file(db_dir, dataset, split)
    return VideoDataset(
        path,
        dataset_root=dataset_root,
        seqlen=sample_pool,
        sample_pool=sample_pool,
        overlap=0.0,
        random_start=False,
        random_sample=False,
        transforms=ClipAugmentation.identity(width=width, height=height),
        is_train=False,
        crop_cache_dir=_cache_dir(path, use_crop_cache),
        valid_mode=valid_mode,
        name=f"{dataset}_{split}",
        pose_layout=pose_layout,
    )


def build_eval_loader(
    dataset: str,
    split: str,
    *,
    db_dir: str | os.PathLike,
    dataset_root: str | os.PathLike | None,
    sample_pool: int = EvalConfig.SAMPLE_POOL,
    batch_size: int = EvalConfig.BATCH_SIZE,
    num_workers: int = Config.NUM_WORKERS,
    valid_mode: str = "original",
    distributed: bool = False,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
    width: int = DatasetConfig.WIDTH,
    height: int = DatasetConfig.HEIGHT,
    use_crop_cache: bool = True,
    pose_layout: PoseLayout | None = None,
) -> DataLoader:
    """In-order loader of whole windows for evaluation (``valid_mode``: ``original`` or ``strict``, see
    :func:`maed.data.datasets.valid_mask`); a distributed one gives each rank its own windows."""
    ds = build_eval_dataset(
        dataset,
        split,
        db_dir=db_dir,
        dataset_root=dataset_root,
        sample_pool=sample_pool,
        valid_mode=valid_mode,
        width=width,
        height=height,
        use_crop_cache=use_crop_cache,
        pose_layout=pose_layout,
    )
    return _eval_loader(
        ds,
        batch_size=batch_size,
        num_workers=num_workers,
        distributed=distributed,
        rank=rank,
        world_size=world_size,
        pin_memory=pin_memory,
    )


def eval_loader_from_config(
    cfg: Config,
    *,
    dataset: str | None = None,
    split: str = "val",
    rank: int = 0,
    world_size: int = 1,
    distributed: bool | None = None,
    pin_memory: bool = False,
) -> DataLoader:
    """Translate a ``Config`` into :func:`build_eval_loader` arguments (``EVAL.*``, ``PATHS.*``; the dataset
    defaults to ``TRAIN.DATASET_EVAL``, the split to ``val`` as the original's validation)."""
    paths = resolve_paths(cfg.PATHS)
    dataset = dataset or cfg.TRAIN.DATASET_EVAL
    distributed = world_size > 1 if distributed is None else distributed
    return build_eval_loader(
        dataset,
        split,
        db_dir=paths["db_dir"],
        dataset_root=paths["dataset_roots"].get(dataset),
        sample_pool=cfg.EVAL.SAMPLE_POOL,
        batch_size=cfg.EVAL.BATCH_SIZE,
        num_workers=cfg.NUM_WORKERS,
        # 'both' is computed by the evaluator from the original mask (it derives the strict frames itself)
        valid_mode="strict" if cfg.EVAL.PROTOCOL == "strict" else "original",
        distributed=distributed,
        rank=rank,
        world_size=world_size,
        pin_memory=pin_memory,
        width=cfg.DATASET.WIDTH,
        height=cfg.DATASET.HEIGHT,
        pose_layout=eval_pose_layout(cfg, dataset),
    )


def eval_pose_layout(cfg: Config, dataset: str) -> PoseLayout | None:
    """The pose layout an evaluation set's ground truth is read in: the run's body model's for a dataset
    rendered from it (``maed synth``), else None (SMPL's, as every real dataset stores)."""
    return pose_layout_from_config(cfg) if dataset_info(dataset).own_body_ground_truth else None
