"""``maed render``: end to end on the output of a real ``maed eval`` run, the camera convention against a
known silhouette, and one clear error per bad input."""

from __future__ import annotations

import json
import zipfile

import cv2
import numpy as np
import pytest
import torch

from maed.cli import main

av = pytest.importorskip("av", reason="PyAV is in the demo extra")

SMALL = ["MODEL.ENCODER.BACKBONE=cnn", "MODEL.DECODER.HIDDEN_DIM=64", "DATASET.WIDTH=64", "DATASET.HEIGHT=64"]
FRAMES = 3


def video_frames(path) -> tuple[int, tuple[int, int]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        return n, (s.codec_context.width, s.codec_context.height)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, smpl_dir):
    """A generated 3DPW-format test split (two videos, 160 x 120 frames), a randomly initialised small
    checkpoint, and the real ``maed eval`` run on them with --save-verts."""
    from maed.config import load_config
    from maed.models import build_model
    from maed.models.checkpoint import make_checkpoint
    from maed.testing.datasets import write_synthetic_dataset

    root = tmp_path_factory.mktemp("render_e2e")
    data = write_synthetic_dataset(
        root / "data", name="3dpw", split="test", num_videos=2, frames_per_video=FRAMES, image_size=(160, 120), seed=5
    )
    cfg = load_config("stage2", SMALL)
    torch.manual_seed(0)
    model = build_model(cfg, body_model_dir=smpl_dir)
    with torch.no_grad():  # untrained, the camera head predicts s ~ 0 (a dot); make the bodies visible
        model.decoder.deccam.bias.copy_(torch.tensor([0.9, 0.0, 0.0]))
    ckpt = root / "ckpt.pt"
    torch.save(make_checkpoint(model, config=cfg.to_dict()), ckpt)
    eval_dir = root / "eval"
    args = [
        "eval",
        "--checkpoint", str(ckpt),
        "--body-model-dir", str(smpl_dir),
        "--dataset", "3dpw",
        "--db-dir", str(data.db_path.parent),
        "--data-root", str(data.dataset_root),
        "--out", str(eval_dir),
        "--batch-size", "1",
        "--num-workers", "0",
        "--device", "cpu",
        "--save-verts",
        "--no-progress",
        "EVAL.SAMPLE_POOL=8",
        "EVAL.SEQLEN=8",
    ]  # fmt: skip
    assert main(args) == 0
    return {"eval": eval_dir, "images": data.dataset_root, "smpl": smpl_dir, "root": root}


def render(evaluated, out, *extra) -> int:
    return main(
        [
            "render",
            str(evaluated["eval"]),
            "--root",
            str(evaluated["images"]),
            "--body-model-dir",
            str(evaluated["smpl"]),
        ]
        + ["--out", str(out), "--no-progress", *extra]
    )


def test_one_video_per_folder_with_every_frame(evaluated, tmp_path, capsys):
    with np.load(evaluated["eval"] / "predictions.npz", allow_pickle=False) as pred:
        # the original protocol also keeps the reflect-padded copies of these short videos' frames
        assert pred["verts"].shape[0] > 2 * FRAMES and pred["verts"].shape[1] == 6890
    out = tmp_path / "visual"
    # the SMPL stand-in's random triangles overlap hundreds of times: multisampling would cost seconds
    assert render(evaluated, out, "--side-view", "--no-antialias") == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "3dpw_vid0.mp4",
        "3dpw_vid0_side.mp4",
        "3dpw_vid1.mp4",
        "3dpw_vid1_side.mp4",
    ]
    for name in ("3dpw_vid0.mp4", "3dpw_vid1_side.mp4"):
        assert video_frames(out / name) == (FRAMES, (160, 120))
    # a rerun keeps finished videos
    before = (out / "3dpw_vid0.mp4").stat().st_mtime_ns
    assert render(evaluated, out, "--no-antialias") == 0
    assert "kept" in capsys.readouterr().out and (out / "3dpw_vid0.mp4").stat().st_mtime_ns == before


