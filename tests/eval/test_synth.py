"""`maed eval --dataset synth` and the mean-pose baseline on a generated synthetic set (tests/conftest.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from maed.body import build_body_model
from maed.cli import main
from maed.data.database import load_database
from maed.errors import DataError
from maed.eval.baseline import MeanPoseModel, chordal_mean, mean_parameters
from tests.conftest import synth_model_overrides

LSP = slice(25, 39)  # the 14 LSP joints of the 49; the hips are 2 and 3 of them


@pytest.fixture(scope="module")
def anny():
    return build_body_model("anny", rig="cmu_mb")


def _eval_args(data, out, *extra) -> list[str]:
    return [
        "eval",
        "--dataset",
        "synth",
        "--split",
        "test",
        "--db-dir",
        str(data),
        "--data-root",
        str(data),
        "--out",
        str(out),
        "--protocol",
        "both",
        "--no-progress",
        *extra,
    ]


def test_eval_of_a_checkpoint_on_synth_gives_every_metric(synth_splits, tmp_path, capsys):
    from maed.config import load_config
    from maed.models import build_model
    from maed.models.checkpoint import make_checkpoint
    from maed.utils.io import atomic_torch_save

    cfg = load_config("stage2", synth_model_overrides(synth_splits))
    torch.manual_seed(0)
    ckpt = tmp_path / "model.pt"
    atomic_torch_save(make_checkpoint(build_model(cfg), cfg.to_dict()), ckpt)
    out = tmp_path / "eval"
    assert main(_eval_args(synth_splits, out, "--checkpoint", str(ckpt))) == 0
    record = json.loads((out / "metrics.json").read_text())
    rows = len(load_database(synth_splits / "synth_test_db.pt")["vid_name"])
    for protocol in ("original", "strict"):
        metrics = record["by_protocol"][protocol]
        assert metrics["num_frames"] == rows  # one window per person track, no padding: every frame once
        assert all(math.isfinite(metrics[k]) and metrics[k] > 0 for k in ("mpjpe", "pa-mpjpe", "pve", "accel_err"))
    assert record["run"]["model"]["BODY_RIG"] == "cmu_mb"
    with np.load(out / "predictions.npz", allow_pickle=False) as pred:
        assert pred["theta"].shape == (rows, 3 + 3 * 31 + 6)  # cam, the rig's 31 bones, 6 phenotype values
    assert "synth test:" in capsys.readouterr().out


def test_ground_truth_body_reproduces_the_ground_truth(synth_splits, anny):
    """A model predicting the true pose and shape scores zero on every metric, PVE included: the predicted
    and ground-truth meshes are both root-relative in camera axes, and the joint maps line up."""
    from maed.data.datasets import VideoDataset
    from maed.eval.evaluator import Evaluator

    db = load_database(synth_splits / "synth_test_db.pt")
    first = np.flatnonzero(db["vid_name"] == db["vid_name"][0])
    still = {k: np.asarray(v)[first] for k, v in db.items()}  # one person's 8 frames ...
    for key in ("pose", "shape", "joints3D"):  # ... all holding its first frame's body
        still[key] = np.repeat(still[key][:1], len(first), axis=0)
    pose, shape = mean_parameters(still, num_joints=31, num_betas=6)
    oracle = MeanPoseModel(anny, torch.from_numpy(pose), torch.from_numpy(shape))
    dataset = VideoDataset(
        still, dataset_root=synth_splits, seqlen=None, sample_pool=8, is_train=False, pose_layout=anny_layout()
    )
    evaluator = Evaluator(oracle, dataset="synth", protocols=("original", "strict"), gt_body_model=anny, seqlen=4)
    result = evaluator.run(DataLoader(dataset, batch_size=1), vertices_file=None)
    for protocol in result.protocols.values():
        assert protocol.num_frames == len(first)
        for key in ("mpjpe", "pa-mpjpe", "pve", "accel_err"):
            assert protocol.metrics[key] < 0.05, (key, protocol.metrics[key])  # mm: float32 rounding only


def anny_layout():
    from maed.body.layout import pose_layout

    return pose_layout("anny", "cmu_mb")


def test_chordal_mean_of_rotations_about_one_axis_is_the_circular_mean_angle():
    angles = np.array([0.1, 0.5, 1.2, -0.3])

    def rot_z(a):
        c, s = np.cos(a), np.sin(a)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    mean = chordal_mean(np.stack([rot_z(a) for a in angles]))
    expected = rot_z(np.arctan2(np.sin(angles).mean(), np.cos(angles).mean()))
    np.testing.assert_allclose(mean, expected, atol=1e-12)
    rng = np.random.default_rng(0)
    from scipy.spatial.transform import Rotation

    many = Rotation.random(50, random_state=1).as_matrix().reshape(10, 5, 3, 3)  # 10 samples of 5 joints
    means = chordal_mean(many)
    assert means.shape == (5, 3, 3)
    np.testing.assert_allclose(means @ np.swapaxes(means, -1, -2), np.broadcast_to(np.eye(3), (5, 3, 3)), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(means), 1.0, atol=1e-12)
    # the chordal mean minimises the summed squared Frobenius distance: any nearby rotation does worse
    cost = ((many - means) ** 2).sum(axis=(0, 2, 3))
    nudge = Rotation.from_rotvec(rng.normal(scale=0.05, size=(5, 3))).as_matrix()
    assert np.all(((many - nudge @ means) ** 2).sum(axis=(0, 2, 3)) > cost)


def _similarity_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Umeyama's similarity alignment of K x 3 ``pred`` onto ``gt`` (written here, independently of maed)."""
    mp, mg = pred.mean(0), gt.mean(0)
    p, g = pred - mp, gt - mg
    U, S, Vt = np.linalg.svd(g.T @ p)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    scale = np.trace(np.diag(S) @ D) / (p**2).sum()
    return scale * p @ R.T + mg


