"""Raw dataset readers that write the processed databases (``<dataset>_<split>_db.pt``, ORIGINAL.md §4).

Each reader module (``prepare/<reader>.py``, named by the dataset's entry in ``maed.data.registry``, which
also lists its splits) exposes ``RAW_TREE`` (the layout ``--raw`` expects, for messages and docs),
``find_splits(raw) -> {split: source}`` (the splits present in the raw tree) and
``read_split(raw, split, source, options) -> database dict``. :func:`prepare_dataset` drives
them: every requested split present is read and written atomically, finished databases are skipped
unless ``force``, and an absent split is reported, not fatal.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from maed.data.registry import canonical_name, dataset_info
from maed.errors import ConfigError, DataError


@dataclass
class PrepareOptions:
    """Reader options. Only the readers named in each comment look at a field."""

    body_model_dir: str | os.PathLike | None = None  # 3dpw: SMPL files (SMPL_NEUTRAL.pkl, regressors)
    progress: bool = True
    drop_invalid_camera: bool = False  # 3dpw: drop frames whose campose_valid is false
    gendered: bool = False  # 3dpw: ground-truth joints from the gendered model (default neutral, as VIBE/MAED)
    cameras: tuple[int, ...] = tuple(range(9))  # mpii3d training cameras
    h36m_protocol: int = 2  # h36m test split: h36m_valid_protocol{1,2}.npz
    extra: dict = field(default_factory=dict)


@dataclass
class SplitResult:
    split: str
    status: str  # "written", "exists" (skipped), "absent", "empty" (present, but no usable frame)
    path: Path
    rows: int = 0
    note: str = ""

    def line(self) -> str:
        if self.status == "written":
            return f"{self.split}: wrote {self.path} ({self.rows} rows){'; ' + self.note if self.note else ''}"
        if self.status == "exists":
            return f"{self.split}: {self.path} exists, skipped (use --force to rebuild)"
        if self.status == "empty":
            return f"{self.split}: no usable frames, nothing written ({self.note})"
        return f"{self.split}: not in the raw tree, skipped ({self.note})"


def reader(name: str):
    """The reader module of a dataset (a name or one of its aliases)."""
    info = dataset_info(canonical_name(name))
    if info.reader_module is None:
        raise ConfigError(f"dataset {info.name!r} has no raw reader; nothing for `maed prepare` to do")
    return importlib.import_module(info.reader_module)


def prepare_dataset(
    name: str,
    raw_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    splits: list[str] | None = None,
    force: bool = False,
    options: PrepareOptions | None = None,
    log=print,
) -> list[SplitResult]:
    """Build ``<out_dir>/<dataset>_<split>_db.pt`` for each requested split found in ``raw_dir``.

    ``splits`` defaults to every split the dataset has. Returns one :class:`SplitResult` per split. A split
    that is absent from the raw tree, or present without a usable frame (MPI-INF-3DHP annotations whose
    frames are not extracted yet, ...), is reported and the others are still prepared; when no split
    yields a database at all, ``DataError`` says what ``raw_dir`` should hold.
    """
    from maed.data.database import database_filename, save_database

    name = canonical_name(name)
    mod = reader(name)
    known_splits = dataset_info(name).splits
    options = options or PrepareOptions()
    raw = Path(raw_dir).expanduser()
    if not raw.is_dir():
        raise DataError(f"raw {name} directory not found: {raw}; expected:\n{mod.RAW_TREE}")
    wanted = list(splits) if splits else list(known_splits)
    unknown = [s for s in wanted if s not in known_splits]
    if unknown:
        raise DataError(f"{name}: unknown split(s) {unknown}; expected some of {list(known_splits)}")
    sources = mod.find_splits(raw)
    if not sources:
        raise DataError(f"{raw}: no {name} split found; expected:\n{mod.RAW_TREE}")
    results = []
    for split in wanted:
        out = Path(out_dir) / database_filename(name, split)
        if split not in sources:
            res = SplitResult(split, "absent", out, note=f"nothing for it under {raw}")
        elif out.is_file() and not force:
            res = SplitResult(split, "exists", out)
        else:
            db = mod.read_split(raw, split, sources[split], options)
            notes = db.pop("__notes__", [])
            if len(db["img_name"]) == 0:
                res = SplitResult(split, "empty", out, note="; ".join([*notes, f"under {raw}"]))
            else:
                save_database(db, out)
                res = SplitResult(split, "written", out, rows=len(db["img_name"]), note="; ".join(notes))
        log(f"{name} {res.line()}")
        results.append(res)
    empty = [r.split for r in results if r.status == "empty"]
    if empty and not any(r.status in ("written", "exists") for r in results):
        raise DataError(f"{name} {', '.join(empty)}: no usable frames in {raw}; expected:\n{mod.RAW_TREE}")
    return results
