"""Animated, skinned glTF binary (.glb) files of a body-model sequence, through ``pygltflib``.

One file holds one person: a skinned mesh in the bind pose, one node per joint (named after the body model's
joints, translated by its zero-pose offset, see ``maed.export.rig``), a skin with inverse bind matrices, and
one animation (``LINEAR``, one key per frame) with a rotation channel for every joint and a translation
channel for the root. Every file passes the Khronos glTF validator with zero errors and warnings
(``tests/export/test_gltf.py``). Units are metres and the file is y up (glTF's convention); ``frame="camera"``
(the default, for predictions) turns the camera-frame root 180 degrees about x so the person stands upright
in Blender and browser viewers (the module docstring of ``maed.export.rig`` has the details).

glTF skins take four joints per vertex (``JOINTS_0`` / ``WEIGHTS_0``): each vertex keeps its four largest
skin weights, renormalised to sum to one. SMPL never has more than four; Anny's default rig has up to nine
(cmu_mb seven), and dropping the rest moves its mesh, with every bone bent about 0.3 rad, by 0.2 mm on average,
under 5 mm at 99% of the vertices and up to 1 to 2.5 cm at a few torso and shoulder vertices
(``tests/export/test_rig.py``, ``test_gltf.py``). Pose blend shapes (SMPL's ``posedirs``) are not
representable in a skinned file and are left out.
"""

from __future__ import annotations

import os

import numpy as np

from maed.body.geometry import rotmat_to_quaternion
from maed.errors import DataError, MaedError
from maed.export.rig import Rig, animation_tracks, as_array, output_path
from maed.utils.io import atomic_write_bytes

#: glTF component types and buffer-view targets (the glTF 2.0 specification's enums)
_FLOAT, _UBYTE, _USHORT, _UINT = 5126, 5121, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_NUM_COMPONENTS = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_DEFAULT_COLOR = (0.75, 0.75, 0.78, 1.0)


def import_pygltflib():
    try:
        import pygltflib
    except ImportError as e:
        raise MaedError(
            f"GLB export needs the 'pygltflib' package ({e}); install it with `pip install maed[demo]`"
        ) from None
    return pygltflib


