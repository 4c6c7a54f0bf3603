"""The demo's stage cache: ``<out>/cache/<file>.npz``, each holding the signature it was made with.

A cached stage's signature is its own settings plus the digest of the signature of the cached stage before
it (:meth:`StageCache.chain`), so a change upstream invalidates every stage below it without any stage
naming its predecessor. :meth:`StageCache.load_or_compute` is the one place a stage's result is looked up,
computed and saved.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from maed.utils.io import atomic_path, file_sha256

CACHE_DIR = "cache"
#: 2: signatures chained by :meth:`StageCache.chain` (``after``) instead of per-stage keys
CACHE_VERSION = 2

T = TypeVar("T")


def digest(obj: Any) -> str:
    """SHA-256 of an object's JSON form (keys sorted)."""
    return hashlib.sha256(_json(obj).encode()).hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    return file_sha256(path)


def folder_fingerprint(path: str | os.PathLike | None) -> dict | None:
    """Names, sizes and modification times of a folder's files (the body-model directory)."""
    if path is None or not Path(path).is_dir():
        return None
    h = hashlib.sha256()
    for p in sorted(Path(path).iterdir()):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"path": str(Path(path).resolve()), "digest": h.hexdigest()}


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


class StageCache:
    """``<out>/cache/<name>.npz`` files, each holding the signature (a JSON string) it was made with."""

    def __init__(self, out_dir: str | os.PathLike):
        self.dir = Path(out_dir) / CACHE_DIR
        self._upstream: str | None = None  # digest of the last chained signature

    def load(self, name: str, signature: dict) -> dict[str, np.ndarray] | None:
        path = self.dir / f"{name}.npz"
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["signature"]) != _json(signature):
                    return None
                return {k: z[k] for k in z.files if k != "signature"}
        except (OSError, ValueError, KeyError, EOFError):  # a damaged cache file is rebuilt
            return None

    def save(self, name: str, signature: dict, arrays: dict[str, np.ndarray]) -> None:
        path = self.dir / f"{name}.npz"
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, signature=np.array(_json(signature)), **arrays)

    def chain(self, settings: dict) -> dict:
        """The signature of the next cached stage: ``settings``, the cache version, and (``after``) the
        digest of the previous chained signature, so that it changes whenever anything upstream changes."""
        signature = {"version": CACHE_VERSION, "after": self._upstream, **settings}
        self._upstream = digest(signature)
        return signature

    def load_or_compute(
        self,
        name: str,
        settings: dict,
        compute: Callable[[], T],
        *,
        to_arrays: Callable[[T], dict[str, np.ndarray]],
        from_arrays: Callable[[dict[str, np.ndarray]], T],
    ) -> tuple[T, bool]:
        """``(result, cached)``: the stage's result from ``<name>.npz`` when its chained signature matches,
        else ``compute()``, saved there."""
        signature = self.chain(settings)
        arrays = self.load(name, signature)
        if arrays is not None:
            return from_arrays(arrays), True
        result = compute()
        self.save(name, signature, to_arrays(result))
        return result, False
