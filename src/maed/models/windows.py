"""A MAED model run over whole windows, the original protocol's clip scheme (ORIGINAL.md §7).

A window of ``sample_pool`` frames (128) is predicted as ``L // seqlen`` interleaved ``seqlen``-frame clips
(frames ``i::L // seqlen``, stride 8 for 128 / 16), optionally on every ``frame_step``-th frame only, with
the rest linearly interpolated back. Evaluation (``maed.eval``, and so training's validation) and the demo
(``maed.demo.infer``) both predict through :func:`predict_windows`, so a dataset sequence run through the
demo with its own boxes gives the evaluation's numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from maed.config import EvalConfig, check_frame_step


def interpolate_frames(seq: np.ndarray, orig_len: int) -> np.ndarray:
    """Linear interpolation of N x L x ... predictions back to N x orig_len x ... (the original's knots:
    the L predictions sit at (1..L)/L, the output frames at linspace(0, 1, orig_len); ends extrapolated)."""
    L = seq.shape[1]
    if L == orig_len:
        return seq
    from scipy.interpolate import interp1d  # about 0.4 s to import, needed only with frame_step > 1

    knots = np.arange(1, L + 1, dtype=np.float64) / L
    f = interp1d(knots, seq, axis=1, fill_value="extrapolate")
    return f(np.linspace(0.0, 1.0, num=orig_len, endpoint=True)).astype(seq.dtype)


@torch.inference_mode()
def predict_windows(
    model: torch.nn.Module,
    images: torch.Tensor,
    *,
    seqlen: int = EvalConfig.SEQLEN,
    frame_step: int = EvalConfig.INTERPOLATION,
    J_regressor: torch.Tensor | None = None,
    device: str | torch.device | None = None,
    keys: Sequence[str] = ("theta", "verts", "kp_3d", "kp_2d", "rotmat"),
) -> dict[str, np.ndarray]:
    """The original protocol's clip scheme: predictions for every frame of whole windows.

    images: N x T x 3 x H x W crops, or N x T x K x C landmarks for a keypoint model (T = the window, 128 in
    the protocol). Every ``frame_step``-th frame is
    kept (L frames, a multiple of ``seqlen``); the model sees ``L // seqlen`` interleaved clips (frames
    ``i::L // seqlen``, i.e. stride 8 for 128 / 16), and with ``frame_step > 1`` the predictions are linearly
    interpolated back to T frames. Returns the model outputs named in ``keys`` (``MAEDOutput`` fields), as
    float32 numpy arrays N x T x ..., in frame order.
    """
    device = torch.device(device) if device is not None else images.device
    N, T = images.shape[:2]
    sub = images[:, ::frame_step]
    L = check_frame_step(T, seqlen, frame_step)
    freq = L // seqlen
    outs: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for i in range(freq):
        clip = sub[:, i::freq].to(device, non_blocking=True)  # (N, seqlen, 3, H, W)
        out = model(clip, J_regressor=J_regressor)
        for k in keys:
            outs[k].append(out[k].float().cpu().numpy())
    result = {}
    for key, parts in outs.items():
        # clip i holds frames i, i + freq, ...: stacking on axis 2 and flattening restores the order
        stacked = np.stack(parts, axis=2)  # (N, seqlen, freq, ...)
        merged = stacked.reshape(N, L, *stacked.shape[3:])
        result[key] = interpolate_frames(merged, T) if L != T else merged
    return result