def write_glb(
    path: str | os.PathLike,
    rig: Rig,
    rotmats,
    root_trans=None,
    fps: float = 30.0,
    *,
    name: str = "person",
    color=None,
    frame: str = "camera",
) -> None:
    """Write one person's animated, skinned mesh as a glTF binary file (written atomically).

    Args:
        path: output file (``.glb``); its folder is created.
        rig: the body model's skeleton and skin for this person's shape (``maed.export.rig.rig_from_body_model``).
        rotmats: T x J x 3 x 3 local joint rotations exactly as the body model takes them (root first).
        root_trans: T x 3 metres added to the root joint's position (None: zero).
        fps: frames per second; key t is at time t / fps seconds.
        name: names the mesh, skin, animation and the mesh node.
        color: None (a light grey material), an RGB or RGBA material colour in [0, 1], or a V x 3 / V x 4
            array of per-vertex colours in [0, 1] (``COLOR_0``).
        frame: ``"camera"`` (root rotation and translation in the camera frame, x right, y down, z away, as
            predicted; turned 180 degrees about x to be y up) or ``"model"`` (written as given).
    """
    pygltflib = import_pygltflib()
    local_rot, root_pos = animation_tracks(rig, rotmats, root_trans, fps, frame, writer="write_glb")
    material_color, vertex_colors = _colors(color, rig.num_vertices)
    path = output_path(path, "write_glb")
    T, J = local_rot.shape[:2]

    blob = _Blob()
    joint_ids, weights = rig.top_weights(4)
    attributes = {
        "POSITION": blob.add(rig.rest_verts, "VEC3", _FLOAT, target=_ARRAY_BUFFER, bounds=True),
        "NORMAL": blob.add(_vertex_normals(rig.rest_verts, rig.faces), "VEC3", _FLOAT, target=_ARRAY_BUFFER),
        "JOINTS_0": blob.add(joint_ids, "VEC4", _UBYTE if J <= 256 else _USHORT, target=_ARRAY_BUFFER),
        "WEIGHTS_0": blob.add(_float32_unit_sums(weights), "VEC4", _FLOAT, target=_ARRAY_BUFFER),
    }
    if vertex_colors is not None:
        kind = "VEC3" if vertex_colors.shape[1] == 3 else "VEC4"
        attributes["COLOR_0"] = blob.add(vertex_colors, kind, _FLOAT, target=_ARRAY_BUFFER)
    index_type = _USHORT if rig.num_vertices <= 65535 else _UINT
    indices = blob.add(rig.faces.reshape(-1), "SCALAR", index_type, target=_ELEMENT_ARRAY_BUFFER)
    ibm = blob.add(rig.inverse_bind_matrices().transpose(0, 2, 1), "MAT4", _FLOAT)  # glTF is column-major

    # node 0 holds the mesh (a skinned mesh node is a scene root without a transform, as the spec asks);
    # nodes 1..J are the joints, in the rig's order
    offsets = rig.joint_offsets()
    children: list[list[int]] = [[] for _ in range(J)]
    for j, p in enumerate(rig.parents):
        if p >= 0:
            children[p].append(1 + j)
    nodes = [pygltflib.Node(name=name, mesh=0, skin=0)]
    for j in range(J):
        translation = root_pos[0] if j == 0 else offsets[j]
        nodes.append(
            pygltflib.Node(name=rig.joint_names[j], translation=[float(x) for x in translation], children=children[j])
        )

    times = np.arange(T, dtype=np.float64) / float(fps)
    time_accessor = blob.add(times, "SCALAR", _FLOAT, bounds=True)
    quats = _continuous_quaternions(local_rot)  # (T, J, 4) as x, y, z, w
    samplers, channels = [], []
    for j in range(J):
        samplers.append(pygltflib.AnimationSampler(input=time_accessor, output=blob.add(quats[:, j], "VEC4", _FLOAT)))
        target = pygltflib.AnimationChannelTarget(node=1 + j, path="rotation")
        channels.append(pygltflib.AnimationChannel(sampler=j, target=target))
    samplers.append(pygltflib.AnimationSampler(input=time_accessor, output=blob.add(root_pos, "VEC3", _FLOAT)))
    channels.append(
        pygltflib.AnimationChannel(sampler=J, target=pygltflib.AnimationChannelTarget(node=1, path="translation"))
    )

    gltf = pygltflib.GLTF2(
        asset=pygltflib.Asset(
            generator="maed",
            extras={"frames": T, "fps": float(fps), "frame": frame, "units": "metres"},
        ),
        scene=0,
        scenes=[pygltflib.Scene(name=name, nodes=[0, 1])],
        nodes=nodes,
        meshes=[
            pygltflib.Mesh(
                name=name,
                primitives=[
                    pygltflib.Primitive(
                        attributes=pygltflib.Attributes(**attributes), indices=indices, material=0, mode=4
                    )
                ],
            )
        ],
        materials=[
            pygltflib.Material(
                name=f"{name}_material",
                pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
                    baseColorFactor=[float(c) for c in material_color], metallicFactor=0.0, roughnessFactor=0.7
                ),
            )
        ],
        skins=[pygltflib.Skin(name=name, inverseBindMatrices=ibm, skeleton=1, joints=list(range(1, J + 1)))],
        animations=[pygltflib.Animation(name=name, samplers=samplers, channels=channels)],
        accessors=blob.accessors(pygltflib),
        bufferViews=blob.buffer_views(pygltflib),
        buffers=[pygltflib.Buffer(byteLength=len(blob.data))],
    )
    gltf.set_binary_blob(bytes(blob.data))
    atomic_write_bytes(path, b"".join(gltf.save_to_bytes()))


