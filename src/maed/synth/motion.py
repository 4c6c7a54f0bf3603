"""Smooth random motion inside per-bone angle limits, with root translation and turning on the ground.

A person's motion is one of two styles. ``wander``: keyframed random poses around a neutral pose, a slow
drift and turns. ``walk``: the same random upper-body motion with a walking gait on top (hips, knees and
ankles swing with the gait phase, arms counter-swing) and the root moving along its heading at the
walking speed. Keyframes are drawn inside the limits of ``maed.synth.limits`` and interpolated by a
uniform cubic B-spline, which stays inside the convex hull of its keyframes and so inside the limits; the
gait is added afterwards and clipped to the limits.

Angles become rotations through each bone's anatomical frame (:func:`bone_frames`), giving the
per-bone world-aligned rotations the body models take (SMPL's local joint rotations, Anny's
``local-ref``). The vertical position is not decided here: the sequence puts the lowest vertex of each
frame on the ground (``maed.synth.sequence``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maed.synth.limits import GAIT_BONES

MOTION_STYLES = ("wander", "walk")


def bone_frames(rest_heads: np.ndarray, parents: list[int]) -> np.ndarray:
    """Anatomical frame of every bone from the rest skeleton: J x 3 x 3, columns x', y', z' (see limits).

    rest_heads: J x 3 rest-pose bone heads (metres, y up, facing +z). y' points from a bone's head to the
    mean of its children's heads (its parent's y' when that is shorter than 1 cm, world y for the root).
    """
    J = len(parents)
    children: list[list[int]] = [[] for _ in range(J)]
    for j, p in enumerate(parents):
        if p >= 0:
            children[p].append(j)
    frames = np.tile(np.eye(3), (J, 1, 1))
    axis_y = np.zeros((J, 3))
    for j in range(J):
        d = rest_heads[children[j]].mean(axis=0) - rest_heads[j] if children[j] else np.zeros(3)
        if np.linalg.norm(d) < 0.01:
            d = axis_y[parents[j]] if parents[j] >= 0 else np.array([0.0, 1.0, 0.0])
        y = d / np.linalg.norm(d)
        axis_y[j] = y
        forward = np.array([0.0, 0.0, 1.0])
        if abs(y @ forward) > 0.95:  # a bone pointing forward (a foot): build z' from the up direction
            forward = np.array([0.0, 1.0, 0.0])
        z = forward - (forward @ y) * y
        z /= np.linalg.norm(z)
        frames[j] = np.stack([np.cross(y, z), y, z], axis=1)
    return frames


def euler_rotmat(angles: np.ndarray) -> np.ndarray:
    """... x 3 angles (a, b, c) radians -> ... x 3 x 3 rotations Rx(a) Ry(b) Rz(c)."""
    a, b, c = angles[..., 0], angles[..., 1], angles[..., 2]
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    one, zero = np.ones_like(a), np.zeros_like(a)
    Rx = np.stack([one, zero, zero, zero, ca, -sa, zero, sa, ca], -1).reshape(*a.shape, 3, 3)
    Ry = np.stack([cb, zero, sb, zero, one, zero, -sb, zero, cb], -1).reshape(*a.shape, 3, 3)
    Rz = np.stack([cc, -sc, zero, sc, cc, zero, zero, zero, one], -1).reshape(*a.shape, 3, 3)
    return Rx @ Ry @ Rz


def rot_y(angle: np.ndarray) -> np.ndarray:
    """... angles (radians) -> ... x 3 x 3 rotations about the vertical axis."""
    zero = np.zeros_like(angle)
    return euler_rotmat(np.stack([zero, angle, zero], axis=-1))


def bspline(control: np.ndarray, frames: int, spacing: float) -> np.ndarray:
    """Uniform cubic B-spline through ``control`` (M x ...) with one knot every ``spacing`` frames,
    sampled at frames 0..frames-1 -> frames x ... . Needs M >= frames / spacing + 3. Each sample is a
    convex combination of four consecutive control points."""
    u = np.arange(frames) / spacing
    i = np.floor(u).astype(np.int64)
    s = (u - i)[:, None]
    basis = (
        np.concatenate([(1 - s) ** 3, 3 * s**3 - 6 * s**2 + 4, -3 * s**3 + 3 * s**2 + 3 * s + 1, s**3], axis=1) / 6.0
    )  # (frames, 4), rows sum to 1
    idx = i[:, None] + np.arange(4)  # (frames, 4)
    return np.einsum("fk,fk...->f...", basis, control[idx])


def num_controls(frames: int, spacing: float) -> int:
    return int(np.ceil(frames / spacing)) + 4


@dataclass
class PersonMotion:
    """One person's motion: ``rotmats`` T x J x 3 x 3 (root in the world frame), ``ground_xz`` T x 2
    root position on the ground plane (metres), ``style``."""

    rotmats: np.ndarray
    ground_xz: np.ndarray
    style: str


def sample_keyframe_angles(
    rng: np.random.Generator, limits: np.ndarray, neutral: np.ndarray, count: int, energy: float
) -> np.ndarray:
    """``count`` keyframes of J x 3 angles inside ``limits`` (J x 3 x 2): neutral plus a clipped normal
    step of scale ``energy`` towards the low or high limit (1 reaches it); one keyframe in ten is a
    bolder pose (energy 0.9)."""
    J = limits.shape[0]
    scale = np.where(rng.random(count) < 0.1, 0.9, energy)[:, None, None]
    s = np.clip(rng.normal(size=(count, J, 3)) * scale, -1.0, 1.0)
    lo, hi = limits[..., 0], limits[..., 1]
    return np.where(s > 0, neutral + s * (hi - neutral), neutral + s * (neutral - lo))


def person_motion(
    rng: np.random.Generator,
    *,
    frames: int,
    fps: float,
    rig: str,
    bone_names: list[str],
    frames_axes: np.ndarray,
    limits: np.ndarray,
    neutral: np.ndarray,
    start_xz: np.ndarray,
    heading: float,
    style: str,
) -> PersonMotion:
    """Random motion of one person for ``frames`` frames at ``fps`` (see the module docstring).

    frames_axes: J x 3 x 3 anatomical frames (:func:`bone_frames`); limits, neutral: from
    ``maed.synth.limits.limits_table``; start_xz: root position on the ground; heading: radians (0 = facing
    +z). Returns rotations with the root's heading, lean and roll composed in the world frame.
    """
    J = len(bone_names)
    spacing = float(rng.uniform(8, 20))
    m = num_controls(frames, spacing)
    energy = float(rng.uniform(0.25, 0.6))
    keys = sample_keyframe_angles(rng, limits, neutral, m, energy)
    angles = bspline(keys, frames, spacing)  # (T, J, 3), inside the limits
    t = np.arange(frames) / fps

    turn_keys = rng.uniform(-1.0, 1.0, size=m) * np.deg2rad(50.0 if style == "walk" else 35.0)  # rad/s
    turn_rate = bspline(turn_keys, frames, spacing)
    psi = heading + np.concatenate([[0.0], np.cumsum(turn_rate[:-1]) / fps])
    if style == "walk":
        # the gait drives the legs and arms: keep their own random motion small around the neutral pose
        gait = [bone_names.index(b) for b in GAIT_BONES[rig].values()]
        angles[:, gait] = neutral[gait] + 0.25 * (angles[:, gait] - neutral[gait])
        speed = float(rng.uniform(0.5, 1.5)) * (1.0 + 0.15 * np.sin(2 * np.pi * t / rng.uniform(2.0, 5.0)))
        stride = float(rng.uniform(1.1, 1.5))  # metres per gait cycle (two steps)
        phase = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.concatenate([[0.0], np.cumsum(speed[:-1] / stride / fps)])
        angles = _add_gait(angles, phase, np.clip(speed / 1.2, 0.4, 1.2), rig, bone_names)
        angles = np.clip(angles, limits[..., 0], limits[..., 1])
    else:
        drift_keys = rng.normal(size=m) * 0.15
        speed = np.abs(bspline(drift_keys, frames, spacing))  # metres per second, small
    step = speed[:, None] * np.stack([np.sin(psi), np.cos(psi)], axis=1) / fps
    ground_xz = np.asarray(start_xz, dtype=np.float64) + np.concatenate([np.zeros((1, 2)), np.cumsum(step[:-1], 0)])

    local = euler_rotmat(angles)  # (T, J, 3, 3) in the anatomical frames
    rotmats = frames_axes @ local @ np.swapaxes(frames_axes, -1, -2)  # world-aligned axes
    rotmats[:, 0] = rot_y(psi) @ rotmats[:, 0]
    assert rotmats.shape == (frames, J, 3, 3)
    return PersonMotion(rotmats=rotmats, ground_xz=ground_xz, style=style)


def _add_gait(angles: np.ndarray, phase: np.ndarray, amplitude: np.ndarray, rig: str, names: list[str]) -> np.ndarray:
    """Walking gait on top of keyframed angles: (T, J, 3) radians; phase and amplitude per frame."""
    bones = GAIT_BONES[rig]
    index = {k: names.index(v) for k, v in bones.items()}
    out = angles.copy()
    g = amplitude
    deg = np.deg2rad
    for side, shift in (("l", 0.0), ("r", np.pi)):
        p = phase + shift
        out[:, index[f"{side}hip"], 0] += g * deg(25.0) * np.sin(p)
        # the knee bends most while the leg swings forward (the hip flexing: cos p > 0)
        out[:, index[f"{side}knee"], 0] -= g * deg(50.0) * (0.5 + 0.5 * np.cos(p - 0.3)) ** 2
        out[:, index[f"{side}ankle"], 0] += g * deg(12.0) * np.sin(p + 0.6)
        out[:, index[f"{side}shoulder"], 0] -= g * deg(22.0) * np.sin(p)  # arms swing against their leg
        out[:, index[f"{side}elbow"], 0] += g * deg(12.0) * (1.0 - np.sin(p))
    return out
