"""A random but well-formed SMPL-format model directory, for tests and ``maed bench``.

It is not SMPL: the geometry is a blob of points around 24 human-like joint positions. It has the file
layout, keys, shapes and pickle format of the official files (chumpy objects, ``scipy.sparse.csc``),
so every loading path runs without the licence-gated data.
"""

from __future__ import annotations

import copyreg
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np

from maed.body.joints import SMPL_PARENTS
from maed.utils.io import atomic_path, atomic_write_bytes

#: rest-pose joint positions (metres, y up, +x = the body's left), close to SMPL's template
_REST_JOINTS = np.array([
    [0.00, 0.00, 0.00], [0.06, -0.09, 0.00], [-0.06, -0.09, 0.00], [0.00, 0.11, -0.02],
    [0.10, -0.47, 0.00], [-0.10, -0.47, 0.00], [0.00, 0.25, 0.00], [0.09, -0.87, -0.04],
    [-0.09, -0.87, -0.04], [0.00, 0.31, 0.02], [0.12, -0.93, 0.08], [-0.12, -0.93, 0.08],
    [0.00, 0.52, -0.01], [0.08, 0.42, -0.01], [-0.08, 0.42, -0.01], [0.00, 0.60, 0.04],
    [0.18, 0.45, -0.01], [-0.18, 0.45, -0.01], [0.44, 0.43, -0.03], [-0.44, 0.43, -0.03],
    [0.70, 0.44, -0.01], [-0.70, 0.44, -0.01], [0.78, 0.43, -0.02], [-0.78, 0.43, -0.02],
])  # fmt: skip
_NUM_FACES = 13776
_NUM_BETAS = 10
# SMPL joints each J_regressor_extra / J_regressor_h36m row is built from (see maed.body.joints)
_EXTRA_SOURCES = [2, 1, 12, 15, 0, 9, 6, 15, 15]
_H36M_SOURCES = [0, 1, 4, 7, 2, 5, 8, 6, 12, 15, 15, 16, 18, 20, 17, 19, 21]


class _ChumpyCh:
    """Pickles like a ``chumpy.ch.Ch`` array (the global name is rewritten after pickling)."""

    def __init__(self, x: np.ndarray):
        self.x = x

    def __reduce_ex__(self, protocol):
        state = {
            "x": self.x,
            "_dirty_vars": set(),
            "_itr": None,
            "_depends_on_deps": {},
            "_make_dense": False,
            "_make_sparse": False,
        }
        return copyreg.__newobj__, (type(self),), state


class _OldCscMatrix:
    """Pickles like a ``scipy.sparse.csc.csc_matrix`` of the scipy the official files were written with."""

    def __init__(self, dense: np.ndarray):
        import scipy.sparse as sp

        m = sp.csc_matrix(dense)
        self.state = {
            "_shape": m.shape,
            "maxprint": 50,
            "format": "csc",
            "data": m.data,
            "indices": m.indices,
            "indptr": m.indptr,
        }

    def __reduce_ex__(self, protocol):
        return copyreg.__newobj__, (type(self),), self.state


_RENAMES = {
    f"c{__name__}\n_ChumpyCh\n".encode(): b"cchumpy.ch\nCh\n",
    f"c{__name__}\n_OldCscMatrix\n".encode(): b"cscipy.sparse.csc\ncsc_matrix\n",
}


