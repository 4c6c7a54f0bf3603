"""The shipped default model, ``checkpoints/maed_kp_anny.pt``: its file, its checksum, its provenance, and
that it is what ``maed demo`` runs when given no model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("anny")

from maed.paths import DEFAULT_CHECKPOINT, default_checkpoint, project_root  # noqa: E402
from maed.utils.io import file_sha256  # noqa: E402


def _recorded_sha256() -> str:
    line = (project_root() / "checkpoints" / "maed_kp_anny.pt.sha256").read_text().split()
    assert line[1] == "maed_kp_anny.pt"
    return line[0]


def test_the_shipped_checkpoint_is_the_recorded_file_and_small():
    path = default_checkpoint()
    assert path == project_root() / DEFAULT_CHECKPOINT
    assert path.stat().st_size <= 10 * 1024 * 1024
    assert file_sha256(path) == _recorded_sha256()


def test_it_loads_as_the_keypoint_model_on_anny_and_says_how_it_was_made():
    from maed.models import load_model
    from maed.models.checkpoint import read_checkpoint

    model = load_model(default_checkpoint())
    assert model.input_kind == "keypoints" and model.encoder.num_keypoints == 33
    assert next(model.parameters()).dtype == torch.float32  # the faithful default: float32
    ckpt = read_checkpoint(default_checkpoint())
    assert ckpt["config"]["MODEL"]["BODY_MODEL"] == "anny" and ckpt["config"]["MODEL"]["BODY_RIG"] == "cmu_mb"
    prov = ckpt["provenance"]
    assert "maed train --config kp_anny" in prov["train_command"] and prov["seed"] == 0
    # it runs: a clip of landmarks in, a posed body out, hidden landmarks ignored
    from maed.models.keypoints import random_keypoints

    x = random_keypoints(1, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x)
    assert out["verts"].shape == (1, 16, model.body_model.num_vertices, 3)
    assert np.isfinite(out["verts"].numpy()).all()


def test_it_puts_the_seen_joints_of_whole_bodies_and_close_ups_where_they_are():
    """On generated clips of held-out shapes (exact landmarks), the projected limb joints that lie inside the box
    are near their true places, in whole-body views and in close-ups (the frame's bottom across the body, as
    in a webcam or a half-body photograph). A model trained without close-ups (the previous shipped one)
    scored a median of 18.5 % of the box on the close-ups here: it drew a small whole body inside the box."""
    from maed.models import load_model
    from maed.synth.keypoint_data import BankSpec, KeypointClips, MotionBank, ViewSettings
    from maed.synth.landmarks import LandmarkMap, shipped_map_path

    lmap = LandmarkMap.load(shipped_map_path("anny", "cmu_mb"))
    bank = MotionBank.build(BankSpec(count=4, frames=24, seed=5, split="test"), lmap, progress=False)
    model = load_model(default_checkpoint()).eval()
    limbs = list(range(25, 37))  # the 12 limb joints of the 49-joint layout
    for close_up, limit in ((1.0, 12.0), (0.0, 7.0)):
        view = ViewSettings(seqlen=16, flip=False, noise=False, truncate=0.0, close_up=close_up)
        clips = KeypointClips(bank, lmap, view)
        samples = [clips.sample(np.random.default_rng(i)) for i in range(12)]
        target = torch.stack([s["kp_2d"] for s in samples])[..., limbs, :2]
        with torch.no_grad():
            pred = model(torch.stack([s["keypoints"] for s in samples])).kp_2d[..., limbs, :]
        inside = (target.abs() < 1 / 1.3).all(-1)  # within the box (the crop is 1.3 x the box)
        error = (pred - target).norm(dim=-1)[inside] * 1.3 / 2 * 100  # percent of the box side
        assert inside.float().mean() > (0.4 if close_up else 0.9)
        assert float(error.median()) < limit, (close_up, float(error.median()))
