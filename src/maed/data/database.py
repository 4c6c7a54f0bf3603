"""Processed databases: ``<dataset>_<split>_db.pt`` files, joblib dicts of per-row arrays (ORIGINAL.md §4).

The format is the authors' so that their released files and ours load the same way. Fields (n rows):

==============  =====================  ==========================================================
``vid_name``    n (str)                sequence id (video, person, segment); rows of a video are
                                       consecutive and in frame order
``frame_id``    n (int or str)         frame index / name within the video
``img_name``    n (str)                image path, relative to the dataset root given at load time
``joints2D``    n x 49 x 3             x, y in pixels of the full image, confidence (``spin`` format)
``joints3D``    n x 49 x 4             x, y, z in metres (camera axes), confidence
``pose``        n x 3J (or n x J x 3x3) axis-angle of the body model's J joints, global orientation
                                       (root) first, in the camera frame (SMPL: n x 72 or n x 24x3x3)
``shape``       n x S                  shape parameters (SMPL: 10 betas; Anny: 6 phenotype offsets)
``bbox``        n x 4                  cx, cy, w, h in pixels (square)
``valid``       n                      1 where the frame's annotation can be trusted (3DPW camera)
``valid_i``     n                      MPI-INF-3DHP test: the dataset's valid-frame flag
``cam``         n x 3                  weak-perspective camera (image databases only)
``trans``       n x 3                  camera-frame translation (metres): body_model(pose, shape)
                                       joints + trans = joints3D (synthetic databases)
``intrinsics``  n x 4                  pinhole camera fx, fy, cx, cy (pixels; x right, y down)
==============  =====================  ==========================================================

Only ``img_name`` is required; every other field is optional but must have the shape above. Fields not
listed (the authors' ``features``, ...) are kept if their first axis has n rows.

Files are read through an allow-list unpickler (``maed.utils.safe_pickle``), never by a plain
``joblib.load``. :func:`save_database` writes ``<file>.sha256`` beside each database; a database whose
checksum matches is a finished one (:func:`verify_database_file`).

The authors' files store ``img_name`` with the path they were built with (``data/3dpw/imageFiles/...``);
loaders find the leading part to drop once per database (:func:`find_image_prefix`), so those files work
with a dataset root unchanged.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maed.errors import DataError
from maed.utils.io import atomic_path, atomic_write_text, file_sha256
from maed.utils.safe_pickle import load_joblib

NUM_JOINTS = 49
CHECKSUM_SUFFIX = ".sha256"

#: expected trailing shape of each known field (``()``: one value per row; -1: any size >= 1, ``pose``'s a
#: multiple of 3)
FIELD_SHAPES: dict[str, tuple[int, ...]] = {
    "vid_name": (),
    "frame_id": (),
    "img_name": (),
    "joints2D": (NUM_JOINTS, 3),
    "joints3D": (NUM_JOINTS, 4),
    "pose": (-1,),
    "shape": (-1,),
    "bbox": (4,),
    "valid": (),
    "valid_i": (),
    "cam": (3,),
    "trans": (3,),
    "intrinsics": (4,),
}

DATABASE_SUFFIX = "_db.pt"


def database_filename(dataset: str, split: str) -> str:
    """The authors' file name of a database: ``3dpw_test_db.pt``, ``mpii3d_train_db.pt``, ..."""
    return f"{dataset}_{split}{DATABASE_SUFFIX}"


def parse_database_filename(path: str | os.PathLike) -> tuple[str, str] | None:
    """(dataset, split) of a database file name (``coco2014-all_train_db.pt`` -> ``coco2014-all``, ``train``);
    None for a name that does not follow :func:`database_filename`."""
    name = Path(path).name
    if not name.endswith(DATABASE_SUFFIX) or "_" not in name[: -len(DATABASE_SUFFIX)]:
        return None
    dataset, split = name[: -len(DATABASE_SUFFIX)].rsplit("_", 1)
    return dataset, split