class _Py2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2 wrote it: bytes (numpy's raw array data) as ``str`` opcodes (BINSTRING),
    which Python 3 reads back with ``encoding='latin1'``; Python 3 would wrap them in ``_codecs.encode``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def py2_pickle_bytes(obj) -> bytes:
    """A protocol-2 pickle as Python 2 wrote it (python-2 strings, numpy's ``numpy.core`` module path),
    the way the official SMPL and 3DPW files are stored."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def _pickle_like_official(data: dict, rename: bool = True) -> bytes:
    # Protocol 2 writes class names as text (GLOBAL opcode) and has no frame lengths, so the stand-in
    # classes can be renamed to chumpy/old-scipy paths without ever importing chumpy.
    raw = py2_pickle_bytes(data)
    for ours, theirs in _RENAMES.items() if rename else ():
        if raw.count(ours) != 1:
            raise RuntimeError(f"unexpected pickle layout for {ours!r}")
        raw = raw.replace(ours, theirs)
    return raw


def random_smpl_arrays(seed: int = 0, num_vertices: int = 6890) -> dict[str, np.ndarray]:
    """The arrays of a random SMPL-format model (plain numpy, official shapes and dtypes).

    Each vertex hangs off one joint (a few centimetres from it), is skinned mostly to that joint and a
    little to its parent, and the joint regressor averages each joint's vertices, so the regressed rest
    joints sit near ``_REST_JOINTS``. Shape and pose blend shapes are small (about 1 cm per unit).
    """
    rng = np.random.default_rng(seed)
    V, J = num_vertices, len(SMPL_PARENTS)
    owner = np.arange(V) % J  # every joint owns vertices
    rng.shuffle(owner)
    offsets = rng.normal(scale=0.03, size=(V, 3))
    for j in range(J):  # zero-mean offsets: the regressed joint lands on the rest position
        offsets[owner == j] -= offsets[owner == j].mean(axis=0)
    v_template = _REST_JOINTS[owner] + offsets

    weights = np.zeros((V, J))
    weights[np.arange(V), owner] = 0.8
    parent = np.array([max(p, 0) for p in SMPL_PARENTS])[owner]
    weights[np.arange(V), parent] += 0.2
    weights /= weights.sum(axis=1, keepdims=True)

    J_regressor = np.zeros((J, V))
    J_regressor[owner, np.arange(V)] = 1.0
    J_regressor /= J_regressor.sum(axis=1, keepdims=True)

    idx = np.arange(_NUM_FACES)
    f = np.stack([idx % V, (idx + 1 + idx // V) % V, (idx + 2 + 2 * (idx // V)) % V], axis=1)
    kintree = np.stack([np.array(SMPL_PARENTS, dtype=np.int64), np.arange(J, dtype=np.int64)])
    kintree[0, 0] = 4294967295  # the official files store the root's parent as uint32 -1
    return {
        "v_template": v_template,
        "shapedirs": rng.normal(scale=0.01, size=(V, 3, _NUM_BETAS)),
        "posedirs": rng.normal(scale=0.002, size=(V, 3, 9 * (J - 1))),
        "J_regressor": J_regressor,
        "J": J_regressor @ v_template,
        "weights": weights,
        "kintree_table": kintree,
        "f": f.astype(np.uint32),
    }


def _group_regressor(v_template_owner: np.ndarray, sources: list[int]) -> np.ndarray:
    reg = (v_template_owner[None, :] == np.array(sources)[:, None]).astype(np.float64)
    return reg / reg.sum(axis=1, keepdims=True)


def write_random_smpl_dir(
    out_dir: str | os.PathLike, seed: int = 0, num_vertices: int = 6890, chumpy_style: bool = True
) -> Path:
    """Write a random SMPL-format model directory and return its path.

    Files: ``SMPL_NEUTRAL.pkl`` (pickled like the official file: chumpy ``Ch`` arrays for v_template,
    shapedirs, posedirs, J and weights, a ``scipy.sparse.csc`` J_regressor, numpy f and kintree_table;
    ``chumpy_style=False`` pickles plain numpy arrays instead), ``J_regressor_extra.npy`` (9 x V),
    ``J_regressor_h36m.npy`` (17 x V) and ``smpl_mean_params.npz``. SMPL's vertex joints need
    ``num_vertices >= 6890``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = random_smpl_arrays(seed=seed, num_vertices=num_vertices)
    owner = arrays["J_regressor"].argmax(axis=0)  # the joint each vertex hangs off

    model: dict = {"bs_style": "lbs", "bs_type": "lrotmin"}
    for key, value in arrays.items():
        if chumpy_style and key in ("v_template", "shapedirs", "posedirs", "J", "weights"):
            model[key] = _ChumpyCh(value)
        elif chumpy_style and key == "J_regressor":
            model[key] = _OldCscMatrix(value)
        else:
            model[key] = value
    atomic_write_bytes(out_dir / "SMPL_NEUTRAL.pkl", _pickle_like_official(model, rename=chumpy_style))

    for name, sources in (("J_regressor_extra.npy", _EXTRA_SOURCES), ("J_regressor_h36m.npy", _H36M_SOURCES)):
        with atomic_path(out_dir / name) as tmp, open(tmp, "wb") as fh:
            np.save(fh, _group_regressor(owner, sources))

    rng = np.random.default_rng(seed + 1)
    pose_6d = np.tile(np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]), (24, 1))
    pose_6d[0] = [1.0, 0.0, 0.0, -1.0, 0.0, 0.0]  # root turned 180 degrees about x, facing the camera
    pose_6d += rng.normal(scale=0.05, size=pose_6d.shape)
    with atomic_path(out_dir / "smpl_mean_params.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            pose=pose_6d.reshape(-1).astype(np.float32),
            shape=(rng.normal(scale=0.1, size=_NUM_BETAS)).astype(np.float32),
            cam=np.array([0.9, 0.0, 0.0], dtype=np.float32),
        )
    return out_dir
