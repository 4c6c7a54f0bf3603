"""Keypoint formats: name lists, conversions by name, left/right flips."""

from __future__ import annotations

import numpy as np
import pytest

from maed.data import keypoints as K
from maed.errors import DataError


def test_spin_list_layout():
    assert len(K.SPIN_JOINT_NAMES) == 49 and len(set(K.SPIN_JOINT_NAMES)) == 49
    assert K.SPIN_JOINT_NAMES[25:39] == K.COMMON_JOINT_NAMES  # J14 = 25..38
    assert K.SPIN_JOINT_NAMES[39] == "hip" and K.SPIN_JOINT_NAMES[8] == "OP MidHip"


@pytest.mark.parametrize("fmt", sorted(K.JOINT_NAMES))
def test_flip_permutation_is_an_involution_that_swaps_sides(fmt):
    names = K.joint_names(fmt)
    perm = K.flip_permutation(fmt)
    assert [perm[p] for p in perm] == list(range(len(names)))
    for i, p in enumerate(perm):
        if p != i:  # a swapped pair differs by its side marker only
            assert names[i] != names[p] and _sideless(names[i]) == _sideless(names[p])
    assert any(p != i for i, p in enumerate(perm))


def _sideless(name: str) -> str:
    for marker in ("OP L", "OP R"):
        if name.startswith(marker):
            return "OP " + name[4:]
    for marker in ("left", "right", "Left", "Right"):
        if marker in name:
            return name.replace(marker, "")
    return name[1:]  # rankle / lankle


def test_known_flip_pairs():
    spin = K.SPIN_FLIP_PERM
    # OpenPose shoulders, big toes, eyes; GT ankles, hips, wrists, eyes; centre joints fixed
    for a, b in ((2, 5), (19, 22), (21, 24), (15, 16), (25, 30), (27, 28), (31, 36), (45, 46), (47, 48)):
        assert spin[a] == b and spin[b] == a
    for c in (0, 1, 8, 37, 38, 39, 40, 41, 42, 43, 44):
        assert spin[c] == c
    smpl = K.SMPL_FLIP_PERM
    assert smpl[0] == 0 and smpl[1] == 2 and smpl[22] == 23 and smpl[13] == 14 and smpl[15] == 15
    assert K.SPIN_FLIPPED_JOINT_NAMES[19:25] == [
        "OP RBigToe",
        "OP RSmallToe",
        "OP RHeel",
        "OP LBigToe",
        "OP LSmallToe",
        "OP LHeel",
    ]


def test_convert_copies_by_name_and_zeros_the_rest():
    rng = np.random.default_rng(0)
    penn = rng.normal(size=(3, 13, 3))
    spin = K.convert_kps(penn, src="pennaction", dst="spin")
    assert spin.shape == (3, 49, 3)
    # Penn Action's official order: head, lsho, rsho, lelb, relb, lwri, rwri, lhip, rhip, lkne, rkne, lank, rank
    for src, dst in ((0, 38), (1, 34), (2, 33), (5, 36), (6, 31), (11, 30), (12, 25), (7, 28), (8, 27)):
        np.testing.assert_array_equal(spin[:, dst], penn[:, src])
    filled = {38, 34, 33, 35, 32, 36, 31, 28, 27, 29, 26, 30, 25}
    assert not spin[:, [i for i in range(49) if i not in filled]].any()
    back = K.convert_kps(spin, src="spin", dst="pennaction")
    np.testing.assert_array_equal(back, penn)


def test_convert_single_frame_and_flip_argument():
    x = np.arange(49 * 3, dtype=np.float64).reshape(49, 3)
    assert K.convert_kps(x, "spin", "common").shape == (14, 3)
    np.testing.assert_array_equal(K.convert_kps(x, "spin", "spin", flip=True), x[K.SPIN_FLIP_PERM])
    ints = K.convert_kps(np.ones((1, 14, 2), dtype=np.int64), "common", "spin")
    assert ints.dtype == np.float64 and ints.sum() == 28


def test_perm_idxs_match_the_original():
    # the original's 3DPW preparation: get_perm_idxs('3dpw', 'common') on its 14-joint 3DPW list
    assert K.get_perm_idxs("3dpw", "common") == [10, 9, 8, 11, 12, 13, 4, 3, 2, 5, 6, 7]
    assert K.get_perm_idxs("h36m", "common") == [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]


def test_insta_25_reaches_49():
    kp = np.random.default_rng(1).normal(size=(2, 25, 3))
    spin = K.convert_kps(kp, "insta", "spin")
    assert (np.abs(spin).sum(-1) > 0).sum(-1).tolist() == [25, 25]
    np.testing.assert_array_equal(spin[:, 38], kp[:, 13])  # head top


def test_errors_and_coverage():
    with pytest.raises(DataError, match="unknown keypoint format 'lsp3d'"):
        K.joint_names("lsp3d")
    with pytest.raises(DataError, match="N x 13 x C"):
        K.convert_kps(np.zeros((2, 14, 3)), "pennaction", "spin")
    j = np.zeros((4, 49, 3))
    j[:2, 25, 2] = 1.0
    cov = K.joint_coverage(j)
    assert cov["rankle"] == 0.5 and cov["OP Nose"] == 0.0


def test_skeletons_index_their_formats():
    for fmt, bones in K.SKELETONS.items():
        n = len(K.joint_names(fmt))
        assert all(0 <= a < n and 0 <= b < n for a, b in bones), fmt
    names = set(K.SPIN_JOINT_NAMES)
    assert all(a in names and b in names for a, b in K.SPIN_DRAW_BONES)
