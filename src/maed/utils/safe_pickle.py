"""Unpickling that never runs code from the file: only an allow-list of globals is resolved.

A pickle names the classes and functions it needs (``GLOBAL module name``), and a plain ``pickle.load``
or ``joblib.load`` imports and calls whatever it names, ``os.system`` included. The unpicklers here
resolve only:

- numpy: ``ndarray`` and the functions that rebuild arrays and scalars, ``dtype`` (and
  ``numpy.dtypes.*DType``);
- plain values and containers of ``builtins`` (``dict``, ``list``, ``tuple``, ``set``, ``str``, ...),
  ``collections.OrderedDict``;
- the helpers that protocol 0-2 and Python 2 pickles rebuild those with (``copyreg._reconstructor`` on a
  plain base, ``_codecs.encode`` of latin-1/utf-8 text);
- in :func:`load_joblib` only, joblib's ``NumpyArrayWrapper``: the placeholder ``joblib.dump`` writes in
  front of each raw array buffer.

Anything else raises the caller's error class naming the global it asked for (``'posix.system'``).
Formats with more kinds of objects extend :meth:`AllowListMixin.resolve_global`: :class:`ModelUnpickler`
adds stand-ins for the chumpy and scipy.sparse objects of the official SMPL files (chumpy no longer
installs; a ``Ch`` object's pickled state is kept and its array read from ``x``, sparse matrices are
rebuilt from their arrays with the installed scipy), read by :func:`load_smpl_pickle` and :func:`load_npz`.
"""

from __future__ import annotations

import codecs
import copyreg
import functools
import io
import os
import pickle
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as fmt

from maed.errors import AssetError, DataError, MaedError

__all__ = [
    "AllowListMixin",
    "SafeUnpickler",
    "allowed_global",
    "safe_load",
    "load_joblib",
    "ModelUnpickler",
    "ChumpyStub",
    "SparseStub",
    "load_smpl_pickle",
    "load_npz",
]

#: ``builtins`` names a pickle of plain data may use (constructors of values and containers)
BUILTINS = {
    "object": object, "dict": dict, "list": list, "tuple": tuple, "set": set, "frozenset": frozenset,
    "bytearray": bytearray, "bytes": bytes, "str": str, "int": int, "float": float, "bool": bool,
    "complex": complex, "slice": slice,
}  # fmt: skip

_NUMPY_CORE_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric", "numpy._core.numeric")


@functools.cache
def _numpy_functions() -> dict[str, Any]:
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric
    return {"_reconstruct": multiarray._reconstruct, "scalar": multiarray.scalar, "_frombuffer": numeric._frombuffer}


def _safe_reconstructor(cls, base, state):
    # copyreg._reconstructor, restricted: pickles written with protocols 0/1 create objects through it
    if base is not object and base not in BUILTINS.values():
        raise pickle.UnpicklingError(f"copyreg._reconstructor with base {base!r} is not allowed")
    return copyreg._reconstructor(cls, base, state)