def _field_shape_ok(key: str, shape: tuple[int, ...], n: int) -> bool:
    if len(shape) == 0 or shape[0] != n:
        return False
    tail = shape[1:]
    expected = FIELD_SHAPES.get(key)
    if expected is None:
        return True
    if key == "pose" and len(tail) == 3 and tail[0] >= 1 and tail[1:] == (3, 3):
        return True
    if key == "pose" and len(tail) == 1 and tail[0] % 3 != 0:
        return False
    if expected == ():
        return tail in ((), (1,))
    return len(tail) == len(expected) and all(e == t or (e == -1 and t >= 1) for e, t in zip(expected, tail))


def validate_database(db: dict, label: str = "<database>") -> int:
    """Check the fields of a database dict in place (lists become arrays); return its number of rows.

    Raises one ``DataError`` naming ``label`` and the offending field.
    """
    if not isinstance(db, dict):
        raise DataError(f"{label}: expected a dict of arrays, got {type(db).__name__}")
    if "img_name" not in db:
        raise DataError(f"{label}: missing field 'img_name'; fields present: {sorted(db)}")
    for key in list(db):
        if not isinstance(db[key], np.ndarray):
            try:
                db[key] = np.asarray(db[key])
            except ValueError as e:
                raise DataError(f"{label}: field '{key}' is not a rectangular array ({e})") from None
    n = len(db["img_name"])
    for key, value in db.items():
        if not _field_shape_ok(key, value.shape, n):
            expected = FIELD_SHAPES.get(key)
            want = f"({n}{''.join(', ' + str(s) for s in expected)})" if expected is not None else f"({n}, ...)"
            if key == "pose":
                want = f"({n}, 3J) or ({n}, J, 3, 3) for J joints (SMPL: ({n}, 72) or ({n}, 24, 3, 3))"
            elif key == "shape":
                want = f"({n}, S)"
            raise DataError(f"{label}: field '{key}' has shape {value.shape}, expected {want}")
    for key, expected in FIELD_SHAPES.items():  # one value per row, stored as n x 1 (h5py reads, older files)
        if expected == () and key in db and db[key].ndim == 2:
            db[key] = db[key][:, 0]
    return n


