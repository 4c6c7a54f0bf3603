"""Per-track inference: windows cut as the evaluation cuts them, and the demo's joints equal ``maed eval``'s."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from maed.demo.infer import ModelPredictor, plan_windows
from maed.demo.track import Track

FRAMES = 24  # two 16-frame windows (TINY's EVAL.SAMPLE_POOL), the second reflect-padded


def test_windows_cover_every_frame_once_with_reflect_padding():
    from maed.data.datasets import reflect_indices

    tracks = [
        Track(1, np.arange(5, 305), np.zeros((300, 4)), np.ones(300, bool)),
        Track(2, np.arange(0, 40), np.zeros((40, 4)), np.ones(40, bool)),
    ]
    windows = plan_windows(tracks, 128)
    assert [w.track for w in windows] == [0, 0, 0, 1]
    real = np.concatenate([w.positions[w.real] for w in windows[:3]])
    assert real.tolist() == list(range(300))  # every frame predicted exactly once, in order
    assert windows[2].real.sum() == 44 and windows[2].positions[44:47].tolist() == [298, 297, 296]
    np.testing.assert_array_equal(windows[2].positions, reflect_indices(300, 384)[256:])
    np.testing.assert_array_equal(windows[3].positions, reflect_indices(40, 128))


class FrameValueModel(torch.nn.Module):
    """Outputs, per frame, the crop's mean pixel as its camera scale: checks cropping order and scatter."""

    def __init__(self, body_model):
        super().__init__()
        self.body_model = body_model

    def forward(self, images, J_regressor=None):
        N, T = images.shape[:2]
        v = images.mean(dim=(2, 3, 4))  # (N, T)
        J = self.body_model.num_joints
        theta = torch.zeros(N, T, 3 + 3 * J + self.body_model.num_betas)
        theta[..., 0] = v
        rotmat = torch.eye(3).expand(N, T, J, 3, 3)
        return {"theta": theta, "rotmat": rotmat}


