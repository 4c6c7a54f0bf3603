"""The evaluator end to end on a generated 3DPW-format fixture, and its building blocks."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time

import joblib
import numpy as np
import pytest
import torch
from torch import nn

from maed.body.joints import H36M_TO_J14, H36M_TO_J17, H36M_TO_J17_FIXED, J49_TO_MPII3D
from maed.errors import CheckpointError, ConfigError, DataError, OutputError
from maed.eval.evaluator import (
    Evaluator,
    joint_ids,
    segment_ids,
)
from maed.eval.protocol import EvalSettings
from maed.eval.run import EvalJob, run_evaluation

FRAMES_PER_VIDEO = 40
SMALL = ["MODEL.ENCODER.BACKBONE=cnn", "MODEL.DECODER.HIDDEN_DIM=64", "DATASET.WIDTH=64", "DATASET.HEIGHT=64"]


# ------------------------------------------------------------------------------------------ units
def test_joint_maps_per_dataset_and_protocol():
    assert joint_ids("3dpw", "original") == joint_ids("3dpw", "strict") == H36M_TO_J14
    assert joint_ids("h36m", "original") == H36M_TO_J17
    assert joint_ids("h36m", "strict") == H36M_TO_J17_FIXED != H36M_TO_J17
    assert joint_ids("mpii3d", "strict") == J49_TO_MPII3D
    with pytest.raises(ConfigError, match="insta"):
        joint_ids("insta", "original")


def test_cli_choices_match_the_evaluator():
    from maed.data.registry import EVAL_DATASETS
    from maed.eval import cli, evaluator

    assert set(cli.EVAL_DATASETS) == set(EVAL_DATASETS) == {"3dpw", "mpii3d", "h36m", "synth"}
    assert cli.PROTOCOL_CHOICES == evaluator.PROTOCOL_CHOICES


def test_segments_split_at_sequence_change_and_frame_gap():
    seqs = ["a", "a", "a", "a", "b", "b"]
    frames = [0, 1, 2, 5, 0, 1]
    assert segment_ids(seqs, frames).tolist() == [0, 0, 0, 1, 2, 2]
    assert segment_ids(seqs, [None] * 6).tolist() == [0, 0, 0, 0, 1, 1]


class FrameIndexModel(nn.Module):
    """Reports, per input frame, the value of its first pixel: checks clip sampling and re-ordering."""

    def forward(self, images, J_regressor=None):
        N, T = images.shape[:2]
        v = images[:, :, 0, 0, 0]  # (N, T)
        return {
            "theta": v[..., None].expand(N, T, 85),
            "verts": v[..., None, None].expand(N, T, 5, 3),
            "kp_3d": v[..., None, None].expand(N, T, 17, 3),
        }


def test_predict_samples_stride_clips_and_restores_frame_order():
    seen = []

    class Recording(FrameIndexModel):
        def forward(self, images, J_regressor=None):
            seen.append(images[0, :, 0, 0, 0].tolist())
            return super().forward(images, J_regressor)

    images = torch.arange(128.0).reshape(1, 128, 1, 1, 1).expand(2, 128, 3, 2, 2).contiguous()
    ev = Evaluator(Recording(), dataset="3dpw", seqlen=16, frame_step=1, progress=False)
    out = ev.predict(images)
    assert len(seen) == 8 and seen[0] == list(range(0, 128, 8)) and seen[3] == list(range(3, 128, 8))
    np.testing.assert_array_equal(out["theta"][1, :, 0], np.arange(128))
    assert out["verts"].shape == (2, 128, 5, 3) and out["joints"].shape == (2, 128, 17, 3)
    # frame step 2: the model sees frames 0, 2, ... (4 clips of 16 at stride 4 of those), the rest interpolated
    seen.clear()
    out2 = Evaluator(Recording(), dataset="3dpw", seqlen=16, frame_step=2, progress=False).predict(images)
    assert len(seen) == 4 and seen[1] == list(range(2, 128, 8))
    assert out2["theta"].shape == (2, 128, 85)
    assert np.all(np.diff(out2["theta"][0, :, 0]) > 0)  # still monotone after interpolation


# ------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def fixture(tmp_path_factory, smpl_dir):
    from maed.config import load_config
    from maed.models import build_model
    from maed.models.checkpoint import make_checkpoint
    from maed.testing.datasets import write_synthetic_dataset

    root = tmp_path_factory.mktemp("eval_e2e")
    data = write_synthetic_dataset(
        root / "data",
        name="3dpw",
        split="test",
        num_videos=2,
        frames_per_video=FRAMES_PER_VIDEO,
        image_size=(320, 240),
        seed=3,
    )
    cfg = load_config("stage2", SMALL)
    torch.manual_seed(0)
    model = build_model(cfg, body_model_dir=smpl_dir)
    ckpt = root / "ckpt.pt"
    torch.save(make_checkpoint(model, config=cfg.to_dict()), ckpt)
    return {"root": root, "data": data, "cfg": cfg, "ckpt": ckpt, "smpl": smpl_dir}


def _run(fx, out, **kw):
    args = dict(
        checkpoint=fx["ckpt"],
        config=fx["cfg"],
        out_dir=out,
        dataset="3dpw",
        split="test",
        db_dir=fx["data"].db_path.parent,
        data_root=fx["data"].dataset_root,
        body_model_dir=fx["smpl"],
        batch_size=2,
        num_workers=0,
        width=64,
        height=64,
        progress=False,
    )
    args.update(kw)
    settings = EvalSettings(**{k: args.pop(k) for k in ("protocol", "frame_step", "batch_size") if k in args})
    return run_evaluation(EvalJob(**args, settings=settings))


@pytest.fixture(scope="module")
def both(fixture):
    out = fixture["root"] / "out_both"
    record = _run(fixture, out, protocol="both", save_verts=True, save_inference_pkl=True)
    return out, record


def _expected_frames():
    """A 40-frame video reflect-padded to 128: 0..39, back 38..1, 0, forward 1..39, back 38..29. The
    original's rule (row index above the previous frame's) keeps 40 + 39 frames; strict keeps the 40."""
    from maed.data.datasets import reflect_indices

    rows = reflect_indices(FRAMES_PER_VIDEO, 128)
    original = 1 + int(np.sum(rows[1:] > rows[:-1]))
    return original, FRAMES_PER_VIDEO


def test_e2e_metrics_json(both):
    out, record = both
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(record))
    n_orig, n_strict = _expected_frames()
    assert (n_orig, n_strict) == (79, 40)
    assert on_disk["num_frames"] == 2 * n_orig and on_disk["protocol"] == "both"
    assert on_disk["by_protocol"]["strict"]["num_frames"] == 2 * n_strict
    for name in ("original", "strict"):
        for k in ("mpjpe", "pa-mpjpe", "pve", "accel", "accel_err"):
            v = on_disk["by_protocol"][name][k]
            assert isinstance(v, float) and math.isfinite(v) and v > 0, (name, k, v)
    for k in ("mpjpe", "pa-mpjpe", "pve", "accel", "accel_err"):
        assert on_disk[k] == on_disk["by_protocol"]["original"][k]
    assert on_disk["dataset"] == "3dpw" and on_disk["split"] == "test" and on_disk["checkpoint"].endswith("ckpt.pt")
    assert on_disk["pa-mpjpe"] <= on_disk["mpjpe"]
    # strict drops duplicated frames and the fake acceleration across the sequence boundary
    assert on_disk["by_protocol"]["strict"]["accel_err"] != pytest.approx(on_disk["accel_err"], rel=1e-6)


def test_e2e_per_sequence_csv(both):
    out, _ = both
    with open(out / "per_sequence.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["protocol"], r["sequence"]) for r in rows] == [
        ("original", "3dpw_vid0"),
        ("original", "3dpw_vid1"),
        ("strict", "3dpw_vid0"),
        ("strict", "3dpw_vid1"),
    ]
    assert [int(r["num_frames"]) for r in rows] == [79, 79, 40, 40]
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("mpjpe", "pa-mpjpe", "pve", "accel_err"))


def test_e2e_predictions_and_inference_pkl_agree_with_metrics(both):
    out, record = both
    n = record["num_frames"]
    with np.load(out / "predictions.npz") as z:
        assert z["theta"].shape == (n, 85) and z["boxes"].shape == (n, 4)
        assert z["paths"].shape == (n,) and z["paths"][0].endswith("3dpw_vid0/000000.jpg")
        assert z["verts"].shape == (n, 6890, 3) and z["verts"].dtype == np.float32
        assert int(z["strict"].sum()) == record["by_protocol"]["strict"]["num_frames"]
        verts = z["verts"]
    pkl = joblib.load(out / "inference.pkl")
    assert set(pkl) == {"pred_theta", "pred_verts", "paths", "bboxes", "mpjpe", "pa_mpjpe", "accel"}
    np.testing.assert_array_equal(pkl["pred_verts"], verts)
    assert pkl["mpjpe"].shape == (n,) and pkl["accel"].shape == (n - 2,)
    # the original stores metres; the metrics are their means in mm
    assert np.mean(pkl["mpjpe"]) * 1000 == pytest.approx(record["mpjpe"], rel=1e-9)
    assert np.mean(pkl["pa_mpjpe"]) * 1000 == pytest.approx(record["pa-mpjpe"], rel=1e-9)
    assert np.mean(pkl["accel"]) * 1000 == pytest.approx(record["accel_err"], rel=1e-9)
    assert not list(out.glob(".*tmp"))  # the streamed-vertices scratch file is gone


def test_e2e_pve_matches_ground_truth_meshes(both, fixture):
    """PVE recomputed from the saved vertices and neutral SMPL on the database's pose and shape."""
    from maed.body import build_body_model

    out, record = both
    db = fixture["data"].db
    with np.load(out / "predictions.npz") as z:
        verts, ids = z["verts"], z["instance_id"]
    row_of = {f"{v}/{f}": i for i, (v, f) in enumerate(zip(db["vid_name"], db["frame_id"]))}
    rows = np.array([row_of[i] for i in ids])
    smpl = build_body_model("smpl", model_dir=fixture["smpl"])
    with torch.no_grad():
        gt = smpl.forward_axis_angle(torch.from_numpy(db["pose"][rows]), torch.from_numpy(db["shape"][rows]))
    pve = np.linalg.norm(verts - gt.verts.numpy(), axis=-1).mean() * 1000
    assert pve == pytest.approx(record["pve"], rel=1e-4)


