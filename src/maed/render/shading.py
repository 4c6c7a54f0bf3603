"""Lights and normals shared by the OpenGL renderer and the OpenCV fallback.

The lights are the original renderer's (ORIGINAL.md §8): three white point lights of intensity 1 at
(0, -1, 1), (0, 1, 1) and (1, 1, 2) in eye coordinates (metres, relative to the mesh's own origin, so
every person is lit the same wherever the camera puts them), plus ambient light 0.3. The original meant
these three positions, but its code moved one pose array after adding it to the scene, and pyrender keeps
that array by reference, so all three of its lights sat at (1, 1, 2); we use the three positions.
"""

from __future__ import annotations

import numpy as np

#: eye-frame light positions (metres) and their intensity, and the ambient light of the original renderer
LIGHT_POSITIONS = ((0.0, -1.0, 1.0), (0.0, 1.0, 1.0), (1.0, 1.0, 2.0))
LIGHT_INTENSITY = 1.0
AMBIENT = 0.3
#: the original renderer's mesh colour
DEFAULT_COLOR = (1.0, 1.0, 0.9)
#: pyrender's dielectric reflectance: its diffuse albedo is the base colour times (1 - 0.04)
_DIFFUSE_ALBEDO = 1.0 - 0.04


def face_normals(verts: np.ndarray, faces: np.ndarray, *, normalize: bool = True) -> np.ndarray:
    """F x 3 normals of the triangles ``faces`` (F x 3 indices) of ``verts`` (V x 3), by the right-hand rule
    (counter-clockwise seen from the front). Unnormalised, their length is twice the triangle's area."""
    v = np.asarray(verts, dtype=np.float32)
    n = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    if normalize:
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return n


class VertexNormals:
    """Area-weighted vertex normals of a fixed triangle list, as one sparse product per mesh.

    faces: F x 3 vertex indices; ``num_vertices`` V. Call with V x 3 vertices -> V x 3 unit normals.
    """

    def __init__(self, faces: np.ndarray, num_vertices: int):
        from scipy import sparse

        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        F = len(self.faces)
        rows = self.faces.reshape(-1)
        cols = np.repeat(np.arange(F), 3)
        # V x F incidence: each vertex sums the (area-weighted) normals of the faces around it
        self.incidence = sparse.csr_matrix(
            (np.ones(3 * F, dtype=np.float32), (rows, cols)), shape=(int(num_vertices), F)
        )

    def __call__(self, verts: np.ndarray) -> np.ndarray:
        n = np.asarray(self.incidence @ face_normals(verts, self.faces, normalize=False), dtype=np.float32)
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        return n


def irradiance(points_eye: np.ndarray, normals_eye: np.ndarray) -> np.ndarray:
    """Diffuse light reaching surface points (K x 3, eye frame, metres) with unit normals (K x 3) from the
    original's lights: ambient + sum of intensity * max(n.l, 0) / d^2 * albedo / pi (pyrender's diffuse
    term without its small specular part). Returns K values; the linear colour is base colour x value."""
    e = np.full(len(points_eye), AMBIENT, dtype=np.float32)
    for pos in LIGHT_POSITIONS:
        to_light = np.asarray(pos, dtype=np.float32) - points_eye
        d2 = np.maximum((to_light * to_light).sum(axis=1), 1e-6)
        nl = np.clip((normals_eye * to_light).sum(axis=1) / np.sqrt(d2), 0.0, 1.0)
        e += LIGHT_INTENSITY * nl / d2 * (_DIFFUSE_ALBEDO / np.pi)
    return e


def to_srgb_uint8(linear: np.ndarray) -> np.ndarray:
    """Linear colour in [0, 1] -> uint8 with pyrender's display gamma (1 / 2.2)."""
    return np.round(255.0 * np.clip(linear, 0.0, 1.0) ** (1.0 / 2.2)).astype(np.uint8)
