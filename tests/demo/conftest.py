"""Fixtures of the demo tests: a generated person clip with its ground truth, a tiny model checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # demo_fixtures.py beside this file

from demo_fixtures import TINY  # noqa: E402

CLIP_FRAMES = 24


@pytest.fixture(scope="session")
def anny_body():
    from maed.body import build_body_model

    return build_body_model("anny")


@pytest.fixture(scope="session")
def person_clip(tmp_path_factory, anny_body):
    """24 frames, 256 x 192, 25 fps: one person walking over a textured background (demo_fixtures.py)."""
    from demo_fixtures import render_person_clip

    return render_person_clip(tmp_path_factory.mktemp("clip") / "person.mp4", num_frames=CLIP_FRAMES, body=anny_body)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, smpl_dir):
    """A randomly initialised tiny MAED (config stored inside) over the SMPL stand-in."""
    import torch

    from maed.config import load_config
    from maed.models import build_model
    from maed.models.checkpoint import make_checkpoint

    cfg = load_config("stage2", [*TINY, f"PATHS.BODY_MODEL_DIR={smpl_dir}"])
    torch.manual_seed(0)
    model = build_model(cfg, body_model_dir=smpl_dir)
    path = tmp_path_factory.mktemp("tiny_model") / "tiny.pt"
    torch.save(make_checkpoint(model, config=cfg.to_dict()), path)
    return path