def _safe_codecs_encode(obj, encoding="utf-8", errors="strict"):
    # Python 3 writes bytes in protocol 2 as _codecs.encode(text, 'latin1')
    if encoding.lower().replace("-", "") not in ("latin1", "utf8"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return codecs.encode(obj, encoding, errors)


def allowed_global(module: str, name: str) -> Any | None:
    """The object a pickle's ``GLOBAL module name`` resolves to if it is on the allow-list, else None."""
    if module.split(".")[0] == "numpy":
        if name == "ndarray":
            return np.ndarray
        if name == "dtype":
            return np.dtype
        if module in _NUMPY_CORE_MODULES and name in _numpy_functions():
            return _numpy_functions()[name]
        if module.startswith("numpy.dtypes") and name.endswith("DType"):
            return getattr(np.dtypes, name, None)
        return None
    if module in ("builtins", "__builtin__"):
        return BUILTINS.get(name)
    if module in ("copy_reg", "copyreg") and name == "_reconstructor":
        return _safe_reconstructor
    if module == "_codecs" and name == "encode":
        return _safe_codecs_encode
    if module == "collections" and name == "OrderedDict":
        return OrderedDict
    return None


class AllowListMixin:
    """``find_class`` through :meth:`resolve_global`; a refused global raises ``error`` naming it.

    Mixed into ``pickle.Unpickler`` (:class:`SafeUnpickler`) and into joblib's ``NumpyUnpickler``
    (:func:`load_joblib`), so both resolve the same globals.
    """

    #: what the allowed objects are, for the refusal message
    allowed = "a numpy array, dtype or scalar, a string, number or plain container"
    #: what a refused file should be replaced with
    hint = ""

    source: str = "<pickle>"
    error: type[MaedError] = DataError
    what: str = "file"

    def resolve_global(self, module: str, name: str) -> Any | None:
        return allowed_global(module, name)

    def find_class(self, module: str, name: str):
        found = self.resolve_global(module, name)
        if found is None:
            raise self.error(
                f"{self.source}: refused to load, it asks for '{module}.{name}', which is not {self.allowed}. "
                f"Loading a {self.what} never runs code from it{'; ' + self.hint if self.hint else ''}."
            )
        return found


class SafeUnpickler(AllowListMixin, pickle.Unpickler):
    """An allow-list unpickler; strings of Python 2 pickles are read as latin-1 (as numpy needs)."""

    def __init__(self, file, *, source: str = "<pickle>", error: type[MaedError] = DataError, what: str = "file"):
        super().__init__(file, encoding="latin1")
        self.source, self.error, self.what = source, error, what


def safe_load(
    file,
    *,
    source: str = "<pickle>",
    error: type[MaedError] = DataError,
    what: str = "file",
    unpickler: type[SafeUnpickler] = SafeUnpickler,
) -> Any:
    """Unpickle from a binary file object through ``unpickler``; any failure raises one ``error``."""
    try:
        return unpickler(file, source=source, error=error, what=what).load()
    except MaedError:
        raise
    except Exception as e:  # a truncated or corrupt file raises many different errors
        raise error(f"{source}: not a readable {what} pickle ({type(e).__name__}: {e})") from None


@functools.cache
def _joblib_unpickler() -> type:
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

    class SafeJoblibUnpickler(AllowListMixin, NumpyUnpickler):
        """joblib's unpickler (raw array buffers after each ``NumpyArrayWrapper``) with the allow-list."""

        def __init__(self, file, *, source: str, error: type[MaedError], what: str):
            super().__init__(source, file, ensure_native_byte_order=True)
            self.encoding = "latin1"  # Python 2 strings (numpy buffers of Python 2 pickles)
            self.source, self.error, self.what = source, error, what

        def resolve_global(self, module: str, name: str) -> Any | None:
            if module == "joblib.numpy_pickle" and name == "NumpyArrayWrapper":
                return NumpyArrayWrapper
            return super().resolve_global(module, name)

    return SafeJoblibUnpickler


def load_joblib(path: str | os.PathLike, *, error: type[MaedError] = DataError, what: str = "file") -> Any:
    """Read a file written by ``joblib.dump`` (any of its compressions) or ``pickle.dump`` without running
    code from it: the allow-list above plus joblib's array placeholders.

    A refused global, a truncated or corrupt file, and joblib's pre-0.10 format (arrays in companion
    files) raise one ``error`` naming ``path``.
    """
    from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

    path = Path(path)
    try:
        with open(path, "rb") as raw, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # joblib < 0.10 files: refused below
            with _validate_fileobject_and_memmap(raw, str(path)) as (fobj, _):
                if isinstance(fobj, str):
                    raise error(
                        f"{path}: written by joblib older than 0.10 (arrays in companion files), which is not "
                        "read; load it with that joblib version and save it again"
                    )
                return _joblib_unpickler()(fobj, source=str(path), error=error, what=what).load()
    except MaedError:
        raise
    except Exception as e:  # a truncated or corrupt file raises many different errors
        reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        raise error(f"{path}: not a readable joblib {what} (truncated or corrupt?): {reason}") from None


# ------------------------------------------------------------------------------------------ SMPL model files
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


class ModelUnpickler(SafeUnpickler):
    """The allow-list above plus stand-ins for chumpy objects and scipy sparse matrices (SMPL-style model
    files, latin-1 strings as written by Python 2)."""

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


def _load_model_object(file, *, source: str = "<pickle>") -> Any:
    """Unpickle a model file from a binary file object through ``ModelUnpickler`` (errors: ``AssetError``)."""
    return safe_load(file, source=source, error=AssetError, what="model", unpickler=ModelUnpickler)


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
        data = _load_model_object(f, source=str(path))
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
    """Read a ``.npz`` model file; object arrays (pickled inside the archive) go through ``ModelUnpickler``."""
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
                    arr = _load_model_object(fp, source=f"{path}:{member}")
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