def test_predictor_streams_frames_and_puts_each_prediction_on_its_frame(smpl_body):
    rng = np.random.default_rng(0)
    frames = [np.full((60, 80, 3), rng.integers(0, 255), np.uint8) for _ in range(150)]
    tracks = [
        Track(1, np.arange(10, 150), np.tile([40.0, 30, 20, 20], (140, 1)), np.ones(140, bool)),
        Track(4, np.arange(0, 20), np.tile([20.0, 20, 10, 10], (20, 1)), np.ones(20, bool)),
    ]
    predictor = ModelPredictor(FrameValueModel(smpl_body), crop_width=16, crop_height=16, batch_size=2)
    seen = []

    def stream():
        for i, f in enumerate(frames):
            seen.append(i)
            yield i, f

    out = predictor.predict(tracks, stream())
    assert seen == list(range(150))  # one pass
    from maed.data.transforms import normalize_images

    for t in tracks:
        p = out[t.track_id]
        assert p.cam.shape == (len(t), 3) and p.rotmat.shape == (len(t), 24, 3, 3) and p.betas.shape == (len(t), 10)
        expected = [normalize_images(frames[f][None, :16, :16]).mean().item() for f in t.frames]
        np.testing.assert_allclose(p.cam[:, 0], expected, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def eval_and_demo(tmp_path_factory, smpl_dir):
    """``maed eval`` and ``maed demo --boxes`` on the same generated 3DPW-format sequence and model."""
    from demo_fixtures import TINY

    from maed.config import load_config
    from maed.demo.pipeline import DemoOptions, run_demo
    from maed.eval.protocol import EvalSettings
    from maed.eval.run import EvalJob, run_evaluation
    from maed.models import build_model
    from maed.models.checkpoint import make_checkpoint
    from maed.testing.datasets import write_synthetic_dataset

    root = tmp_path_factory.mktemp("demo_eval")
    data = write_synthetic_dataset(
        root / "data", name="3dpw", split="test", num_videos=1, frames_per_video=FRAMES, image_size=(320, 240), seed=3
    )
    cfg = load_config("stage2", TINY)
    torch.manual_seed(1)
    model = build_model(cfg, body_model_dir=smpl_dir)
    ckpt = root / "ckpt.pt"
    torch.save(make_checkpoint(model, config=cfg.to_dict()), ckpt)
    job = EvalJob(
        checkpoint=ckpt,
        config=cfg,
        out_dir=root / "eval",
        dataset="3dpw",
        split="test",
        db_dir=data.db_path.parent,
        data_root=data.dataset_root,
        body_model_dir=smpl_dir,
        settings=EvalSettings(batch_size=1, seqlen=cfg.EVAL.SEQLEN, sample_pool=cfg.EVAL.SAMPLE_POOL),
        num_workers=0,
        width=32,
        height=32,
        progress=False,
        save_verts=True,
        use_crop_cache=False,
    )
    run_evaluation(job)
    db = data.db
    boxes = {"box_format": "cxcywh", "frames": [
        {"frame": int(f), "boxes": [[float(v) for v in db["bbox"][i]]], "track_ids": [0]}
        for i, f in enumerate(db["frame_id"])
    ]}  # fmt: skip
    (root / "boxes.json").write_text(json.dumps(boxes))
    summary = run_demo(
        data.dataset_root / "3dpw_vid0",
        DemoOptions(
            out=root / "demo",
            checkpoint=ckpt,
            body_model_dir=smpl_dir,
            boxes=root / "boxes.json",
            precision="fp32",  # as maed eval by default (auto would be bf16 on a CPU with bf16 instructions)
            save_verts=True,
            render=False,
            export=False,
            progress=False,
            device="cpu",
        ),
        log=lambda m: None,
    )
    return root, summary, db


def test_demo_on_a_dataset_sequence_gives_the_evaluation_joints(eval_and_demo, smpl_body):
    root, summary, db = eval_and_demo
    assert summary["detector"]["tier"] == "boxes" and summary["num_people"] == 1 and summary["frames"] == FRAMES
    with np.load(root / "eval" / "predictions.npz") as z:
        ids = [int(i.rsplit("/", 1)[1]) for i in z["instance_id"]]
        first = {f: k for k, f in reversed(list(enumerate(ids)))}  # eval counts some padded frames twice
        rows = [first[f] for f in range(FRAMES)]
        eval_theta, eval_verts = z["theta"][rows], z["verts"][rows]
    with np.load(root / "demo" / "tracks.npz", allow_pickle=False) as z:
        assert z["person_ids"].tolist() == [0]
        np.testing.assert_array_equal(z["person_0/frame_ids"], np.arange(FRAMES))
        np.testing.assert_allclose(z["person_0/boxes"], db["bbox"], rtol=1e-6)  # user boxes used unchanged
        verts, cam, pose, betas = z["person_0/verts"], z["person_0/cam_crop"], z["person_0/pose"], z["person_0/betas"]
    # the joints maed eval scores (the H36M regressor on the mesh), then the mesh and theta themselves
    reg = smpl_body.J_regressor_h36m.numpy()
    np.testing.assert_allclose(reg @ verts, reg @ eval_verts, atol=2e-5)
    np.testing.assert_allclose(verts, eval_verts, atol=2e-5)
    np.testing.assert_allclose(cam, eval_theta[:, :3], atol=1e-5)
    np.testing.assert_allclose(pose, eval_theta[:, 3:75], atol=1e-4)
    np.testing.assert_allclose(betas, eval_theta[:, 75:], atol=1e-5)
    assert np.abs(np.diff(verts, axis=0)).max() > 1e-4  # per-frame predictions, not one copy


class TurningModel(FrameValueModel):
    """Rotation about z by an angle that grows with the crop's brightness (so frames differ)."""

    def forward(self, images, J_regressor=None):
        out = super().forward(images)
        angle = out["theta"][..., 0]  # (N, T), radians
        c, s = torch.cos(angle), torch.sin(angle)
        R = torch.zeros(*angle.shape, 3, 3)
        R[..., 0, 0], R[..., 0, 1], R[..., 1, 0], R[..., 1, 1], R[..., 2, 2] = c, -s, s, c, 1.0
        out["rotmat"] = R[:, :, None].expand(-1, -1, self.body_model.num_joints, 3, 3)
        return out


@pytest.mark.parametrize("frame_step", [2, 1])
def test_predictions_interpolated_or_not_are_rotations(smpl_body, frame_step):
    frames = [np.full((40, 40, 3), 100 + 4 * i, np.uint8) for i in range(20)]
    track = Track(1, np.arange(20), np.tile([20.0, 20, 16, 16], (20, 1)), np.ones(20, bool))
    predictor = ModelPredictor(TurningModel(smpl_body), crop_width=16, crop_height=16, seqlen=4, sample_pool=16,
                               frame_step=frame_step)  # fmt: skip
    R = predictor.predict([track], enumerate(frames))[1].rotmat
    assert R.shape == (20, 24, 3, 3)
    np.testing.assert_allclose(R @ np.swapaxes(R, -1, -2), np.broadcast_to(np.eye(3), R.shape), atol=1e-5)
    angle = np.unwrap(np.arctan2(R[:, 0, 1, 0], R[:, 0, 0, 0]))
    assert np.all(np.diff(angle) > 0)  # brighter frames turn further, interpolated ones in between
