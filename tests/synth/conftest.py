"""A tiny synthetic run shared by the synth tests (two sequences of four small frames)."""

from __future__ import annotations

import pytest

#: small frames keep the suite fast; people are then 60-130 pixels tall
SIZE = (256, 192)
RUN = dict(sequences=2, frames=4, seed=0, width=SIZE[0], height=SIZE[1])


@pytest.fixture(scope="session")
def run_args() -> dict:
    """The tiny run's arguments."""
    return dict(RUN)


@pytest.fixture(scope="session")
def synth_run(tmp_path_factory):
    """(output folder, summary) of ``generate`` on the tiny run, in this process."""
    from maed.synth.generator import generate

    out = tmp_path_factory.mktemp("synth") / "run"
    summary = generate(out, **RUN, workers=1, progress=False)
    return out, summary


@pytest.fixture(scope="session")
def cmu_kit():
    """The generator's body kit of the default rig (the same object the in-process runs use)."""
    from maed.synth.bodies import build_kit

    return build_kit("anny", "cmu_mb", None)
