import shutil
import sys

import numpy as np
import pytest
import torch

from maed.body import BodyOutput, build_body_model
from maed.body.geometry import axis_angle_to_rotmat
from maed.body.joints import (
    H36M_TO_J17,
    H36M_TO_J17_FIXED,
    J49_TO_H36M,
    J49_TO_J14,
    J49_TO_MPII3D,
    JOINT_NAMES,
    SMPL_PARENTS,
)
from maed.body.smpl import SMPL, load_mean_params
from maed.errors import AssetError, ConfigError
from maed.testing.smpl import random_smpl_arrays, write_random_smpl_dir

EXPECTED_FILES = ["SMPL_NEUTRAL.pkl", "J_regressor_extra.npy", "J_regressor_h36m.npy", "smpl_mean_params.npz"]

# The 49 output joints, written out from ORIGINAL.md §2: index into [24 SMPL joints, 21 smplx vertex joints,
# 9 J_regressor_extra joints]. "E<k>" = row k of J_regressor_extra.
HAND_BUILT_49 = [
    24, 12, 17, 19, 21, 16, 18, 20, 0, 2, 5, 8, 1, 4, 7,  # nose, neck, arms, midhip, legs
    25, 26, 27, 28, 29, 30, 31, 32, 33, 34,  # eyes, ears, feet from vertices
    8, 5, "E0", "E1", 4, 7, 21, 19, 17, 16, 18, 20, "E2", "E3",  # J14 (LSP): hips from the extra regressor
    "E4", "E5", "E6", "E7", "E8", 24, 26, 25, 28, 27,
]  # fmt: skip


def random_pose(batch, seed, scale=0.4):
    g = torch.Generator().manual_seed(seed)
    aa = torch.randn(batch, 24, 3, generator=g) * scale
    return aa, torch.randn(batch, 10, generator=g)


def smplx_reference(arrays, model_dir):
    import smplx
    from smplx.utils import Struct

    return smplx.SMPLLayer(model_path=str(model_dir), data_struct=Struct(**arrays), num_betas=10)


def test_smpl_matches_smplx_layer_on_the_same_arrays(tmp_path):
    d = write_random_smpl_dir(tmp_path / "smpl", seed=2)
    body = SMPL(d)
    assert "chumpy" not in sys.modules
    ref = smplx_reference(random_smpl_arrays(seed=2), d)
    aa, betas = random_pose(3, seed=0)
    R = axis_angle_to_rotmat(aa)
    out = body(R, betas)
    expected = ref(betas=betas, global_orient=R[:, :1], body_pose=R[:, 1:])
    torch.testing.assert_close(out.verts, expected.vertices, atol=1e-6, rtol=0)
    extra = torch.einsum("kv,bvc->bkc", torch.from_numpy(np.load(d / "J_regressor_extra.npy")).float(), out.verts)
    pool = torch.cat([expected.joints, extra], dim=1)  # (B, 54, 3)
    hand_built = torch.stack([pool[:, j] if isinstance(j, int) else pool[:, 45 + int(j[1:])] for j in HAND_BUILT_49], 1)
    torch.testing.assert_close(out.joints, hand_built, atol=1e-6, rtol=0)
    assert out.joints.shape == (3, 49, 3) and len(JOINT_NAMES) == 49
    # metre scale, finite
    assert torch.isfinite(out.verts).all() and out.verts.abs().max() < 3.0


def test_forward_axis_angle_matches_smplx_smpl_pose2rot(smpl_dir):
    import smplx
    from smplx.utils import Struct

    body = SMPL(smpl_dir)
    ref = smplx.SMPL(model_path=str(smpl_dir), data_struct=Struct(**random_smpl_arrays(seed=0)), batch_size=2)
    aa, betas = random_pose(2, seed=1, scale=0.8)
    pose = aa.reshape(2, 72)
    out = body.forward_axis_angle(pose, betas)
    expected = ref(betas=betas, global_orient=pose[:, :3], body_pose=pose[:, 3:], transl=torch.zeros(2, 3))
    torch.testing.assert_close(out.verts, expected.vertices, atol=1e-6, rtol=0)


def test_interface_attributes_and_regressors(smpl_body, smpl_dir):
    b = smpl_body
    assert b.name == "smpl" and b.parents == SMPL_PARENTS and b.num_joints == 24
    assert (b.num_betas, b.num_output_joints, b.num_vertices) == (10, 49, 6890)
    assert b.faces.dtype == torch.int64 and b.faces.shape == (13776, 3)
    assert b.J_regressor_h36m.shape == (17, 6890) and b.J_regressor_extra.shape == (9, 6890)
    assert "faces" in dict(b.named_buffers())
    out = b(torch.eye(3).expand(2, 24, 3, 3), torch.zeros(2, 10))
    assert isinstance(out, BodyOutput) and out["verts"] is out.verts and set(out) == {"verts", "joints"}
    h36m = torch.einsum("kv,bvc->bkc", b.J_regressor_h36m, out.verts)
    assert h36m.shape == (2, 17, 3)
    # the synthetic regressors follow the joint semantics: H36M joints 1, 4 are the left/right hips
    torch.testing.assert_close(h36m[:, [4, 1]], out.joints[:, 27:29], atol=1e-5, rtol=0)
    assert len(J49_TO_J14) == 14 and len(J49_TO_MPII3D) == 17 and len(J49_TO_H36M) == 17
    assert H36M_TO_J17_FIXED[-5:] == [8, 10, 0, 7, 9] and H36M_TO_J17[-5:] == [8, 0, 7, 9, 10]