class _Blob:
    """The file's one binary buffer: each array gets its own 4-byte aligned buffer view and accessor."""

    def __init__(self) -> None:
        self.data = bytearray()
        self._views: list[dict] = []
        self._accessors: list[dict] = []

    def add(self, array: np.ndarray, kind: str, component: int, *, target: int | None = None, bounds=False) -> int:
        dtype = {_FLOAT: np.float32, _UBYTE: np.uint8, _USHORT: np.uint16, _UINT: np.uint32}[component]
        values = np.ascontiguousarray(array, dtype=dtype).reshape(-1, _NUM_COMPONENTS[kind])
        self.data.extend(b"\0" * (-len(self.data) % 4))
        self._views.append(dict(byteOffset=len(self.data), byteLength=values.nbytes, target=target))
        self.data.extend(values.tobytes())
        accessor = dict(bufferView=len(self._views) - 1, componentType=component, count=len(values), type=kind)
        if bounds:  # from the stored (float32) values, as the validator compares them exactly
            accessor.update(min=values.min(axis=0).tolist(), max=values.max(axis=0).tolist())
        self._accessors.append(accessor)
        return len(self._accessors) - 1

    def buffer_views(self, pygltflib) -> list:
        return [pygltflib.BufferView(buffer=0, **view) for view in self._views]

    def accessors(self, pygltflib) -> list:
        return [pygltflib.Accessor(byteOffset=0, **acc) for acc in self._accessors]


def _continuous_quaternions(rotmats: np.ndarray) -> np.ndarray:
    """T x J x 3 x 3 rotations -> T x J x 4 unit quaternions (x, y, z, w, glTF's order), each joint's sign
    chosen so consecutive keys are in the same hemisphere (LINEAR interpolation then takes the short way)."""
    import torch

    q = rotmat_to_quaternion(torch.from_numpy(rotmats)).numpy()  # (T, J, 4) as w, x, y, z
    flips = np.ones(q.shape[:2])
    flips[1:] = np.where((q[1:] * q[:-1]).sum(-1) < 0, -1.0, 1.0)
    q = q * np.cumprod(flips, axis=0)[..., None]
    q = q[..., [1, 2, 3, 0]]
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def _float32_unit_sums(weights: np.ndarray) -> np.ndarray:
    """V x 4 weights in float32 whose float32 sums are 1 to rounding: the residue goes to the largest."""
    w = weights.astype(np.float32)
    w[:, 0] += (1.0 - w.astype(np.float64).sum(axis=1)).astype(np.float32)
    return w


def _vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """V x 3 unit normals, the area-weighted mean of the adjacent faces' ((0, 1, 0) for isolated vertices)."""
    face_normals = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    normals = np.zeros_like(verts)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    unit = normals / np.where(length > 0, length, 1.0)
    return np.where(length > 1e-12, unit, np.array([0.0, 1.0, 0.0]))


def _colors(color, num_vertices: int) -> tuple[tuple[float, ...], np.ndarray | None]:
    """(material RGBA, per-vertex colours or None) from ``write_glb``'s ``color``."""
    if color is None:
        return _DEFAULT_COLOR, None
    values = as_array(color, "write_glb: color")
    if values.ndim == 1 and values.size in (3, 4):
        rgba = tuple(values.tolist()) + (() if values.size == 4 else (1.0,))
        if not all(0.0 <= c <= 1.0 for c in rgba):
            raise DataError(f"write_glb: color {tuple(values.tolist())} must lie in [0, 1]")
        return rgba, None
    if values.ndim == 2 and values.shape[0] == num_vertices and values.shape[1] in (3, 4):
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise DataError("write_glb: per-vertex colors must lie in [0, 1]")
        return (1.0, 1.0, 1.0, 1.0), values
    raise DataError(
        f"write_glb: color has shape {values.shape}; expected RGB(A) (3 or 4 values) or {num_vertices} x 3 / x 4"
    )
