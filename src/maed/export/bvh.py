"""Biovision hierarchy (.bvh) motion files of a body-model sequence, written by us.

``HIERARCHY``: one joint per body-model joint (its name, parents before children), ``OFFSET`` = the joint's
zero-pose offset from its parent (``maed.export.rig``) times ``scale`` (centimetres by default, what most
BVH tools expect); the root has ``OFFSET 0 0 0`` and six channels (``Xposition Yposition Zposition`` = its
absolute position, then three rotations), every other joint three rotation channels. Leaf joints end in an
``End Site`` pointing at the centre of the vertices they move most. ``MOTION``: ``Frames``, ``Frame Time``
(1 / fps seconds) and one line per frame of Euler angles in degrees.

The rotation channels are listed in the order they multiply, left to right, as BVH readers (Blender, bvhio,
MotionBuilder) expect: ``Zrotation Yrotation Xrotation`` (the default ``order="ZYX"``) means the joint's local
rotation is Rz(z) @ Ry(y) @ Rx(x). Angles are made continuous over time (of the two Euler triples of a
rotation, the one nearer the previous frame, unwrapped), so tools that interpolate Euler curves do not spin.
The frame (``frame="camera"`` turns the root 180 degrees about x, for predictions) is the same as the GLB's,
so the skeleton stands upright, y up, in Blender's BVH importer.
"""

from __future__ import annotations

import os

import numpy as np

from maed.errors import ConfigError
from maed.export.rig import Rig, animation_tracks, output_path
from maed.utils.io import atomic_write_text

_AXES = {"X": 0, "Y": 1, "Z": 2}


def write_bvh(
    path: str | os.PathLike,
    rig: Rig,
    rotmats,
    root_trans=None,
    fps: float = 30.0,
    *,
    scale: float = 100.0,
    order: str = "ZYX",
    frame: str = "camera",
) -> None:
    """Write one person's motion as a BVH file (written atomically).

    Args:
        path: output file (``.bvh``); its folder is created.
        rig: the body model's skeleton for this person's shape (``maed.export.rig.rig_from_body_model``).
        rotmats: T x J x 3 x 3 local joint rotations exactly as the body model takes them (root first).
        root_trans: T x 3 metres added to the root joint's position (None: zero).
        fps: frames per second (``Frame Time`` = 1 / fps).
        scale: file units per metre (100: centimetres).
        order: rotation channel order, a permutation of "XYZ" (see the module docstring).
        frame: ``"camera"`` (predictions: turned 180 degrees about x to be y up) or ``"model"`` (as given).
    """
    order = str(order).upper()
    if sorted(order) != ["X", "Y", "Z"]:
        raise ConfigError(f"write_bvh: order {order!r}: expected a permutation of 'XYZ', e.g. 'ZYX'")
    if not (isinstance(scale, (int, float, np.number)) and np.isfinite(scale) and scale > 0):
        raise ConfigError(f"write_bvh: scale must be a positive number (file units per metre), got {scale!r}")
    local_rot, root_pos = animation_tracks(rig, rotmats, root_trans, fps, frame, writer="write_bvh")
    path = output_path(path, "write_bvh")
    T, J = local_rot.shape[:2]
    offsets = rig.joint_offsets() * scale
    names = [_token(n) for n in rig.joint_names]
    channels = " ".join(f"{axis}rotation" for axis in order)
    children: list[list[int]] = [[] for _ in range(J)]
    for j, p in enumerate(rig.parents):
        if p >= 0:
            children[p].append(j)
    ends = _end_sites(rig) * scale

    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        if j == 0:
            lines.extend(
                [f"ROOT {names[0]}", "{", "  OFFSET 0 0 0", f"  CHANNELS 6 Xposition Yposition Zposition {channels}"]
            )
        else:
            lines.extend(
                [
                    f"{pad}JOINT {names[j]}",
                    f"{pad}{{",
                    f"{pad}  OFFSET {_fmt(offsets[j])}",
                    f"{pad}  CHANNELS 3 {channels}",
                ]
            )
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {_fmt(ends[j])}", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    emit(0, 0)
    # the file lists joints depth first; children follow the rig's order, so this is the channels' order
    file_order = _depth_first(children)
    angles = np.degrees(euler_angles(local_rot, order))  # (T, J, 3) in the channels' order
    motion = np.concatenate([root_pos[:, None] * scale, angles[:, file_order]], axis=1).reshape(T, -1)
    lines += ["MOTION", f"Frames: {T}", f"Frame Time: {1.0 / float(fps):.8f}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in motion]
    atomic_write_text(path, "\n".join(lines) + "\n")


def euler_angles(rotmats: np.ndarray, order: str = "ZYX") -> np.ndarray:
    """T x J x 3 x 3 rotations -> T x J x 3 Euler angles (radians) with R = R_a(e0) @ R_b(e1) @ R_c(e2) for
    ``order`` = "abc", continuous over T: each frame takes whichever of the rotation's two Euler triples is
    nearer the previous frame, unwrapped by whole turns."""
    from scipy.spatial.transform import Rotation

    T, J = rotmats.shape[:2]
    first = Rotation.from_matrix(rotmats.reshape(-1, 3, 3)).as_euler(order.upper()).reshape(T, J, 3)  # intrinsic
    # the other triple of the same rotation (a Tait-Bryan order): (e0 + pi, pi - e1, e2 + pi)
    second = first * np.array([1.0, -1.0, 1.0]) + np.pi
    out = np.empty_like(first)
    out[0] = first[0]
    for t in range(1, T):
        a = _unwrap_towards(first[t], out[t - 1])
        b = _unwrap_towards(second[t], out[t - 1])
        nearer_a = ((a - out[t - 1]) ** 2).sum(-1) <= ((b - out[t - 1]) ** 2).sum(-1)
        out[t] = np.where(nearer_a[:, None], a, b)
    return out


def _unwrap_towards(angles: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return angles + 2 * np.pi * np.round((reference - angles) / (2 * np.pi))


def _end_sites(rig: Rig) -> np.ndarray:
    """J x 3 metres: for each joint, the zero-pose offset from it to the centre of the vertices it weighs most
    (along the bone from its parent when it has none), used as the ``End Site`` of leaf joints."""
    offsets = rig.joint_offsets()
    owner = rig.skin_weights.argmax(axis=1)
    ends = 0.5 * offsets  # fallback: half the incoming bone, continued
    for j in range(rig.num_joints):
        mine = rig.rest_verts[owner == j]
        if len(mine):
            ends[j] = rig.bind_rotations[j] @ (mine.mean(axis=0) - rig.rest_joints[j])
    return ends


def _depth_first(children: list[list[int]]) -> list[int]:
    order, stack = [], [0]
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(children[j]))
    return order


def _token(name: str) -> str:
    return "_".join(str(name).split()) or "joint"


def _fmt(v: np.ndarray) -> str:
    return " ".join(f"{x:.6f}" for x in v)
