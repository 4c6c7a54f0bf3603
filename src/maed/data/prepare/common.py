"""Helpers shared by the raw-dataset readers: file checks, MATLAB files, progress bars."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from maed.errors import DataError

T = TypeVar("T")


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file; otherwise one ``DataError`` saying what was expected there."""
    if not path.is_file():
        raise DataError(f"missing raw file: {path} ({what})")
    return path


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a directory; otherwise one ``DataError`` saying what was expected there."""
    if not path.is_dir():
        raise DataError(f"missing raw directory: {path} ({what})")
    return path


def rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes (the form stored in ``img_name``)."""
    return Path(os.path.relpath(path, root)).as_posix()


def progress(items: Iterable[T], desc: str, enabled: bool = True, total: int | None = None) -> Iterator[T]:
    """A tqdm progress bar over ``items`` (plain iteration when disabled)."""
    if not enabled:
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, desc=desc, total=total, leave=False, dynamic_ncols=True)


def load_mat(path: Path, fields: Iterable[str] = (), **kwargs: Any) -> dict:
    """Read a MATLAB file (v4-v7.2 through scipy; v7.3/HDF5 through h5py when installed).

    ``fields`` must be present; a missing one, or an unreadable file, raises one ``DataError`` naming the
    file and the field. HDF5 files return arrays in MATLAB's reversed axis order, as h5py reads them.
    """
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path), **kwargs)
    except NotImplementedError:  # MATLAB v7.3 = HDF5
        mat = _load_hdf5_mat(path)
    except (ValueError, TypeError, OSError, EOFError) as e:
        if _looks_hdf5(path):
            mat = _load_hdf5_mat(path)
        else:
            raise DataError(f"{path}: not a readable MATLAB file ({e})") from None
    for field in fields:
        if field not in mat:
            found = sorted(k for k in mat if not k.startswith("__"))
            raise DataError(f"{path}: missing field '{field}' (fields present: {found})")
    return mat


def _looks_hdf5(path: Path) -> bool:
    # HDF5's signature sits at offset 0 or, behind MATLAB's 512-byte header, at 512 (or a larger power of 2)
    signature = b"\x89HDF\r\n\x1a\n"
    try:
        with open(path, "rb") as f:
            for offset in (0, 512, 1024, 2048):
                f.seek(offset)
                if f.read(8) == signature:
                    return True
    except OSError:
        return False
    return False


def _load_hdf5_mat(path: Path) -> dict:
    try:
        import h5py
    except ModuleNotFoundError:
        raise DataError(f"{path} is a MATLAB v7.3 (HDF5) file; reading it needs h5py (`pip install h5py`)") from None
    try:
        with h5py.File(path, "r") as f:
            return {k: np.array(f[k]) for k in f if isinstance(f[k], h5py.Dataset)}
    except OSError as e:
        raise DataError(f"{path}: not a readable MATLAB v7.3 file ({e})") from None


def check_shape(array: Any, shape: tuple[int | None, ...], path: Path | str, field: str) -> np.ndarray:
    """``array`` as an ndarray of ``shape`` (None: any size); otherwise one ``DataError``."""
    arr = np.asarray(array)
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
    if not ok:
        want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
        raise DataError(f"{path}: field '{field}' has shape {arr.shape}, expected {want}")
    return arr