def test_e2e_other_database_or_data_root_is_refused_and_the_same_run_rewrites_identical_results(
    fixture, both, tmp_path
):
    """Runs before the frame-step test below, which replaces the results in ``both``'s folder."""
    out, first = both
    files = ("metrics.json", "per_sequence.csv", "predictions.npz", "inference.pkl")
    before = {name: (out / name).read_bytes() for name in files}
    data = fixture["data"]
    other_db = tmp_path / "database"
    other_db.mkdir()
    shutil.copy(data.db_path, other_db / data.db_path.name)  # the same bytes in another --db-dir
    other_root = tmp_path / "images"
    shutil.copytree(data.dataset_root, other_root)
    again = dict(protocol="both", save_verts=True, save_inference_pkl=True)
    for kw, key in (({"db_dir": other_db}, "database"), ({"data_root": other_root}, "data_root")):
        with pytest.raises(OutputError, match=rf"different evaluation \(.*differs in {key}\); .*--overwrite"):
            _run(fixture, out, **kw, **again)
    assert {name: (out / name).read_bytes() for name in files} == before
    stale = out / ".predictions.npz.k3j4l5m6.tmp"  # a killed run's scratch file
    stale.write_bytes(b"half the vertices")
    os.utime(stale, (time.time() - 3600,) * 2)
    assert _run(fixture, out, **again) == first
    assert {name: (out / name).read_bytes() for name in files} == before
    assert not stale.exists()


