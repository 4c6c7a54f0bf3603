import copyreg
import os
import pickle
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from maed.errors import AssetError
from maed.testing.smpl import random_smpl_arrays, write_random_smpl_dir
from maed.utils.safe_pickle import load_npz, load_smpl_pickle


class _Stand:
    """Pickles as the class named by ``GLOBAL`` after the rename in ``_pickle_renamed``."""

    def __init__(self, state):
        self.state = state

    def __reduce_ex__(self, protocol):
        return copyreg.__newobj__, (type(self),), self.state


def _pickle_renamed(obj, module: str, name: str) -> bytes:
    raw = pickle.dumps(obj, protocol=2)
    ours = f"c{__name__}\n_Stand\n".encode()
    assert raw.count(ours) == 1
    return raw.replace(ours, f"c{module}\n{name}\n".encode())


def test_chumpy_style_pickle_loads_without_chumpy(tmp_path):
    d = write_random_smpl_dir(tmp_path / "smpl", seed=1)
    raw = (d / "SMPL_NEUTRAL.pkl").read_bytes()
    assert b"chumpy.ch\nCh" in raw and b"scipy.sparse.csc\ncsc_matrix" in raw
    data = load_smpl_pickle(d / "SMPL_NEUTRAL.pkl")
    assert "chumpy" not in sys.modules
    ref = random_smpl_arrays(seed=1)
    for key in ("v_template", "shapedirs", "posedirs", "J", "weights", "kintree_table", "f"):
        assert isinstance(data[key], np.ndarray), key
        np.testing.assert_array_equal(data[key], ref[key])
    assert sp.issparse(data["J_regressor"]) and data["J_regressor"].format == "csc"
    np.testing.assert_array_equal(data["J_regressor"].toarray(), ref["J_regressor"])
    assert data["bs_style"] == "lbs"


def test_pickle_asking_for_code_is_refused(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps({"v_template": Evil()}, protocol=2))
    with pytest.raises(AssetError, match="system") as err:
        load_smpl_pickle(path)
    assert str(path) in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("module,name", [("builtins", "eval"), ("subprocess", "Popen"), ("numpy", "load")])
def test_other_globals_are_refused(tmp_path, module, name):
    path = tmp_path / "x.pkl"
    path.write_bytes(f"c{module}\n{name}\n.".encode())
    with pytest.raises(AssetError, match=f"{module}.{name}"):
        load_smpl_pickle(path)


def test_chumpy_operation_without_x_gives_clear_error(tmp_path):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    select = _Stand({"a": np.zeros(3), "idxs": np.arange(2)})
    path.write_bytes(_pickle_renamed({"v_template": select}, "chumpy.reordering", "Select"))
    with pytest.raises(AssetError, match=r"chumpy\.reordering\.Select.*no array 'x'"):
        load_smpl_pickle(path)


def test_unreadable_chumpy_entry_is_dropped_only_when_not_required(tmp_path):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    prior = _Stand({"a": np.zeros(3)})
    raw = _pickle_renamed({"weights_prior": prior, "f": np.zeros((2, 3))}, "chumpy.ch_ops", "add")
    path.write_bytes(raw)
    data = load_smpl_pickle(path, required=("f",))
    assert set(data) == {"f"}
    with pytest.raises(AssetError, match="'weights_prior'"):
        load_smpl_pickle(path, required=("f", "weights_prior"))


def test_old_scipy_csr_path_and_truncated_file(tmp_path):
    dense = np.array([[0.0, 1.5, 0.0], [2.0, 0.0, 0.0]])
    m = sp.csr_matrix(dense)
    state = {"_shape": m.shape, "data": m.data, "indices": m.indices, "indptr": m.indptr, "format": "csr"}
    path = tmp_path / "m.pkl"
    path.write_bytes(_pickle_renamed({"J_regressor": _Stand(state)}, "scipy.sparse.csr", "csr_matrix"))
    loaded = load_smpl_pickle(path)["J_regressor"]
    assert loaded.format == "csr"
    np.testing.assert_array_equal(loaded.toarray(), dense)

    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(AssetError, match="not a readable model pickle"):
        load_smpl_pickle(path)


def test_npz_with_boxed_sparse_matrix_loads_safely(tmp_path):
    dense = np.eye(3)
    path = tmp_path / "SMPL_NEUTRAL.npz"
    np.savez(path, v_template=np.ones((3, 3)), J_regressor=np.array(sp.csc_matrix(dense), dtype=object))
    data = load_npz(path)
    np.testing.assert_array_equal(data["v_template"], np.ones((3, 3)))
    np.testing.assert_array_equal(data["J_regressor"].toarray(), dense)
