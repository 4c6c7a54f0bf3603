"""Training and evaluation data loaders (ORIGINAL.md §4, "Loaders").

Three independent training loaders, each over a ``ConcatDataset`` (datasets mixed in proportion to
their sizes, as the original): 2D-keypoint videos, 3D videos and images. Distributed runs shard them with
``DistributedSampler(shuffle=True)`` (call ``loader.sampler.set_epoch(epoch)`` each epoch); single-process
runs shuffle. Batch sizes are per process. An empty dataset list or a zero batch size gives ``None``.

The evaluation loader reads whole ``sample_pool``-frame windows (128, no overlap, reflect padding), in
order; a distributed evaluation splits the windows between ranks without padding or duplicates (the
original's DistributedSampler duplicated windows, ORIGINAL.md §9).

Databases are ``<db_dir>/<name>_<split>_db.pt``; image roots come from ``maed.paths.resolve_paths``. A
database's crop cache (``<db_dir>/crop_cache/<name>_<split>_db``) is used when present.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler

from maed.data.crop_cache import default_crop_cache_dir
from maed.data.database import database_filename
from maed.data.datasets import ImageDataset, VideoDataset
from maed.data.registry import dataset_info
from maed.data.transforms import build_transforms, transform_kwargs_from_config
from maed.errors import ConfigError, DataError


def database_path(db_dir: str | os.PathLike, name: str, split: str) -> Path:
    """``<db_dir>/<name>_<split>_db.pt`` (the authors' file names)."""
    return Path(db_dir) / database_filename(name, split)


def check_database_file(db_dir: str | os.PathLike, name: str, split: str) -> Path:
    """The database path of a dataset split; an unknown name or a missing file raises one clear error."""
    dataset_info(name)
    path = database_path(db_dir, name, split)
    if not path.is_file():
        raise DataError(
            f"database not found: {path} (dataset {name}, split {split}). Build it with "
            f"`maed prepare {name} --raw <raw {name} directory> --out {Path(db_dir)}` (docs/DATA.md), "
            "or place the authors' file there; PATHS.DB_DIR / $MAED_DATA_DIR set the directory."
        )
    return path


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


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    num_workers: int,
    distributed: bool,
    rank: int,
    world_size: int,
    seed: int,
    pin_memory: bool,
    drop_last: bool = False,
) -> DataLoader:
    sampler = None
    if distributed:
        from torch.utils.data.distributed import DistributedSampler

        if shuffle:
            sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
        else:
            sampler = ShardSampler(dataset, rank=rank, world_size=world_size)
    # NUM_WORKERS is written for 8-GPU nodes; never start more workers than this process may use
    num_workers = min(num_workers, _usable_cpus())
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
    )


@dataclass
class TrainLoaders:
    """The three training loaders; each is None when its dataset list is empty or its batch size 0."""

    loader_2d: DataLoader | None
    loader_3d: DataLoader | None
    loader_img: DataLoader | None

    def __iter__(self):
        return iter((self.loader_2d, self.loader_3d, self.loader_img))


def build_train_loaders(
    *,
    datasets_2d: list[str],
    datasets_3d: list[str],
    datasets_img: list[str],
    db_dir: str | os.PathLike,
    dataset_roots: dict[str, str],
    batch_size_2d: int = 4,
    batch_size_3d: int = 4,
    batch_size_img: int = 8,
    seqlen: int = 16,
    sample_pool: int = 128,
    overlap: float = 0.5,
    random_start: bool = True,
    random_sample: bool = False,
    transform_kwargs: dict | None = None,
    num_workers: int = 8,
    distributed: bool = False,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    pin_memory: bool = True,
    use_crop_cache: bool = True,
    split: str = "train",
) -> TrainLoaders:
    """The 2D-video, 3D-video and image training loaders (ORIGINAL.md §4).

    ``transform_kwargs``: :func:`maed.data.transforms.build_transforms` arguments shared by the three
    pipelines (``video_3d`` with colour jitter, ``video_2d`` and ``image`` without). 3DPW in the 3D set
    uses stride 8 as the original; mpii3d as images keeps every 5th row. Every database is checked
    before any loader is built, so a missing file fails fast.
    """
    tk = dict(transform_kwargs or {})
    video_kwargs = dict(seqlen=seqlen, sample_pool=sample_pool, random_start=random_start, random_sample=random_sample)
    common = dict(
        num_workers=num_workers,
        distributed=distributed,
        rank=rank,
        world_size=world_size,
        seed=seed,
        pin_memory=pin_memory,
    )
    for name in [*datasets_2d, *datasets_3d, *datasets_img]:
        check_database_file(db_dir, name, split)

    def video_set(names: list[str], kind: str) -> ConcatDataset:
        transforms = build_transforms(kind, **tk)
        parts = []
        for name in names:
            path = check_database_file(db_dir, name, split)
            parts.append(
                VideoDataset(
                    path,
                    dataset_root=_root(dataset_roots, name),
                    overlap=(dataset_info(name).stride_3d or overlap) if kind == "video_3d" else overlap,
                    transforms=transforms,
                    is_train=True,
                    crop_cache_dir=_cache_dir(path, use_crop_cache),
                    name=f"{name}_{split}",
                    **video_kwargs,
                )
            )
        return ConcatDataset(parts)

    def image_set(names: list[str]) -> ConcatDataset:
        transforms = build_transforms("image", **tk)
        parts = []
        for name in names:
            path = check_database_file(db_dir, name, split)
            parts.append(
                ImageDataset(
                    path,
                    dataset_root=_root(dataset_roots, name),
                    transforms=transforms,
                    is_train=True,
                    crop_cache_dir=_cache_dir(path, use_crop_cache),
                    frame_step=dataset_info(name).image_frame_step,
                    name=f"{name}_{split}",
                )
            )
        return ConcatDataset(parts)

    def loader(dataset_fn, names, batch_size):
        if not names or not batch_size:
            return None
        return _make_loader(dataset_fn(names), batch_size=batch_size, shuffle=True, **common)

    return TrainLoaders(
        loader_2d=loader(lambda n: video_set(n, "video_2d"), datasets_2d, batch_size_2d),
        loader_3d=loader(lambda n: video_set(n, "video_3d"), datasets_3d, batch_size_3d),
        loader_img=loader(image_set, datasets_img, batch_size_img),
    )


