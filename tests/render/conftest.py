"""A person-shaped test mesh made here, small frames, and the OpenGL availability check."""

from __future__ import annotations

import numpy as np
import pytest


def person_mesh(arms_out: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A closed, person-shaped triangle mesh (capsules for torso and limbs, a sphere for the head), about
    1.8 m tall, in the model frame (x right, y down, z away, metres, pelvis at the origin, facing the
    camera). Returns (V x 3 float32, F x 3 int64), faces counter-clockwise seen from outside."""
    import trimesh

    def capsule(a, b, radius):
        a, b = np.asarray(a, float), np.asarray(b, float)
        length = float(np.linalg.norm(b - a))
        mesh = trimesh.creation.capsule(height=length, radius=radius, count=[16, 16])  # along z, centred
        mesh.apply_transform(trimesh.geometry.align_vectors([0, 0, 1], (b - a) / length))
        mesh.apply_translation((a + b) / 2)
        return mesh

    # built with y up (x right, z towards the camera), then turned into the model frame below
    parts = [
        capsule([0, 0.0, 0], [0, 0.5, 0], 0.16),  # torso
        trimesh.creation.icosphere(subdivisions=2, radius=0.12).apply_translation([0, 0.78, 0]),  # head
        capsule([-0.1, -0.05, 0], [-0.12, -0.85, 0.02], 0.075),  # right leg (image left)
        capsule([0.1, -0.05, 0], [0.12, -0.85, 0.02], 0.075),  # left leg
    ]
    hand_y, hand_x = (0.45, 0.75) if arms_out else (0.0, 0.3)
    parts += [
        capsule([-0.2, 0.5, 0], [-hand_x, hand_y, 0.05], 0.05),
        capsule([0.2, 0.5, 0], [hand_x, hand_y, 0.05], 0.05),
    ]
    mesh = trimesh.util.concatenate(parts)
    verts = np.asarray(mesh.vertices, dtype=np.float32) @ np.diag([1.0, -1.0, -1.0]).astype(np.float32)
    return verts, np.asarray(mesh.faces, dtype=np.int64)


@pytest.fixture(scope="session")
def person():
    return person_mesh()


@pytest.fixture(scope="session")
def person_arms_down():
    """The same mesh (same faces) with the arms lowered."""
    return person_mesh(arms_out=False)


@pytest.fixture(scope="session")
def gl_works():
    """Skip a test that needs headless OpenGL on a machine without it (the fallback tests run anyway)."""
    from maed.render.gl import RenderError, offscreen_renderer

    try:
        renderer = offscreen_renderer(8, 8)
    except RenderError as e:
        pytest.skip(f"no headless OpenGL here: {e}")
    renderer.delete()
    return True
