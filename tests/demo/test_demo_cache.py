"""The stage cache: what reruns when the input, the detector settings, the tracking settings or the model change."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

from maed.demo.cache import StageCache
from maed.demo.infer import ModelPredictor
from maed.demo.pipeline import DemoOptions, run_demo


class CropMeanModel(torch.nn.Module):
    """A stand-in network: the crop's mean pixel as camera scale, identity pose (cheap, and it sees the crops)."""

    def __init__(self, body_model):
        super().__init__()
        self.body_model = body_model

    def forward(self, images, J_regressor=None):
        N, T = images.shape[:2]
        J, S = self.body_model.num_joints, self.body_model.num_betas
        theta = torch.zeros(N, T, 3 + 3 * J + S)
        theta[..., 0] = 1.0 + images.mean(dim=(2, 3, 4))
        return {"theta": theta, "rotmat": torch.eye(3).expand(N, T, J, 3, 3)}


def _predictor(body, name):
    return ModelPredictor(CropMeanModel(body), crop_width=32, crop_height=32, seqlen=4, sample_pool=16,
                          signature={"model": name})  # fmt: skip


def _stages(out):
    return {k: v["cached"] for k, v in json.loads((out / "summary.json").read_text())["stages"].items()
            if k in ("detect", "track", "infer")}  # fmt: skip


def test_changes_rerun_exactly_the_stages_they_affect(tmp_path, person_clip, smpl_body):
    clip = tmp_path / "clip.mp4"
    shutil.copy(person_clip.path, clip)
    out = tmp_path / "out"
    opts = dict(out=out, min_track_length=10, render=False, export=False, progress=False)
    quiet = {"log": lambda m: None}
    run_demo(clip, DemoOptions(**opts), predictor=_predictor(smpl_body, "a"), **quiet)
    assert _stages(out) == {"detect": False, "track": False, "infer": False}
    with np.load(out / "tracks.npz") as z:
        first = {k: z[k] for k in z.files}

    run_demo(clip, DemoOptions(**opts, smooth=True), predictor=_predictor(smpl_body, "a"), **quiet)
    assert _stages(out) == {"detect": True, "track": True, "infer": True}

    run_demo(clip, DemoOptions(**opts), predictor=_predictor(smpl_body, "b"), **quiet)  # another model
    assert _stages(out) == {"detect": True, "track": True, "infer": False}
    with np.load(out / "tracks.npz") as z:  # same model function: the same numbers came out again
        np.testing.assert_allclose(z["person_1/cam_crop"], first["person_1/cam_crop"], rtol=1e-6)

    run_demo(clip, DemoOptions(**{**opts, "min_track_length": 12}), predictor=_predictor(smpl_body, "b"), **quiet)
    assert _stages(out) == {"detect": True, "track": False, "infer": False}

    run_demo(clip, DemoOptions(**opts, detector_threshold=0.4), predictor=_predictor(smpl_body, "b"), **quiet)
    assert _stages(out) == {"detect": False, "track": False, "infer": False}

    os.utime(clip, ns=(10**18, 10**18))  # the input changed (its modification time)
    run_demo(clip, DemoOptions(**{**opts, "detector_threshold": 0.4}), predictor=_predictor(smpl_body, "b"), **quiet)
    assert _stages(out) == {"detect": False, "track": False, "infer": False}


def test_a_damaged_or_foreign_cache_file_is_rebuilt(tmp_path):
    cache = StageCache(tmp_path)
    sig = {"input": "x", "n": 1}
    cache.save("detections", sig, {"a": np.arange(3)})
    assert cache.load("detections", sig)["a"].tolist() == [0, 1, 2]
    assert cache.load("detections", {**sig, "n": 2}) is None
    (tmp_path / "cache" / "detections.npz").write_bytes(b"garbage")
    assert cache.load("detections", sig) is None


def test_model_signature_follows_the_checkpoint_content(tmp_path, tiny_checkpoint, smpl_dir):
    from maed.demo.model import resolve_model

    copy = tmp_path / "tiny.pt"
    shutil.copy(tiny_checkpoint, copy)
    a = resolve_model(DemoOptions(checkpoint=copy, body_model_dir=smpl_dir, device="cpu")).signature()
    ckpt = torch.load(copy, weights_only=True)
    ckpt["model"]["decoder.fc1.bias"] += 1.0
    torch.save(ckpt, copy)
    b = resolve_model(DemoOptions(checkpoint=copy, body_model_dir=smpl_dir, device="cpu")).signature()
    assert a["checkpoint"] == b["checkpoint"] and a["checkpoint_sha256"] != b["checkpoint_sha256"]
    assert a["model"] == b["model"] and a["crop"] == [32, 32] and a["sample_pool"] == 16


