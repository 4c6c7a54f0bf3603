"""The clip scheme over whole windows (maed.models.windows), shared by evaluation and the demo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maed.errors import ConfigError
from maed.models.windows import check_frame_step, interpolate_frames, predict_windows


def test_frame_step_must_leave_whole_clips():
    assert check_frame_step(128, 16, 1) == 128
    assert check_frame_step(128, 16, 2) == 64
    assert check_frame_step(128, 16, 8) == 16
    with pytest.raises(ConfigError, match=r"--frame-step 3.*43 frames.*valid values here: 1, 2, 4, 8"):
        check_frame_step(128, 16, 3)


def test_interpolation_uses_the_original_knots():
    # predictions sit at (1..L)/L, outputs at linspace(0, 1, T): a linear signal in the knot is exact
    L, T = 4, 8
    knots = np.arange(1, L + 1) / L
    seq = (3.0 * knots - 1.0)[None, :, None]  # (1, L, 1)
    out = interpolate_frames(seq, T)
    np.testing.assert_allclose(out[0, :, 0], 3.0 * np.linspace(0, 1, T) - 1.0, atol=1e-12)
    assert interpolate_frames(seq, L) is seq


class FrameValueModel(torch.nn.Module):
    """theta[..., 0] is each input frame's first pixel; records the frames of every clip it is given."""

    def __init__(self):
        super().__init__()
        self.clips = []

    def forward(self, images, J_regressor=None):
        N, T = images.shape[:2]
        v = images[:, :, 0, 0, 0]  # (N, T)
        self.clips.append(v[0].tolist())
        return {"theta": v[..., None].expand(N, T, 3), "rotmat": v[..., None, None, None].expand(N, T, 2, 3, 3)}


def test_windows_are_seen_as_interleaved_clips_and_come_back_in_frame_order():
    images = torch.arange(32.0).reshape(1, 32, 1, 1, 1).expand(2, 32, 3, 2, 2).contiguous()
    model = FrameValueModel()
    out = predict_windows(model, images, seqlen=4, frame_step=1, keys=("theta", "rotmat"))
    assert model.clips[0] == [0, 8, 16, 24] and model.clips[5] == [5, 13, 21, 29] and len(model.clips) == 8
    assert set(out) == {"theta", "rotmat"} and out["rotmat"].shape == (2, 32, 2, 3, 3)
    np.testing.assert_array_equal(out["theta"][1, :, 0], np.arange(32))
    model.clips.clear()
    out = predict_windows(model, images, seqlen=4, frame_step=2, keys=("theta",))  # frames 0, 2, ..., 30
    assert len(model.clips) == 4 and model.clips[1] == [2, 10, 18, 26]
    assert out["theta"].shape == (2, 32, 3) and np.all(np.diff(out["theta"][0, :, 0]) > 0)