def load_database(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load and validate a ``*_db.pt`` database (ours or the authors').

    The file is read through the allow-list unpickler of ``maed.utils.safe_pickle`` (numpy arrays, dtypes,
    scalars, strings, plain containers and joblib's array placeholders; any joblib compression or a plain
    pickle), so loading never runs code from it. Returns a dict of arrays with n rows each (see the module
    docstring). A missing, truncated, malformed or refused file raises one ``DataError`` naming the file
    (and the field or the object it asked for).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"database not found: {path}")
    db = load_joblib(path, error=DataError, what="database")
    validate_database(db, label=str(path))
    return db


def checksum_path(path: str | os.PathLike) -> Path:
    """The checksum file :func:`save_database` writes beside a database: ``<file>.sha256`` (``sha256sum`` format)."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def save_database(db: dict, path: str | os.PathLike) -> Path:
    """Validate ``db`` and write it atomically as a joblib dict (the authors' format). Returns the path.

    Its checksum goes to ``<path>.sha256`` before the database is renamed into place, so a database
    whose checksum file matches is complete (``sha256sum -c`` checks it too; see :func:`verify_database_file`).
    """
    import joblib

    path = Path(path)
    db = dict(db)
    validate_database(db, label=str(path))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            joblib.dump(db, f)
        atomic_write_text(checksum_path(path), f"{file_sha256(tmp)}  {path.name}\n")
    return path


@dataclass
class DatabaseCheck:
    """What :func:`verify_database_file` found: ``status`` and, unless complete, why."""

    status: str  # "complete", "unverified", "unreadable" or "absent"
    detail: str = ""


def verify_database_file(path: str | os.PathLike) -> DatabaseCheck:
    """Whether an existing database file is a finished one, loading it only when its checksum cannot say.

    - ``complete``: its ``.sha256`` file (written by :func:`save_database`) matches: the bytes are those
      that were validated and written; not loaded again.
    - ``unverified``: it loads and validates, but has no checksum file or one that does not match (the
      authors' files, one copied in or written by other means).
    - ``unreadable``: it does not load (truncated, corrupt, refused by the allow-list); ``detail`` says why.
    - ``absent``: no file.
    """
    path = Path(path)
    if not path.is_file():
        return DatabaseCheck("absent")
    record = checksum_path(path)
    expected = ""
    if record.is_file():
        with contextlib.suppress(OSError, UnicodeDecodeError, IndexError):
            expected = record.read_text().split()[0].lower()
    if expected and expected == file_sha256(path):
        return DatabaseCheck("complete")
    try:
        load_database(path)
    except DataError as e:
        return DatabaseCheck("unreadable", str(e))
    if expected:
        return DatabaseCheck("unverified", f"it loads, but does not match its checksum file {record.name}")
    return DatabaseCheck("unverified", f"it loads, but has no checksum file {record.name} from `maed prepare`")


def missing_images(img_names, root: str | os.PathLike, progress: bool = False) -> tuple[list[str], int]:
    """The distinct ``img_name`` entries that are not files under ``root`` (existence only, nothing is
    decoded), and the number of distinct entries."""
    names = [as_str(n) for n in np.unique(np.asarray(img_names))]
    if progress:
        from tqdm import tqdm

        names_iter = tqdm(names, desc="checking images", leave=False, dynamic_ncols=True)
    else:
        names_iter = names
    root = os.fspath(root)
    return [n for n in names_iter if not os.path.isfile(os.path.join(root, n))], len(names)


def concat_databases(parts: list[dict], keys: list[str] | None = None) -> dict[str, np.ndarray]:
    """Concatenate per-sequence dicts of arrays along the row axis (fields missing in all parts dropped)."""
    if keys is None:
        keys = list(dict.fromkeys(k for p in parts for k in p))
    out = {}
    for key in keys:
        arrays = [np.asarray(p[key]) for p in parts if key in p]
        if arrays:
            out[key] = np.concatenate(arrays, axis=0)
    return out


def as_str(name) -> str:
    """A database string entry (``img_name``, ``vid_name``, ``frame_id``) as ``str``: older and python-2 built
    files hold ``bytes``, decoded as UTF-8 (undecodable bytes kept through ``surrogateescape``)."""
    return name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else str(name)


def find_image_prefix(img_names, root: str | os.PathLike, probes: int = 8) -> str:
    """The leading part of ``img_name`` entries to drop so that they resolve under the dataset ``root``.

    Our databases store names relative to the dataset root, and ``""`` is returned for them. The authors'
    files bake in the path they were built with (``data/3dpw/imageFiles/...``, a cluster's absolute path,
    ...). For up to ``probes`` rows spread over the database, the shortest run of leading path components
    whose removal makes ``root / rest`` an existing file is looked for; the first row that resolves (as it
    is, or with such a prefix) decides. Returns the prefix with its trailing ``/``, or ``""`` when the names
    already resolve or no probed row resolves at all (loading then reports the missing file).
    """
    root = Path(root)
    names = np.asarray(img_names)
    if len(names) == 0:
        return ""
    for row in np.unique(np.linspace(0, len(names) - 1, min(len(names), probes)).astype(np.int64)):
        name = as_str(names[row])
        if (root / name).is_file():
            return ""
        parts = name.split("/")
        for k in range(1, len(parts)):
            if parts[k] and (root / "/".join(parts[k:])).is_file():
                return "/".join(parts[:k]) + "/"
    return ""


def image_path(root: str | os.PathLike | None, name, prefix: str = "") -> str:
    """The file of one ``img_name`` entry: ``root / name`` without ``prefix`` (see :func:`find_image_prefix`).

    Without a root the name is returned as stored (the original's paths relative to its working directory).
    """
    name = as_str(name)
    if root is None:
        return name
    if prefix and name.startswith(prefix):
        name = name[len(prefix) :]
    return str(Path(root) / name)


def rebase_image_names(db: dict, strip_prefix: str, new_prefix: str = "") -> dict[str, np.ndarray]:
    """Rewrite ``img_name`` entries starting with ``strip_prefix`` to start with ``new_prefix`` instead.

    The authors' files bake paths such as ``data/3dpw/imageFiles/...`` in; ``strip_prefix="data/3dpw/"``
    makes them relative to the 3DPW root like ours. Entries without the prefix are left as they are.
    """
    names = [as_str(n) for n in np.asarray(db["img_name"])]
    rebased = [new_prefix + n[len(strip_prefix) :] if n.startswith(strip_prefix) else n for n in names]
    out = dict(db)
    out["img_name"] = np.array(rebased)
    return out
