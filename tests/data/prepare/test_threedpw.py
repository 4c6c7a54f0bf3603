"""``maed prepare 3dpw`` on sequence pickles written in the real format, checked field by field."""

from __future__ import annotations

import joblib
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d
from scipy.signal import medfilt
from scipy.spatial.transform import Rotation

from maed.cli import main
from tests.data.prepare.raw_data import THREEDPW_TO_LSP, write_3dpw

SPIN_INDEX = {
    "rankle": 25,
    "rknee": 26,
    "rhip": 27,
    "lhip": 28,
    "lknee": 29,
    "lankle": 30,
    "rwrist": 31,
    "relbow": 32,
    "rshoulder": 33,
    "lshoulder": 34,
    "lelbow": 35,
    "lwrist": 36,
}
H36M_TO_J14 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]


def reference_boxes(j2d: np.ndarray) -> tuple[np.ndarray, int, int]:
    """HMMR's smoothed boxes, written as a plain loop: (boxes for frames start..end-1, start, end)."""
    params = {}
    for t, kp in enumerate(j2d):
        vis = kp[:, 2] > 0.3
        if vis.any():
            lo, hi = kp[vis, :2].min(0), kp[vis, :2].max(0)
            size = np.linalg.norm(hi - lo)
            if size >= 0.5:
                params[t] = np.array([*(lo + hi) / 2, 150.0 / size])
    start, end = min(params), max(params) + 1
    track = []
    for t in range(start, end):
        if t in params:
            track.append(params[t])
            continue
        prev = max(k for k in params if k < t)
        nxt = min(k for k in params if k > t)
        a = (t - prev) / (nxt - prev)
        track.append((1 - a) * params[prev] + a * params[nxt])
    track = np.array(track)
    kernel = min(11, len(track) - 1 + len(track) % 2)
    track = np.stack([gaussian_filter1d(medfilt(track[:, c], kernel), 8) for c in range(3)], axis=1)
    side = 150.0 / track[:, 2] * 1.1
    return np.stack([track[:, 0], track[:, 1], side, side], axis=1), start, end


def expected_rows(data: dict, seq: str, split: str, body, j_reg: np.ndarray) -> dict:
    rows = {
        k: [] for k in ("vid_name", "frame_id", "img_name", "joints2D", "joints3D", "pose", "shape", "bbox", "valid")
    }
    cam = data["cam_poses"]
    for p in range(len(data["poses"])):
        j2d = data["poses2d"][p].transpose(0, 2, 1)
        boxes, start, end = reference_boxes(j2d)
        pose_w, trans, betas = data["poses"][p], data["trans"][p], data["betas"][p][:10]
        with torch.no_grad():
            out = body.forward_axis_angle(
                torch.tensor(pose_w, dtype=torch.float32),
                torch.tensor(betas, dtype=torch.float32).expand(len(pose_w), -1),
            )
        R, t = cam[:, :3, :3], cam[:, :3, 3]
        joints_c = np.einsum("nij,nkj->nki", R, out.joints.numpy() + trans[:, None]) + t[:, None]
        verts_c = np.einsum("nij,nkj->nki", R, out.verts.numpy() + trans[:, None]) + t[:, None]
        for f in range(start, end):
            kp = np.zeros((49, 3))
            for name, src in THREEDPW_TO_LSP.items():
                kp[SPIN_INDEX[name]] = [j2d[f, src, 0], j2d[f, src, 1], float(j2d[f, src, 2] > 0.3)]
            if (kp[:, 2] > 0.3).sum() <= 6:
                continue
            j3d = np.zeros((49, 4))
            j3d[25:39, 3] = 1.0
            if split == "train":
                j3d[:, :3] = joints_c[f]
            else:
                j3d[25:39, :3] = (j_reg @ verts_c[f])[H36M_TO_J14]
            orient = Rotation.from_matrix(R[f] @ Rotation.from_rotvec(pose_w[f, :3]).as_matrix())
            rows["vid_name"].append(f"{seq}_{p}")
            rows["frame_id"].append(f)
            rows["img_name"].append(f"imageFiles/{seq}/image_{f:05d}.jpg")
            rows["joints2D"].append(kp)
            rows["joints3D"].append(j3d)
            rows["pose"].append(np.concatenate([orient.as_rotvec(), pose_w[f, 3:]]))
            rows["shape"].append(betas)
            rows["bbox"].append(boxes[f - start])
            rows["valid"].append(bool(data["campose_valid"][p][f]))
    return {k: np.array(v) for k, v in rows.items()}


def rotvec_close(a: np.ndarray, b: np.ndarray, atol: float) -> bool:
    ra, rb = Rotation.from_rotvec(a).as_matrix(), Rotation.from_rotvec(b).as_matrix()
    return np.allclose(ra, rb, atol=atol)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, smpl_dir):
    raw = tmp_path_factory.mktemp("3dpw_raw")
    out = tmp_path_factory.mktemp("db")
    written = write_3dpw(raw)
    rc = main(
        ["prepare", "3dpw", "--raw", str(raw), "--out", str(out), "--body-model-dir", str(smpl_dir), "--no-progress"]
    )
    assert rc == 0
    return raw, out, written


