"""The shipped keypoint model through the real pipeline of ``maed eval``: BlazePose on rendered frames in the
dataset's boxes, then the model; it must beat the mean-pose baseline on a test split it never saw (held-out
shapes and backgrounds, a seed of its own)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("anny")
pytest.importorskip("onnxruntime")

from maed.cli import main  # noqa: E402

#: a small `maed synth` set: 40 sequences give four test sequences (10 % test) of up to three people
SPLIT = dict(sequences=40, frames=16, seed=11, width=640, height=480)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    from maed.synth.generator import generate

    out = tmp_path_factory.mktemp("shipped_eval") / "synth"
    generate(out, **SPLIT, workers=1, progress=False)
    return out


def _eval(data, out, *extra) -> dict:
    args = ["eval", "--dataset", "synth", "--split", "test", "--db-dir", str(data), "--data-root", str(data),
            "--out", str(out), "--no-progress", *extra]  # fmt: skip
    assert main(args) == 0
    return json.loads((out / "metrics.json").read_text())  # the primary protocol's numbers at the top


def test_the_shipped_model_beats_the_mean_pose_baseline_on_rendered_test_frames(rendered, tmp_path):
    from maed.paths import default_checkpoint

    model = _eval(rendered, tmp_path / "model", "--checkpoint", str(default_checkpoint()))
    baseline = _eval(
        rendered, tmp_path / "baseline", "--baseline", "mean-pose", "--config", "kp_anny",
        "--train-db", str(rendered / "synth_train_db.pt"),
    )  # fmt: skip
    assert model["num_frames"] == baseline["num_frames"] > 0
    assert model["pa-mpjpe"] < baseline["pa-mpjpe"], (model, baseline)


def test_the_landmark_network_is_the_users_choice_and_recorded(rendered, tmp_path):
    from maed.paths import default_checkpoint

    ckpt = ["--checkpoint", str(default_checkpoint())]
    full = _eval(rendered, tmp_path / "full", *ckpt)
    lite = _eval(rendered, tmp_path / "lite", *ckpt, "--keypoint-model", "lite")
    assert full["run"]["inputs"]["keypoint_model"] == "full" and lite["run"]["inputs"]["keypoint_model"] == "lite"
    assert lite["num_frames"] == full["num_frames"] and lite["pa-mpjpe"] != full["pa-mpjpe"]  # other landmarks
    with pytest.raises(SystemExit):  # argparse: not a variant
        main(["eval", "--keypoint-model", "huge", "--out", str(tmp_path / "x"), *ckpt])
