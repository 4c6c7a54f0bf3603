"""Raw dataset readers that write the processed databases (``<dataset>_<split>_db.pt``, ORIGINAL.md §4).

Each reader module (``prepare/<reader>.py``, named by the dataset's entry in ``maed.data.registry``, which
also lists its splits) exposes ``RAW_TREE`` (the layout ``--raw`` expects, for messages and docs),
``find_splits(raw) -> {split: source}`` (the splits present in the raw tree) and
``read_split(raw, split, source, options) -> database dict``. :func:`prepare_dataset` drives
them: every requested split present is read and written atomically, finished databases are skipped
unless ``force``, and an absent split is reported, not fatal.

What counts as finished (``maed.data.database.verify_database_file``): a database whose ``.sha256`` file
matches is skipped; one that loads without a matching checksum file (the authors' files, ...) is kept
and reported; one that does not load (truncated, corrupt) is rebuilt, and the run says so. Before a
database is written, every image it refers to must exist under the raw directory (``DataError``
otherwise, unless ``allow_missing_images``).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from maed.data.database import database_filename, missing_images, save_database, verify_database_file
from maed.data.registry import canonical_name, dataset_info
from maed.errors import ConfigError, DataError, OutputError
from maed.utils.io import check_output_dir, remove_stale_temporaries


@dataclass
class PrepareOptions:
    """Reader options. Only the readers named in each comment look at a field."""

    body_model_dir: str | os.PathLike | None = None  # 3dpw: SMPL files (SMPL_NEUTRAL.pkl, regressors)
    progress: bool = True
    drop_invalid_camera: bool = False  # 3dpw: drop frames whose campose_valid is false
    gendered: bool = False  # 3dpw: ground-truth joints from the gendered model (default neutral, as VIBE/MAED)
    cameras: tuple[int, ...] = tuple(range(9))  # mpii3d training cameras
    h36m_protocol: int = 2  # h36m test split: h36m_valid_protocol{1,2}.npz
    allow_missing_images: bool = False  # write a database whose images are not all there (with a warning)
    extra: dict = field(default_factory=dict)


@dataclass
class SplitResult:
    split: str
    status: str  # "written", "exists" (complete, skipped), "kept" (loads, unverified), "absent", "empty"
    path: Path
    rows: int = 0
    note: str = ""

    def line(self) -> str:
        if self.status == "written":
            return f"{self.split}: wrote {self.path} ({self.rows} rows){'; ' + self.note if self.note else ''}"
        if self.status == "exists":
            return f"{self.split}: {self.path} exists, skipped (use --force to rebuild)"
        if self.status == "kept":
            return f"{self.split}: {self.path} exists and was kept as it is: {self.note}; --force rebuilds it"
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
    yields a database at all, ``DataError`` says what ``raw_dir`` should hold. ``out_dir`` is checked
    before any work (``OutputError``), and temporary files of killed earlier runs in it are removed.
    """
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
    out_dir = check_output_dir(out_dir)
    for split in wanted:
        if (out_dir / database_filename(name, split)).is_dir():
            raise OutputError(f"{out_dir / database_filename(name, split)}: a directory where the database goes")
    removed = remove_stale_temporaries(out_dir)
    if removed:
        log(f"{name}: removed {len(removed)} temporary file(s) of interrupted writes from {out_dir}")
    results = []
    for split in wanted:
        out = out_dir / database_filename(name, split)
        notes = []
        if split not in sources:
            res = SplitResult(split, "absent", out, note=f"nothing for it under {raw}")
            log(f"{name} {res.line()}")
            results.append(res)
            continue
        if not force:
            check = verify_database_file(out)
            if check.status in ("complete", "unverified"):
                res = SplitResult(split, "exists" if check.status == "complete" else "kept", out, note=check.detail)
                log(f"{name} {res.line()}")
                results.append(res)
                continue
            if check.status == "unreadable":
                log(f"{name} {split}: {out} exists but does not load, rebuilding it ({check.detail})")
                notes.append(f"replaced a file that did not load ({out.name})")
        db = mod.read_split(raw, split, sources[split], options)
        notes = [*db.pop("__notes__", []), *notes]
        if len(db["img_name"]) == 0:
            res = SplitResult(split, "empty", out, note="; ".join([*notes, f"under {raw}"]))
        else:
            missing, total = missing_images(db["img_name"], raw, progress=options.progress)
            if missing:
                what = f"{len(missing)} of the {total} images it refers to are not files under {raw}"
                what += f" (first: {missing[0]})"
                if not options.allow_missing_images:
                    raise DataError(
                        f"{name} {split}: {what}; nothing written for this split (--allow-missing-images writes it "
                        f"anyway). Expected:\n{mod.RAW_TREE}"
                    )
                notes.append(f"warning: {what}")
            save_database(db, out)
            res = SplitResult(split, "written", out, rows=len(db["img_name"]), note="; ".join(notes))
        log(f"{name} {res.line()}")
        results.append(res)
    empty = [r.split for r in results if r.status == "empty"]
    if empty and not any(r.status in ("written", "exists", "kept") for r in results):
        raise DataError(f"{name} {', '.join(empty)}: no usable frames in {raw}; expected:\n{mod.RAW_TREE}")
    return results