@pytest.mark.parametrize("split,raw_split", [("train", "train"), ("val", "validation"), ("test", "test")])
def test_3dpw_database_fields(prepared, smpl_dir, smpl_body, split, raw_split):
    raw, out, written = prepared
    ((seq, data),) = written[raw_split].items()
    db = joblib.load(out / f"3dpw_{split}_db.pt")
    exp = expected_rows(data, seq, split, smpl_body, np.load(smpl_dir / "J_regressor_h36m.npy"))
    assert set(db) == {"vid_name", "frame_id", "img_name", "joints2D", "joints3D", "pose", "shape", "bbox", "valid"}
    n = len(exp["img_name"])
    assert 0 < n < 2 * 20 - 2  # frames were dropped (leading, trailing and sparse ones)
    assert db["joints2D"].shape == (n, 49, 3) and db["joints3D"].shape == (n, 49, 4)
    assert db["pose"].shape == (n, 72) and db["shape"].shape == (n, 10) and db["bbox"].shape == (n, 4)
    np.testing.assert_array_equal(db["vid_name"], exp["vid_name"])
    np.testing.assert_array_equal(db["frame_id"], exp["frame_id"])
    np.testing.assert_array_equal(db["img_name"], exp["img_name"])
    np.testing.assert_array_equal(db["valid"], exp["valid"])
    np.testing.assert_allclose(db["joints2D"], exp["joints2D"], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(db["bbox"], exp["bbox"], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(db["shape"], exp["shape"], atol=1e-6)
    np.testing.assert_allclose(db["pose"][:, 3:], exp["pose"][:, 3:], atol=1e-6)
    for a, b in zip(db["pose"][:, :3], exp["pose"][:, :3]):
        assert rotvec_close(a, b, atol=1e-5)
    np.testing.assert_allclose(db["joints3D"], exp["joints3D"], atol=2e-4)


def test_3dpw_boxes_follow_their_frames(prepared):
    """Actor 0 has no visible joint in frames 0-2: its first row is frame 3 with frame 3's box (the
    original gave it the box of frame 0, ORIGINAL.md §9)."""
    _, out, written = prepared
    db = joblib.load(out / "3dpw_train_db.pt")
    rows = np.flatnonzero(db["vid_name"] == "seq_train_0")
    assert db["frame_id"][rows[0]] == 3
    # the original's array had zero rows for frames 0-2 and used them for frames 3-5
    assert np.all(db["bbox"][rows] > 100)
    assert 5 not in db["frame_id"][rows]  # frame 5 has too few visible joints


def test_3dpw_drop_invalid_camera_and_rerun(prepared, smpl_dir, capsys):
    raw, out, written = prepared
    before = (out / "3dpw_test_db.pt").stat().st_mtime_ns
    assert (
        main(
            [
                "prepare",
                "3dpw",
                "--raw",
                str(raw),
                "--out",
                str(out),
                "--body-model-dir",
                str(smpl_dir),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "exists, skipped" in capsys.readouterr().out
    assert (out / "3dpw_test_db.pt").stat().st_mtime_ns == before
    out2 = out.parent / (out.name + "_drop")
    assert (
        main(
            [
                "prepare",
                "3dpw",
                "--raw",
                str(raw),
                "--out",
                str(out2),
                "--body-model-dir",
                str(smpl_dir),
                "--splits",
                "test",
                "--drop-invalid-camera",
                "--no-progress",
            ]
        )
        == 0
    )
    full = joblib.load(out / "3dpw_test_db.pt")
    dropped = joblib.load(out2 / "3dpw_test_db.pt")
    assert not (out2 / "3dpw_train_db.pt").exists()
    assert dropped["valid"].all() and len(dropped["valid"]) == int(full["valid"].sum()) < len(full["valid"])


def test_3dpw_truncated_pickle_names_the_file(tmp_path, smpl_dir, capsys):
    raw = tmp_path / "raw"
    write_3dpw(raw, frames=12)
    bad = raw / "sequenceFiles" / "test" / "seq_test.pkl"
    bad.write_bytes(bad.read_bytes()[:300])
    rc = main(
        [
            "prepare",
            "3dpw",
            "--raw",
            str(raw),
            "--out",
            str(tmp_path / "db"),
            "--body-model-dir",
            str(smpl_dir),
            "--splits",
            "test",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and str(bad) in err and "Traceback" not in err
    assert not (tmp_path / "db" / "3dpw_test_db.pt").exists()


def test_3dpw_missing_field_and_absent_split(tmp_path, smpl_dir, capsys):
    from tests.data.prepare.raw_data import py2_pickle_bytes

    raw = tmp_path / "raw"
    written = write_3dpw(raw, frames=12)
    for sub in ("train", "validation"):
        for f in (raw / "sequenceFiles" / sub).glob("*.pkl"):
            f.unlink()
        (raw / "sequenceFiles" / sub).rmdir()
    data = dict(written["test"]["seq_test"])
    del data["campose_valid"]
    (raw / "sequenceFiles" / "test" / "seq_test.pkl").write_bytes(py2_pickle_bytes(data))
    rc = main(
        [
            "prepare",
            "3dpw",
            "--raw",
            str(raw),
            "--out",
            str(tmp_path / "db"),
            "--body-model-dir",
            str(smpl_dir),
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert "train: not in the raw tree" in captured.out and "val: not in the raw tree" in captured.out
    assert rc == 2 and "campose_valid" in captured.err and "seq_test.pkl" in captured.err