def test_png_frames_meshes_from_theta_and_selection(evaluated, tmp_path):
    """PNGs of one video drawn from saved vertices and from theta through the body model agree."""
    saved, rebuilt = tmp_path / "saved", tmp_path / "rebuilt"
    assert render(evaluated, saved, "--format", "png", "--sequence", "3dpw_vid1", "--max-frames", "3") == 0
    assert sorted(p.name for p in (saved / "3dpw_vid1").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    assert not (saved / "3dpw_vid0").exists()

    no_verts = tmp_path / "eval_no_verts"
    no_verts.mkdir()
    (no_verts / "metrics.json").write_bytes((evaluated["eval"] / "metrics.json").read_bytes())
    with np.load(evaluated["eval"] / "predictions.npz", allow_pickle=False) as pred:
        np.savez(no_verts / "predictions.npz", **{k: pred[k] for k in pred.files if k != "verts"})
    assert (
        main(
            ["render", str(no_verts), "--root", str(evaluated["images"]), "--body-model-dir", str(evaluated["smpl"])]
            + [
                "--out",
                str(rebuilt),
                "--format",
                "png",
                "--sequence",
                "3dpw_vid1",
                "--max-frames",
                "3",
                "--no-progress",
            ]
        )
        == 0
    )
    for name in ("000000.png", "000002.png"):
        a = cv2.imread(str(saved / "3dpw_vid1" / name))
        b = cv2.imread(str(rebuilt / "3dpw_vid1" / name))
        frame = cv2.imread(str(evaluated["images"] / "3dpw_vid1" / name.replace(".png", ".jpg")))
        assert a.shape == (120, 160, 3) and (np.abs(a.astype(int) - frame).max(-1) > 40).sum() > 50  # meshes drawn
        assert (np.abs(a.astype(int) - b).max(-1) <= 3).mean() > 0.99


def _write_predictions(path, **arrays):
    with zipfile.ZipFile(path, "w") as zf:
        for name, value in arrays.items():
            with zf.open(f"{name}.npy", "w") as fh:
                np.lib.format.write_array(fh, np.asarray(value), allow_pickle=False)


def test_body_from_predictions_lands_on_its_silhouette(tmp_path, smpl_body, smpl_dir):
    """A body posed and projected by the model's own crop camera into the evaluation crop of a box,
    mapped back to the frame through the crop's inverse, is where ``maed render`` draws it."""
    from maed.body.geometry import axis_angle_to_rotmat, weak_perspective_projection
    from maed.data.transforms import BASE_SCALE, crop_affine
    from maed.render.predictions import render_predictions

    width, height = 320, 240
    rng = np.random.default_rng(0)
    pose = np.zeros((2, 72), np.float32)
    pose[:, 0] = np.pi  # upright in the camera frame (y down), as predictions are
    pose[:, 3:] = rng.normal(scale=0.15, size=(2, 69))
    betas = rng.normal(scale=0.5, size=(2, 10)).astype(np.float32)
    crop_cam = np.array([[0.85, 0.02, 0.1], [1.0, -0.05, 0.0]], np.float32)
    boxes = np.array([[110.0, 120.0, 150.0, 150.0], [250.0, 100.0, 120.0, 120.0]], np.float32)
    with torch.no_grad():
        verts = smpl_body(axis_angle_to_rotmat(torch.from_numpy(pose).reshape(2, 24, 3)), torch.from_numpy(betas))
        ndc = weak_perspective_projection(verts.verts, torch.from_numpy(crop_cam)).numpy().astype(np.float64)
    faces = smpl_body.faces.numpy()

    image = np.zeros((height, width, 3), np.uint8)
    truth = np.zeros((height, width), np.uint8)
    for k in range(2):  # two people in one frame
        crop_px = (ndc[k] + 1.0) * 112.0
        to_crop = np.vstack([crop_affine(boxes[k], scale=BASE_SCALE), [0, 0, 1]])
        frame_px = (np.c_[crop_px, np.ones(len(crop_px))] @ np.linalg.inv(to_crop).T)[:, :2] - 0.5
        for tri in np.round(frame_px * 16).astype(np.int32)[faces]:
            cv2.fillConvexPoly(truth, tri, 1, shift=4)
    image[truth > 0] = (255, 0, 0)
    (tmp_path / "images" / "seq").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "images" / "seq" / "frame_0001.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))

    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    _write_predictions(
        eval_dir / "predictions.npz",
        theta=np.c_[crop_cam, pose, betas],
        boxes=boxes,
        paths=np.array(["/elsewhere/dataset/seq/frame_0001.png"] * 2),  # as stored on another machine
        instance_id=np.array(["seq_0/frame_0001", "seq_1/frame_0001"]),
        sequence=np.array(["seq_0", "seq_1"]),
    )
    (eval_dir / "metrics.json").write_text(json.dumps({"dataset": "3dpw", "run": {"model": {"BODY_MODEL": "smpl"}}}))
    report = render_predictions(
        eval_dir,
        tmp_path / "out",
        root=tmp_path / "images",
        body_model_dir=smpl_dir,
        fmt="png",
        antialias=False,
        progress=False,
    )
    assert report.frames == 1 and report.written == [tmp_path / "out" / "seq"]
    out = cv2.cvtColor(cv2.imread(str(tmp_path / "out" / "seq" / "frame_0001.png")), cv2.COLOR_BGR2RGB)
    drawn = (out != image).any(-1)
    truth = truth > 0
    assert truth.sum() > 2000
    assert (drawn & truth).sum() / (drawn | truth).sum() > 0.9
    # both people, in two colours
    colors = {tuple(c) for c in out[drawn].reshape(-1, 3) // 64}
    assert len(colors) >= 2


@pytest.mark.parametrize("recorded", [True, False])
def test_anny_predictions_on_another_rig_are_drawn_with_that_rig(recorded, tmp_path):
    """Meshes rebuilt from theta use the evaluation's rig (metrics.json's MODEL.BODY_RIG, else the rig whose
    pose width theta has): cmu_mb's 31 bones, not Anny's default 104."""
    from maed.body.layout import pose_layout
    from maed.render.predictions import load_predictions, render_predictions

    layout = pose_layout("anny", "cmu_mb")
    assert layout.theta_dim == 3 + 3 * 31 + 6
    (tmp_path / "images" / "seq").mkdir(parents=True)
    image = np.zeros((96, 128, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "images" / "seq" / "000000.jpg"), image)
    theta = np.zeros((1, layout.theta_dim), np.float32)
    theta[0, :4] = [0.9, 0.0, 0.0, np.pi]  # camera; the root turned upright in the camera frame
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    _write_predictions(
        eval_dir / "predictions.npz",
        theta=theta,
        boxes=np.array([[64, 48, 80, 80]], np.float32),
        paths=np.array(["seq/000000.jpg"]),
        instance_id=np.array(["seq/000000"]),
        sequence=np.array(["seq"]),
    )
    if recorded:
        record = {"run": {"model": {"BODY_MODEL": "anny", "BODY_RIG": "cmu_mb"}}}
        (eval_dir / "metrics.json").write_text(json.dumps(record))
        assert load_predictions(eval_dir).body_rig == "cmu_mb"
    report = render_predictions(eval_dir, tmp_path / "out", root=tmp_path / "images", fmt="png", progress=False)
    assert report.frames == 1
    drawn = cv2.imread(str(tmp_path / "out" / "seq" / "000000.png"))
    assert (drawn != 0).any(-1).sum() > 200  # the body was drawn over the black frame


@pytest.fixture
def small_eval(tmp_path):
    """A minimal, valid predictions file for the error tests (one 3DPW-style frame)."""
    (tmp_path / "images" / "seq").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "images" / "seq" / "000000.jpg"), np.zeros((48, 64, 3), np.uint8))
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    theta = np.zeros((1, 85), np.float32)
    theta[0, 0] = 1.0
    _write_predictions(
        eval_dir / "predictions.npz",
        theta=theta,
        boxes=np.array([[32, 24, 40, 40]], np.float32),
        paths=np.array(["seq/000000.jpg"]),
        instance_id=np.array(["seq/000000"]),
        sequence=np.array(["seq"]),
    )
    return eval_dir


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("missing_dir", "not found; expected the --out directory of `maed eval`"),
        ("no_predictions", "holds no predictions.npz"),
        ("bad_root", "not found under --root"),
        ("out_is_file", "exists and is not a directory"),
        ("sequence", "--sequence nobody: no such video or person"),
        ("theta_shape", "theta has 84 columns"),
        ("not_npz", "not a readable predictions file"),
        ("no_smpl", "SMPL body model: "),
        ("max_frames", "--max-frames 0"),
    ],
)
def test_bad_input_is_one_clear_error(change, message, small_eval, smpl_dir, tmp_path, capsys):
    eval_dir, root, out, extra = small_eval, tmp_path / "images", tmp_path / "out", []
    body_dir = smpl_dir
    if change == "missing_dir":
        eval_dir = tmp_path / "nothing_here"
    elif change == "no_predictions":
        (eval_dir / "predictions.npz").unlink()
    elif change == "bad_root":
        root = tmp_path / "eval"
    elif change == "out_is_file":
        out.write_text("a file")
    elif change == "sequence":
        extra = ["--sequence", "nobody"]
    elif change == "theta_shape":
        with np.load(eval_dir / "predictions.npz") as p:
            arrays = {k: p[k] for k in p.files}
        arrays["theta"] = arrays["theta"][:, :84]
        _write_predictions(eval_dir / "predictions.npz", **arrays)
        extra = ["--body-model", "smpl"]
    elif change == "not_npz":
        (eval_dir / "predictions.npz").write_bytes(b"not a zip file")
    elif change == "no_smpl":
        body_dir = tmp_path / "empty"
        body_dir.mkdir()
    elif change == "max_frames":
        extra = ["--max-frames", "0"]
    args = ["render", str(eval_dir), "--root", str(root), "--out", str(out), "--body-model-dir", str(body_dir)]
    assert main([*args, "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("maed render: error: ") and message in err
    assert "Traceback" not in err
    if change != "out_is_file":
        assert not out.exists() or not any(out.iterdir())


def test_small_eval_renders(small_eval, smpl_dir, tmp_path):
    """The error fixture itself is valid: the same command without the change succeeds."""
    out = tmp_path / "out"
    args = ["render", str(small_eval), "--root", str(tmp_path / "images"), "--out", str(out)]
    assert main([*args, "--body-model-dir", str(smpl_dir), "--no-progress", "--format", "png"]) == 0
    assert (out / "seq" / "000000.png").is_file()


def test_png_rerun_draws_only_missing_frames(small_eval, smpl_dir, tmp_path):
    from maed.render.predictions import render_predictions

    kw = dict(root=tmp_path / "images", body_model_dir=smpl_dir, fmt="png", antialias=False, progress=False)
    first = render_predictions(small_eval, tmp_path / "out", **kw)
    assert first.frames == 1
    png = tmp_path / "out" / "seq" / "000000.png"
    stamp = png.stat().st_mtime_ns
    assert render_predictions(small_eval, tmp_path / "out", **kw).frames == 0 and png.stat().st_mtime_ns == stamp
    png.unlink()
    assert render_predictions(small_eval, tmp_path / "out", **kw).frames == 1 and png.is_file()


def test_leftovers_of_a_killed_run_are_removed(small_eval, smpl_dir, tmp_path):
    import os

    from maed.render.predictions import render_predictions

    out = tmp_path / "out"
    (out / "seq").mkdir(parents=True)
    stale = [out / ".seq.mp4.k1lled00.tmp", out / "seq" / ".000000.png.k1lled00.tmp"]
    for f in stale:
        f.write_bytes(b"half a file")
        os.utime(f, (1e9, 1e9))  # written long before this process started, by a process that is gone
    kept = out / "notes.txt"
    kept.write_text("not ours")
    render_predictions(small_eval, out, root=tmp_path / "images", body_model_dir=smpl_dir, fmt="png", progress=False)
    assert not any(f.exists() for f in stale) and kept.is_file() and (out / "seq" / "000000.png").is_file()


class _Payload:
    """Unpickles as ``touch <marker>``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch '{self.marker}'",)


@pytest.mark.parametrize("kind", ["hostile", "truncated", "random", "empty"])
def test_damaged_predictions_file_is_one_error_and_runs_nothing(kind, small_eval, smpl_dir, tmp_path, capsys):
    path = small_eval / "predictions.npz"
    marker = tmp_path / "pwned"
    if kind == "hostile":  # a pickled object member, as np.savez(allow_pickle=True) would write it
        with np.load(path) as p:
            arrays = {k: p[k] for k in p.files}
        with zipfile.ZipFile(path, "w") as zf:
            for name, value in {**arrays, "sequence": np.array([_Payload(marker)], dtype=object)}.items():
                with zf.open(f"{name}.npy", "w") as fh:
                    np.lib.format.write_array(fh, value, allow_pickle=True)
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    else:
        path.write_bytes(b"")
    out = tmp_path / "out"
    args = ["render", str(small_eval), "--root", str(tmp_path / "images"), "--out", str(out)]
    assert main([*args, "--body-model-dir", str(smpl_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("maed render: error: ") and str(path) in err and err.count("\n") == 1
    assert not marker.exists() and not out.exists()