def test_mean_pose_baseline_through_the_evaluator_equals_a_hand_computation(synth_splits, anny, tmp_path):
    out = tmp_path / "baseline"
    train_db = synth_splits / "synth_train_db.pt"
    args = _eval_args(synth_splits, out, "--baseline", "mean-pose", "--train-db", str(train_db))
    assert main([*args, "EVAL.SEQLEN=4", "EVAL.SAMPLE_POOL=8", "NUM_WORKERS=0"]) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["checkpoint"] == f"mean-pose baseline of {train_db}"
    assert record["run"]["model"]["BODY_MODEL"] == "anny" and record["run"]["model"]["BODY_RIG"] == "cmu_mb"

    # by hand: the chordal mean of every training rotation and the mean shape, Anny's 14 LSP joints
    train, test = load_database(train_db), load_database(synth_splits / "synth_test_db.pt")
    rotations = torch.from_numpy(np.asarray(train["pose"], np.float64).reshape(-1, 31, 3))
    from maed.body.geometry import axis_angle_to_rotmat

    mean_rot = chordal_mean(axis_angle_to_rotmat(rotations).numpy())
    mean_shape = np.asarray(train["shape"], np.float64).mean(0)
    with torch.no_grad():
        body = anny(torch.from_numpy(mean_rot).float()[None], torch.from_numpy(mean_shape).float()[None])
        truth = anny.forward_axis_angle(torch.from_numpy(test["pose"]), torch.from_numpy(test["shape"]))
    pred = body.joints[0, LSP].double().numpy()
    gt = np.asarray(test["joints3D"], np.float64)[:, LSP, :3]
    pred_c = pred - pred[2:4].mean(0)  # centred at the hips
    gt_c = gt - gt[:, 2:4].mean(1, keepdims=True)
    mpjpe = np.linalg.norm(pred_c[None] - gt_c, axis=-1).mean() * 1000
    pa = np.mean([np.linalg.norm(_similarity_align(pred_c, g) - g, axis=-1).mean() for g in gt_c]) * 1000
    pve = np.linalg.norm(body.verts.double().numpy() - truth.verts.double().numpy(), axis=-1).mean() * 1000
    metrics = record["by_protocol"]["strict"]
    assert metrics["num_frames"] == len(gt)
    assert metrics["mpjpe"] == pytest.approx(mpjpe, abs=0.05)
    assert metrics["pa-mpjpe"] == pytest.approx(pa, abs=0.05)
    assert metrics["pve"] == pytest.approx(pve, abs=0.05)
    assert metrics["accel"] == pytest.approx(0.0, abs=1e-6)  # the same body in every frame


def test_baseline_needs_a_training_database(synth_splits, tmp_path, capsys):
    assert main(_eval_args(synth_splits, tmp_path / "a", "--baseline", "mean-pose")) == 2
    assert "--train-db" in capsys.readouterr().err
    assert main(_eval_args(synth_splits, tmp_path / "b")) == 2  # neither a checkpoint nor a baseline
    assert "give --checkpoint" in capsys.readouterr().err


def test_missing_synth_database_says_how_to_make_it(tmp_path):
    from maed.data.loaders import check_database_file

    with pytest.raises(DataError, match=r"maed synth --out .*both --db-dir and --data-root"):
        check_database_file(tmp_path, "synth", "test")


def test_unknown_precision_is_one_error_before_anything_runs(synth_splits, tmp_path, capsys):
    train_db = str(synth_splits / "synth_train_db.pt")
    args = _eval_args(synth_splits, tmp_path / "out", "--baseline", "mean-pose", "--train-db", train_db)
    assert main([*args, "--precision", "fp16"]) == 2
    assert "precision 'fp16': expected one of auto, fp32, bf16, tf32" in capsys.readouterr().err
    assert not (tmp_path / "out" / "metrics.json").exists()
