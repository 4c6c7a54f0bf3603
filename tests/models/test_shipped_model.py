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