def test_e2e_frame_step_and_output_dir_protection(fixture, both):
    out, first = both
    before = (out / "metrics.json").read_bytes()
    with pytest.raises(OutputError, match=r"different evaluation.*frame_step.*--overwrite"):
        _run(fixture, out, protocol="both", frame_step=2)
    assert (out / "metrics.json").read_bytes() == before
    with pytest.raises(ConfigError, match="--frame-step 3"):
        _run(fixture, fixture["root"] / "out_frame_step3", frame_step=3)
    assert not (fixture["root"] / "out_frame_step3").exists()
    rec = _run(fixture, out, protocol="original", frame_step=2, overwrite=True)
    assert rec["num_frames"] == first["num_frames"] and rec["protocol"] == "original"
    assert all(math.isfinite(rec[k]) for k in ("mpjpe", "pa-mpjpe", "pve", "accel", "accel_err"))
    assert rec["mpjpe"] != pytest.approx(first["mpjpe"], rel=1e-9)  # half the frames are interpolated
    assert json.loads((out / "metrics.json").read_text())["run"]["frame_step"] == 2


@pytest.mark.parametrize(
    "kw, match",
    [({"batch_size": 0}, "--batch-size / EVAL.BATCH_SIZE 0"), ({"num_workers": -1}, "--num-workers / NUM_WORKERS -1")],
)
def test_bad_loader_options_fail_before_anything_is_written(fixture, tmp_path, kw, match):
    with pytest.raises(ConfigError, match=match):
        _run(fixture, tmp_path / "out", **kw)
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_is_an_output_error(fixture, tmp_path):
    out = tmp_path / "results.txt"
    out.write_text("keep me")
    with pytest.raises(OutputError, match="not a directory"):
        _run(fixture, out, overwrite=True)
    assert out.read_text() == "keep me"


