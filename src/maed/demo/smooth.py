"""Temporal smoothing of predictions with the One-Euro filter (Casiez, Roussel and Vogel, CHI 2012).

The filter is a first-order low-pass whose cut-off rises with the signal's speed: ``cutoff = min_cutoff +
beta x |speed|``. Slow motion is smoothed strongly (jitter removed), fast motion follows with little lag.
The original is causal, for live input; the demo has the whole track, so it averages a forward and a
backward pass, whose lags cancel (zero phase): on a ramp the causal filter trails by ``1 / (2 pi cutoff)``
seconds, the two-pass one not at all.

Rotations are filtered in a continuous representation: the 6D one (the first two columns of the rotation
matrix, the decoder's own output), then projected back onto rotations by Gram-Schmidt. Axis-angle vectors
jump at 180 degrees and quaternions at their sign, so neither is filtered directly.
"""

from __future__ import annotations

import math

import numpy as np

#: defaults for ``--smooth``: cut-off at rest in Hz, speed coefficient (per unit/s), cut-off of the speed
MIN_CUTOFF = 1.0
BETA = 5.0
D_CUTOFF = 1.0


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def one_euro(
    x: np.ndarray,
    *,
    fps: float,
    min_cutoff: float = MIN_CUTOFF,
    beta: float = BETA,
    d_cutoff: float = D_CUTOFF,
    bidirectional: bool = True,
) -> np.ndarray:
    """Filter a T x ... signal sampled at ``fps`` frames per second; each element is filtered separately.

    min_cutoff (Hz): cut-off when still (lower = smoother). beta: how fast the cut-off grows with speed
    (per unit of the signal per second). d_cutoff (Hz): cut-off of the speed estimate. ``bidirectional``:
    the mean of a forward and a backward pass (no lag); False gives the original causal filter.
    Returns float64, T x ....
    """
    if bidirectional:
        kw = dict(fps=fps, min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff, bidirectional=False)
        x = np.asarray(x, dtype=np.float64)
        return 0.5 * (one_euro(x, **kw) + one_euro(x[::-1], **kw)[::-1])
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        return x.copy()
    dt = 1.0 / float(fps)
    out = np.empty_like(x)
    out[0] = x[0]
    dx_hat = np.zeros_like(x[0])
    a_d = _alpha(d_cutoff, dt)
    for t in range(1, len(x)):
        dx = (x[t] - out[t - 1]) / dt
        dx_hat = a_d * dx + (1.0 - a_d) * dx_hat
        a = _alpha(min_cutoff + beta * np.abs(dx_hat), dt)
        out[t] = a * x[t] + (1.0 - a) * out[t - 1]
    return out


def smooth_rotations(rotmat: np.ndarray, *, fps: float, **kw) -> np.ndarray:
    """One-Euro filter of T x J x 3 x 3 rotations in the 6D representation; returns rotations (float32)."""
    import torch

    from maed.body.geometry import rot6d_to_rotmat, rotmat_to_6d  # start-up: torch (~2 s) stays out of `maed --help`

    R = torch.as_tensor(np.asarray(rotmat, dtype=np.float64))
    six = rotmat_to_6d(R).numpy()  # (T, J, 6)
    filtered = one_euro(six, fps=fps, **kw)
    out = rot6d_to_rotmat(torch.from_numpy(filtered).reshape(-1, 6)).reshape(R.shape)
    return out.numpy().astype(np.float32)


def smooth_camera(cam: np.ndarray, *, fps: float, **kw) -> np.ndarray:
    """One-Euro filter of T x 3 crop cameras (s, tx, ty); returns float32."""
    return one_euro(cam, fps=fps, **kw).astype(np.float32)
