"""Load official SMPL ``.pkl``/``.npz`` model files without chumpy and without running code from them.

The official SMPL pickles (Python 2, 2015) hold ``chumpy.ch.Ch`` objects and ``scipy.sparse.csc``
matrices. chumpy no longer installs, and a plain ``pickle.load`` would execute whatever a file asks for.
``SafeUnpickler`` resolves only an allow-list of globals: numpy array reconstruction, plain containers,
stand-ins for chumpy objects (their pickled state is kept, the array is read from ``x``) and for scipy
sparse matrices (rebuilt from their arrays with the installed scipy). Anything else is refused. The
allow-list itself (numpy, plain containers) is ``maed.utils.safe_pickle``'s, shared with the databases.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as fmt

from maed.errors import AssetError, MaedError
from maed.utils.safe_pickle import SafeUnpickler as _BaseUnpickler
from maed.utils.safe_pickle import safe_load as _safe_load

__all__ = ["SafeUnpickler", "ChumpyStub", "SparseStub", "safe_load", "load_smpl_pickle", "load_npz"]


class ChumpyStub:
    """Stand-in for any ``chumpy`` class: keeps the pickled state; ``x`` is the array of a ``Ch`` object."""

    chumpy_class = "chumpy.ch.Ch"

    def __init__(self, *args, **kwargs):
        self.state: dict = {}

    def __setstate__(self, state):
        if isinstance(state, tuple):  # (dict state, slot state)
            merged = {}
            for part in state:
                if isinstance(part, dict):
                    merged.update(part)
            state = merged
        self.state = dict(state) if isinstance(state, dict) else {"state": state}

    @property
    def x(self) -> np.ndarray:
        if "x" not in self.state:
            raise AssetError(
                f"chumpy object of class {self.chumpy_class} holds no array 'x' (it is a chumpy operation, "
                f"state keys {sorted(self.state)}); only plain chumpy arrays (chumpy.ch.Ch) can be read "
                "without chumpy. Convert the file to .npz with numpy arrays."
            )
        x = self.state["x"]
        return x.x if isinstance(x, ChumpyStub) else np.asarray(x)


class SparseStub:
    """Stand-in for a pickled scipy sparse matrix; ``to_scipy()`` rebuilds it with the installed scipy."""

    sparse_format = "csc"

    def __init__(self, *args, **kwargs):
        self.state: dict = {}

    def __setstate__(self, state):
        self.state = dict(state) if isinstance(state, dict) else {}

    def to_scipy(self):
        import scipy.sparse as sp

        st = self.state
        shape = st.get("_shape", st.get("shape"))
        try:
            shape = tuple(int(s) for s in shape)
            if self.sparse_format == "coo":
                return sp.coo_matrix((st["data"], (st["row"], st["col"])), shape=shape)
            cls = sp.csc_matrix if self.sparse_format == "csc" else sp.csr_matrix
            return cls((st["data"], st["indices"], st["indptr"]), shape=shape)
        except (KeyError, TypeError, ValueError) as e:
            raise AssetError(
                f"pickled scipy.sparse {self.sparse_format} matrix has unexpected state keys {sorted(st)}: {e}"
            ) from None


def _stub_class(base: type, module: str, name: str, **attrs) -> type:
    attrs.setdefault("__module__", __name__)
    return type(f"{base.__name__}[{module}.{name}]", (base,), attrs)


_SPARSE_FORMATS = {
    "csc_matrix": "csc", "csc_array": "csc", "csr_matrix": "csr", "csr_array": "csr",
    "coo_matrix": "coo", "coo_array": "coo",
}  # fmt: skip


class SafeUnpickler(_BaseUnpickler):
    """The allow-list unpickler of ``maed.utils.safe_pickle`` plus stand-ins for chumpy objects and scipy
    sparse matrices (SMPL-style model files, latin-1 strings as written by Python 2)."""

    allowed = "a numpy array, scipy sparse matrix, chumpy array or plain container"
    hint = "use the official file or convert it to .npz with plain numpy arrays"

    def __init__(self, file, *, source: str = "<pickle>", error: type[MaedError] = AssetError, what: str = "model"):
        super().__init__(file, source=source, error=error, what=what)

    def resolve_global(self, module: str, name: str) -> Any | None:
        if module.split(".")[0] == "chumpy":
            return _stub_class(ChumpyStub, module, name, chumpy_class=f"{module}.{name}")
        if module.startswith("scipy.sparse") and name in _SPARSE_FORMATS:
            return _stub_class(SparseStub, module, name, sparse_format=_SPARSE_FORMATS[name])
        return super().resolve_global(module, name)


def safe_load(file, *, source: str = "<pickle>") -> Any:
    """Unpickle a model file from a binary file object through ``SafeUnpickler`` (errors: ``AssetError``)."""
    return _safe_load(file, source=source, error=AssetError, what="model", unpickler=SafeUnpickler)


def to_plain(value: Any) -> Any:
    """Chumpy stand-ins -> numpy arrays, sparse stand-ins -> scipy sparse matrices, anything else as is."""
    if isinstance(value, ChumpyStub):
        return value.x
    if isinstance(value, SparseStub):
        return value.to_scipy()
    return value


def load_smpl_pickle(path: str | os.PathLike, required: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Read an official SMPL ``.pkl`` without chumpy: a dict of numpy arrays / scipy sparse matrices.

    Non-array entries (strings such as ``bs_style``) are kept as they are. A chumpy entry that is an
    operation rather than an array cannot be read without chumpy: it raises ``AssetError`` if its key is
    in ``required`` (every key when ``required`` is None) and is left out otherwise.
    """
    path = Path(path)
    with open(path, "rb") as f:
        data = safe_load(f, source=str(path))
    if not isinstance(data, dict):
        raise AssetError(f"{path}: expected a pickled dict of model arrays, got {type(data).__name__}")
    out = {}
    for key, value in data.items():
        try:
            out[str(key)] = to_plain(value)
        except AssetError as e:
            if required is None or str(key) in required:
                raise AssetError(f"{path}: '{key}': {e}") from None
    return out


def load_npz(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``.npz`` model file; object arrays (pickled inside the archive) go through ``SafeUnpickler``."""
    path = Path(path)
    out: dict[str, Any] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():
                if not member.endswith(".npy"):
                    continue
                with zf.open(member) as raw:
                    fp = io.BytesIO(raw.read())
                version = fmt.read_magic(fp)
                read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape, fortran, dtype = read_header(fp)
                if dtype.hasobject:
                    arr = safe_load(fp, source=f"{path}:{member}")
                else:
                    fp.seek(0)
                    arr = fmt.read_array(fp, allow_pickle=False)
                out[member[: -len(".npy")]] = to_plain(arr.item() if _is_boxed(arr) else arr)
    except AssetError:
        raise
    except (OSError, zipfile.BadZipFile, ValueError) as e:
        raise AssetError(f"{path}: not a readable .npz model file ({type(e).__name__}: {e})") from None
    return out


def _is_boxed(arr: Any) -> bool:
    # np.savez stores a sparse matrix or chumpy object as a 0-d object array
    return isinstance(arr, np.ndarray) and arr.dtype == object and arr.shape == ()