def test_each_cached_stage_is_chained_to_the_one_before(tmp_path):
    """load_or_compute chains signatures: a changed or inserted stage upstream invalidates those below it."""
    calls = []

    def stages(cache_dir, names_and_settings):
        cache = StageCache(cache_dir)
        cached = {}
        for name, settings in names_and_settings:

            def compute(name=name):
                calls.append(name)
                return np.arange(3)

            _, cached[name] = cache.load_or_compute(
                name, settings, compute, to_arrays=lambda a: {"a": a}, from_arrays=lambda z: z["a"]
            )
        return cached

    plain = [("detections", {"t": 1}), ("tracks", {"iou": 0.3}), ("predictions", {"m": "a"})]
    assert stages(tmp_path, plain) == {"detections": False, "tracks": False, "predictions": False}
    assert stages(tmp_path, plain) == {"detections": True, "tracks": True, "predictions": True}
    changed = [("detections", {"t": 2}), *plain[1:]]  # the first stage's settings only
    assert stages(tmp_path, changed) == {"detections": False, "tracks": False, "predictions": False}
    inserted = [*changed[:2], ("keypoints", {"k": 1}), changed[2]]  # a new stage between track and infer
    assert stages(tmp_path, inserted) == {"detections": True, "tracks": True, "keypoints": False, "predictions": False}
    assert calls.count("predictions") == 3


@pytest.fixture(scope="module")
def anny_cmu_mb_run(tmp_path_factory, person_clip):
    """A tiny checkpoint of an Anny model on the 31-bone cmu_mb rig, and a first demo run of it (no overlay)."""
    from demo_fixtures import TINY

    from maed.config import load_config
    from maed.models import build_model
    from maed.models.checkpoint import make_checkpoint

    root = tmp_path_factory.mktemp("anny_cmu_mb")
    cfg = load_config("stage2", [*TINY, "MODEL.BODY_MODEL=anny", "MODEL.BODY_RIG=cmu_mb"])
    torch.manual_seed(0)
    checkpoint = root / "anny_cmu_mb.pt"
    torch.save(make_checkpoint(build_model(cfg), config=cfg.to_dict()), checkpoint)
    opts = dict(checkpoint=checkpoint, device="cpu", min_track_length=10, render=False, progress=False)
    summary = run_demo(person_clip.path, DemoOptions(out=root / "out", **opts, export=False), log=lambda m: None)
    return root / "out", opts, summary


def test_a_rerun_of_an_anny_model_on_another_rig_rebuilds_that_rig(anny_cmu_mb_run, person_clip, tmp_path):
    """Cached predictions are turned into meshes by the body model alone, built from the checkpoint's config:
    it must be the config's rig (cmu_mb: 31 bones), not Anny's default (104)."""
    first_out, opts, _ = anny_cmu_mb_run
    out = tmp_path / "out"
    shutil.copytree(first_out, out)
    with np.load(out / "tracks.npz") as z:
        first = {k: z[k] for k in z.files}
    summary = run_demo(person_clip.path, DemoOptions(out=out, **opts, smooth=True), log=lambda m: None)
    assert summary["stages"]["infer"]["cached"] and summary["num_people"] == 1
    with np.load(out / "tracks.npz") as z:
        pid = int(z["person_ids"][0])
        rotmat, joints = z[f"person_{pid}/rotmat"], z[f"person_{pid}/joints3d"]
    assert rotmat.shape[1:] == (31, 3, 3) and joints.shape[1:] == first[f"person_{pid}/joints3d"].shape[1:]
    assert (out / f"person_{pid}.bvh").read_text().count("JOINT") == 30  # the 31-bone skeleton, root apart


def test_the_summary_describes_the_model_the_outputs_came_from(anny_cmu_mb_run):
    """summary.json's model block has the sizes tracks.npz holds, and names no SMPL folder for Anny."""
    out, _, summary = anny_cmu_mb_run
    with np.load(out / "tracks.npz") as z:
        pid = int(z["person_ids"][0])
        joints, rotmat = z[f"person_{pid}/joints3d"], z[f"person_{pid}/rotmat"]
    model = summary["model"]
    assert model["body_model"] == "anny" and model["rig"] == "cmu_mb"
    assert model["joints"] == joints.shape[1] == 49 and model["kinematic_joints"] == rotmat.shape[1] == 31
    assert model["body_model_dir"] is None  # Anny reads no files from it
    assert model["vertices"] == 13718


def test_the_inference_bar_advances_once_per_forward_pass(tmp_path, person_clip, smpl_body, monkeypatch):
    """One progress bar over the tracks' frames, one step per forward pass (not per decoded frame, which runs
    ahead of the model and then waits)."""
    from maed.demo.context import DemoRun

    bars = {}

    class Bar:
        def __init__(self, desc, total):
            self.total, self.updates = total, []
            bars[desc] = self

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n=1):
            self.updates.append(n)

    monkeypatch.setattr(DemoRun, "bar", lambda self, desc, total: Bar(desc, total))
    predictor = _predictor(smpl_body, "bar")
    predictor.batch_size = 1
    forwards = []
    run_batch = predictor._run

    def counting(pending, *args, **kwargs):
        forwards.append(len(pending))
        return run_batch(pending, *args, **kwargs)

    predictor._run = counting
    options = DemoOptions(out=tmp_path / "out", min_track_length=10, render=False, export=False, progress=True)
    summary = run_demo(person_clip.path, options, predictor=predictor, log=lambda m: None)
    frames = sum(p["frames"] for p in summary["people"])
    bar = bars["infer"]
    assert len(forwards) >= 2 and len(bar.updates) == len(forwards)  # windows of 16 frames, one per forward
    assert bar.total == frames == sum(bar.updates) and bar.updates[0] == 16