def test_missing_database_names_file_and_prepare(fixture, tmp_path):
    with pytest.raises(DataError, match=r"3dpw_val_db\.pt.*maed prepare 3dpw"):
        _run(fixture, tmp_path / "out", split="val")
    assert not (tmp_path / "out").exists()


def test_default_split_and_the_prepare_hint_come_from_the_registry(fixture, tmp_path, capsys):
    from maed.cli import main

    empty = tmp_path / "database"
    empty.mkdir()
    out = tmp_path / "out"
    base = ["eval", "--checkpoint", str(fixture["ckpt"]), "--dataset", "mpii3d", "--db-dir", str(empty)]
    base += ["--out", str(out), "--device", "cpu", "--no-progress"]
    capsys.readouterr()
    assert main(base) == 2  # MPI-INF-3DHP is evaluated on its val split (the test set, named as the original)
    err = capsys.readouterr().err
    assert (
        "mpii3d_val_db.pt" in err
        and f"`maed prepare mpii3d --raw RAW_DIR --out {empty} --splits val` (RAW_DIR: the raw mpii3d files" in err
    )
    assert main([*base, "--split", "test"]) == 2  # a split the reader cannot make: no prepare command
    err = capsys.readouterr().err.strip()
    assert "mpii3d_test_db.pt" in err and "mpii3d has no split 'test'" in err and "splits train, val" in err
    assert "maed prepare mpii3d --raw" not in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_checkpoint_of_another_architecture(fixture, tmp_path):
    from maed.config import load_config

    other = load_config("stage2", [*SMALL[:1], "MODEL.DECODER.HIDDEN_DIM=32", *SMALL[2:]])
    with pytest.raises(CheckpointError, match=r"(?s)does not fit.*decoder\.fc1"):
        _run(fixture, tmp_path / "out", config=other)
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_cli_end_to_end_and_unknown_key(fixture, tmp_path, capsys):
    from maed.cli import main

    out = tmp_path / "cli_out"
    # --db-dir, --data-root and --body-model-dir default from the config's PATHS
    base = [
        "eval",
        "--checkpoint",
        str(fixture["ckpt"]),
        "--dataset",
        "3dpw",
        "--split",
        "test",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--protocol",
        "strict",
        "--no-progress",
        "NUM_WORKERS=0",
        "EVAL.BATCH_SIZE=2",
        f"PATHS.DB_DIR={fixture['data'].db_path.parent}",
        f"PATHS.BODY_MODEL_DIR={fixture['smpl']}",
        f"PATHS.DATASET_ROOTS={{3dpw: {fixture['data'].dataset_root}}}",
    ]
    assert main([*base, "EVAL.NOT_A_KEY=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown config key EVAL.NOT_A_KEY" in err and len(err.splitlines()) == 1
    assert main(base) == 0  # the architecture comes from the config stored in the checkpoint
    record = json.loads((out / "metrics.json").read_text())
    assert record["protocol"] == "strict" and record["num_frames"] == 80
    assert "strict" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------ other datasets
@pytest.fixture(scope="module")
def h36m_style(fixture):
    """One 70-frame video (no padded frame counts twice) with the 17 MPI-INF-3DHP/H36M ground-truth joints."""
    from maed.data.database import save_database
    from maed.testing.datasets import write_synthetic_dataset

    root = fixture["root"] / "other"
    dbs = {}
    for name, with_pose in (("h36m", True), ("mpii3d", False)):
        data = write_synthetic_dataset(
            root,
            name=name,
            split="test",
            num_videos=1,
            frames_per_video=70,
            image_size=(320, 240),
            seed=5,
            with_pose=with_pose,
        )
        db = dict(data.db)
        db["joints3D"] = db["joints3D"].copy()
        db["joints3D"][:, J49_TO_MPII3D, 3] = 1.0
        save_database(db, data.db_path)
        dbs[name] = data
    return dbs


def test_h36m_strict_fixes_the_joint_order(fixture, h36m_style):
    data = h36m_style["h36m"]
    rec = _run(
        fixture,
        fixture["root"] / "out_h36m",
        dataset="h36m",
        protocol="both",
        db_dir=data.db_path.parent,
        data_root=data.dataset_root,
    )
    orig, strict = rec["by_protocol"]["original"], rec["by_protocol"]["strict"]
    assert orig["num_frames"] == strict["num_frames"] == 70
    # same frames, one sequence without gaps: only the order of the last five joints differs
    assert strict["pve"] == pytest.approx(orig["pve"], rel=1e-12)
    assert strict["mpjpe"] != pytest.approx(orig["mpjpe"], rel=1e-6)
    assert all(math.isfinite(v) for m in (orig, strict) for k, v in m.items())


def test_mpii3d_uses_the_model_joints_and_has_no_pve(fixture, h36m_style):
    data = h36m_style["mpii3d"]
    out = fixture["root"] / "out_mpii3d"
    rec = _run(
        fixture, out, dataset="mpii3d", protocol="original", db_dir=data.db_path.parent, data_root=data.dataset_root
    )
    assert rec["num_frames"] == 70 and rec["pve"] is None  # no SMPL ground truth in MPI-INF-3DHP
    assert json.loads((out / "metrics.json").read_text())["pve"] is None
    assert all(math.isfinite(rec[k]) for k in ("mpjpe", "pa-mpjpe", "accel", "accel_err"))
    # a 3DPW-style ground truth (14 confident joints) under the mpii3d name: one clear error
    wrong = fixture["root"] / "database_as_mpii3d"
    wrong.mkdir()
    shutil.copy(fixture["data"].db_path, wrong / "mpii3d_test_db.pt")
    with pytest.raises(DataError, match=r"14 confident 3D joints.*evaluates 17"):
        _run(
            fixture,
            fixture["root"] / "out_mpii3d_bad",
            dataset="mpii3d",
            db_dir=wrong,
            data_root=fixture["data"].dataset_root,
            batch_size=1,
        )
    assert not (fixture["root"] / "out_mpii3d_bad" / "metrics.json").exists()


def test_frame_names_give_sequences_and_numbers():
    """MPI-INF-3DHP ids carry frame names: the sequence is the part before the last '/', the number the
    trailing digits, so strict acceleration follows real sequences."""
    from maed.eval.evaluator import _split_instance, segment_ids

    ids = [
        "S1_Seq1_vid0_seg0/frame_000010",
        "S1_Seq1_vid0_seg0/frame_000011",
        "S1_Seq1_vid0_seg0/frame_000013",
        "courtyard_0/12",
        "plain",
    ]
    split = [_split_instance(i) for i in ids]
    assert split[0] == ("S1_Seq1_vid0_seg0", 10) and split[3] == ("courtyard_0", 12) and split[4] == ("plain", None)
    segs = segment_ids([s for s, _ in split[:3]], [f for _, f in split[:3]])
    assert list(segs) == [0, 0, 1]  # a gap in frame numbers starts a new segment