def test_missing_directory_names_all_files_and_sources(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(AssetError) as err:
        build_body_model("smpl", model_dir=missing)
    msg = str(err.value)
    for name in EXPECTED_FILES:
        assert name in msg
    assert str(missing.resolve()) in msg
    assert "https://smpl.is.tue.mpg.de" in msg and "visiondata.cis.upenn.edu/spin/data.tar.gz" in msg


def test_missing_regressor_and_malformed_model_file(tmp_path, smpl_dir):
    d = tmp_path / "partial"
    shutil.copytree(smpl_dir, d)
    (d / "J_regressor_extra.npy").unlink()
    with pytest.raises(AssetError, match=r"missing J_regressor_extra\.npy") as err:
        SMPL(d)
    assert "J_regressor_extra.npy    [missing]" in str(err.value)
    assert "SMPL_NEUTRAL.pkl         [found]" in str(err.value)

    shutil.copy(smpl_dir / "J_regressor_extra.npy", d)
    (d / "SMPL_NEUTRAL.pkl").write_bytes(b"not a pickle")
    with pytest.raises(AssetError, match="malformed file") as err:
        SMPL(d)
    assert "smpl_mean_params.npz" in str(err.value)

    np.save(d / "J_regressor_extra.npy", np.zeros((9, 100)))
    shutil.copy(smpl_dir / "SMPL_NEUTRAL.pkl", d)
    with pytest.raises(AssetError, match=r"shape \(9, 100\), expected \(9, 6890\)"):
        SMPL(d)


def test_plain_pickle_npz_and_official_names_give_the_same_model(tmp_path, smpl_body):
    R = axis_angle_to_rotmat(random_pose(2, seed=3)[0])
    betas = torch.randn(2, 10)
    expected = smpl_body(R, betas).joints

    plain = write_random_smpl_dir(tmp_path / "plain", seed=0, chumpy_style=False)
    assert b"chumpy" not in (plain / "SMPL_NEUTRAL.pkl").read_bytes()
    torch.testing.assert_close(SMPL(plain)(R, betas).joints, expected)

    npz = tmp_path / "npz"
    shutil.copytree(plain, npz)
    (npz / "SMPL_NEUTRAL.pkl").unlink()
    np.savez(npz / "SMPL_NEUTRAL.npz", **random_smpl_arrays(seed=0))
    torch.testing.assert_close(SMPL(npz)(R, betas).joints, expected)

    official = tmp_path / "official"
    shutil.copytree(plain, official)
    (official / "SMPL_NEUTRAL.pkl").rename(official / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl")
    assert SMPL(official).model_file.name.startswith("basicModel_neutral")
    with pytest.raises(AssetError, match="SMPL_MALE.pkl"):
        SMPL(official, gender="male")


def test_h36m_regressor_is_optional(tmp_path, smpl_dir):
    d = tmp_path / "no_h36m"
    shutil.copytree(smpl_dir, d)
    (d / "J_regressor_h36m.npy").unlink()
    assert SMPL(d).J_regressor_h36m is None


def test_mean_params(smpl_dir, tmp_path):
    mean = load_mean_params(smpl_dir)
    assert {k: v.shape for k, v in mean.items()} == {"pose": (144,), "shape": (10,), "cam": (3,)}
    assert mean["pose"].dtype == np.float32
    with pytest.raises(AssetError, match=r"smpl_mean_params\.npz not found"):
        load_mean_params(tmp_path)


def test_build_body_model_rejects_unknown_name():
    with pytest.raises(ConfigError, match="unknown body model 'smplx'"):
        build_body_model("smplx")


def test_write_random_smpl_dir_is_fast_and_deterministic(tmp_path):
    import time

    t0 = time.perf_counter()
    a = write_random_smpl_dir(tmp_path / "a", seed=5)
    elapsed = time.perf_counter() - t0
    b = write_random_smpl_dir(tmp_path / "b", seed=5)
    assert (a / "SMPL_NEUTRAL.pkl").read_bytes() == (b / "SMPL_NEUTRAL.pkl").read_bytes()
    assert sorted(p.name for p in a.iterdir()) == sorted(EXPECTED_FILES)
    assert elapsed < 3.0  # about 0.5 s here; generous for a loaded CI machine