def build_eval_dataset(
    dataset: str,
    split: str,
    *,
    db_dir: str | os.PathLike,
    dataset_root: str | os.PathLike | None,
    sample_pool: int = 128,
    valid_mode: str = "original",
    width: int = 224,
    height: int = 224,
    use_crop_cache: bool = True,
) -> VideoDataset:
    """Whole non-overlapping ``sample_pool``-frame windows with the evaluation crop (ORIGINAL.md §7)."""
    path = check_database_file(db_dir, dataset, split)
    return VideoDataset(
        path,
        dataset_root=dataset_root,
        seqlen=sample_pool,
        sample_pool=sample_pool,
        overlap=0.0,
        transforms=build_transforms("eval", width=width, height=height),
        is_train=False,
        crop_cache_dir=_cache_dir(path, use_crop_cache),
        valid_mode=valid_mode,
        name=f"{dataset}_{split}",
    )


def build_eval_loader(
    dataset: str,
    split: str,
    *,
    db_dir: str | os.PathLike,
    dataset_root: str | os.PathLike | None,
    sample_pool: int = 128,
    batch_size: int = 8,
    num_workers: int = 8,
    valid_mode: str = "original",
    distributed: bool = False,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = True,
    width: int = 224,
    height: int = 224,
    use_crop_cache: bool = True,
) -> DataLoader:
    """In-order loader of whole windows for evaluation (``valid_mode``: ``original`` or ``strict``)."""
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
    )
    return _make_loader(
        ds,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        distributed=distributed,
        rank=rank,
        world_size=world_size,
        seed=0,
        pin_memory=pin_memory,
    )


# ---------------------------------------------------------------------------------------- from_config
def _resolved(cfg) -> dict:
    from maed.paths import resolve_paths

    return resolve_paths(cfg.PATHS)


def train_loaders_from_config(
    cfg, *, rank: int = 0, world_size: int = 1, distributed: bool | None = None
) -> TrainLoaders:
    """Translate a ``Config`` into :func:`build_train_loaders` arguments (``TRAIN.*``, ``DATASET.*``)."""
    for key in ("BATCH_SIZE_2D", "BATCH_SIZE_3D", "BATCH_SIZE_IMG"):
        if getattr(cfg.TRAIN, key) < 0:
            raise ConfigError(f"TRAIN.{key}={getattr(cfg.TRAIN, key)}: expected >= 0 (0 disables that stream)")
    if cfg.NUM_WORKERS < 0:
        raise ConfigError(f"NUM_WORKERS={cfg.NUM_WORKERS}: expected >= 0")
    paths = _resolved(cfg)
    distributed = world_size > 1 if distributed is None else distributed
    return build_train_loaders(
        datasets_2d=list(cfg.TRAIN.DATASETS_2D),
        datasets_3d=list(cfg.TRAIN.DATASETS_3D),
        datasets_img=list(cfg.TRAIN.DATASETS_IMG),
        db_dir=paths["db_dir"],
        dataset_roots=paths["dataset_roots"],
        batch_size_2d=cfg.TRAIN.BATCH_SIZE_2D,
        batch_size_3d=cfg.TRAIN.BATCH_SIZE_3D,
        batch_size_img=cfg.TRAIN.BATCH_SIZE_IMG,
        seqlen=cfg.DATASET.SEQLEN,
        sample_pool=cfg.DATASET.SAMPLE_POOL,
        overlap=cfg.DATASET.OVERLAP,
        random_start=cfg.DATASET.RANDOM_START,
        random_sample=cfg.DATASET.RANDOM_SAMPLE,
        transform_kwargs=transform_kwargs_from_config(cfg.DATASET),
        num_workers=cfg.NUM_WORKERS,
        distributed=distributed,
        rank=rank,
        world_size=world_size,
        seed=max(cfg.SEED_VALUE, 0),
        pin_memory=str(cfg.DEVICE).startswith("cuda") and torch.cuda.is_available(),
    )


def eval_loader_from_config(
    cfg,
    *,
    dataset: str | None = None,
    split: str = "val",
    rank: int = 0,
    world_size: int = 1,
    distributed: bool | None = None,
) -> DataLoader:
    """Translate a ``Config`` into :func:`build_eval_loader` arguments (``EVAL.*``; the dataset defaults
    to ``TRAIN.DATASET_EVAL``, the split to ``val`` as the original's validation)."""
    paths = _resolved(cfg)
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
        pin_memory=str(cfg.DEVICE).startswith("cuda") and torch.cuda.is_available(),
        width=cfg.DATASET.WIDTH,
        height=cfg.DATASET.HEIGHT,
    )
