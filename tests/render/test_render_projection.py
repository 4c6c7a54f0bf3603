"""The weak-perspective camera: projection matrices, windows, and the crop -> full-image conversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maed.body.geometry import convert_crop_cam_to_orig_img, weak_perspective_projection
from maed.data.transforms import BASE_SCALE, crop_affine
from maed.render.projection import (
    MODEL_TO_EYE,
    full_image_cameras,
    pixel_region,
    project_to_pixels,
    projection_matrix,
    rotate_about_vertical,
)


def _window_pixels(P: np.ndarray, verts: np.ndarray, region) -> np.ndarray:
    """Where OpenGL puts the vertices: NDC of the window -> continuous pixels of the frame (y down)."""
    x0, y0, w, h = region
    eye = np.c_[verts @ MODEL_TO_EYE, np.ones(len(verts))]
    clip = eye @ P.T
    ndc = clip[:, :3] / clip[:, 3:]
    return np.c_[x0 + (ndc[:, 0] + 1) * w / 2, y0 + (1 - ndc[:, 1]) * h / 2], ndc[:, 2]


def test_full_frame_matrix_is_the_originals():
    cam = (0.31, 0.52, 0.4, -0.7)
    P = projection_matrix(cam, 1280, 720, z_range=(-0.9, 0.9))
    sx, sy, tx, ty = cam
    assert P[0, 0] == pytest.approx(sx) and P[1, 1] == pytest.approx(sy)
    assert P[0, 3] == pytest.approx(sx * tx) and P[1, 3] == pytest.approx(-sy * ty)
    assert P[2, 2] < 0 and P[3].tolist() == [0, 0, 0, 1]  # depth decreasing towards the viewer, no perspective
    np.testing.assert_allclose(P[:2], np.array([[sx, 0, 0, sx * tx], [0, sy, 0, -sy * ty]]), atol=1e-12)


@pytest.mark.parametrize("region", [None, (100, 40, 320, 256), (0, 0, 64, 64), (900, 500, 380, 220)])
def test_window_matrix_puts_vertices_where_the_formula_says(region):
    rng = np.random.default_rng(0)
    verts = rng.uniform(-1, 1, size=(50, 3)).astype(np.float32)
    cam = (0.3, 0.55, 0.2, 0.1)
    expected = project_to_pixels(verts, cam, 1280, 720)
    # the formula itself: normalised (sx (X + tx), sy (Y + ty)) in [-1, 1], x right, y down
    np.testing.assert_allclose(expected[:, 0] / 640 - 1, 0.3 * (verts[:, 0] + 0.2), atol=1e-6)
    np.testing.assert_allclose(expected[:, 1] / 360 - 1, 0.55 * (verts[:, 1] + 0.1), atol=1e-6)
    z = verts[:, 2]
    P = projection_matrix(cam, 1280, 720, region, (z.min(), z.max()))
    got, depth = _window_pixels(P, verts, region or (0, 0, 1280, 720))
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert np.all(np.abs(depth) <= 0.9 + 1e-6)  # inside the clip volume
    assert np.all(np.diff(depth[np.argsort(z)]) >= 0)  # nearer (smaller Z) -> smaller depth


def test_pixel_region_margin_alignment_and_clipping():
    pts = np.array([[10.2, 20.7], [50.5, 60.1]])
    assert pixel_region(pts, 160, 120, margin=2) == (8, 18, 45, 45)
    x0, y0, w, h = pixel_region(pts, 160, 120, margin=2, align=32)
    assert (w, h) == (64, 64) and x0 <= 8 and y0 <= 18 and x0 + w >= 53 and y0 + h >= 63
    assert x0 + w <= 160 and y0 + h <= 120
    # partly outside: clipped to the frame; larger than the frame after alignment: the frame
    assert pixel_region(np.array([[-30.0, -5.0], [20.0, 10.0]]), 160, 120, margin=0) == (0, 0, 20, 10)
    assert pixel_region(np.array([[0.0, 0.0], [150.0, 110.0]]), 160, 120, margin=0, align=64) == (0, 0, 160, 120)
    assert pixel_region(np.array([[-30.0, 5.0], [-10.0, 10.0]]), 160, 120, margin=2) is None
    assert pixel_region(np.array([[np.nan, 5.0]]), 160, 120) is None


def test_side_rotation_turns_about_the_vertical_axis_through_the_centroid():
    verts = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, -2.0, 0.0]], np.float32) + 5.0
    out = rotate_about_vertical(verts, 90.0)
    np.testing.assert_allclose(out.mean(axis=0), verts.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(out[:, 1], verts[:, 1], atol=1e-6)  # heights unchanged
    np.testing.assert_allclose(out[0] - 5.0, [0.0, 0.0, -1.0], atol=1e-6)  # +x (person's left) towards camera


def test_full_image_cameras_match_the_converter_with_the_scaled_box():
    rng = np.random.default_rng(1)
    cam = np.c_[rng.uniform(0.6, 1.2, 5), rng.normal(scale=0.1, size=(5, 2))]
    side = rng.uniform(80, 300, 5)
    boxes = np.c_[rng.uniform(100, 1100, 5), rng.uniform(100, 600, 5), side, side]
    expected = convert_crop_cam_to_orig_img(cam, np.c_[boxes[:, :2], side * BASE_SCALE, side * BASE_SCALE], 1280, 720)
    np.testing.assert_allclose(full_image_cameras(cam, boxes, 1280, 720), expected, rtol=1e-12)


@pytest.mark.parametrize("box", [(400.0, 300.0, 200.0, 200.0), (1100.0, 80.0, 150.0, 150.0), (300, 500, 160, 240)])
def test_full_camera_reproduces_the_evaluation_crop(box):
    """Points the model projects into its 224 crop, mapped back through the inverse of the crop the evaluation
    cuts (``crop_affine`` with the base scale), land where the converted camera puts them in the frame."""
    rng = np.random.default_rng(2)
    verts = rng.uniform(-0.9, 0.9, size=(200, 3)).astype(np.float32) * [0.5, 1.0, 0.2]
    crop_cam = np.array([0.9, 0.05, -0.1])
    # the model's own projection: normalised crop coordinates in [-1, 1], then crop pixels
    ndc = weak_perspective_projection(torch.from_numpy(verts)[None], torch.tensor(crop_cam, dtype=torch.float32)[None])
    crop_px = (ndc[0].numpy().astype(np.float64) + 1.0) * 112.0
    to_crop = np.vstack([crop_affine(np.asarray(box), scale=BASE_SCALE), [0, 0, 1]])
    frame_px = (np.c_[crop_px, np.ones(len(crop_px))] @ np.linalg.inv(to_crop).T)[:, :2]
    full = full_image_cameras(crop_cam[None], np.asarray(box)[None], 1280, 720)[0]
    got = project_to_pixels(verts, full, 1280, 720)
    # the crop camera is a perspective camera 10 m / s away: weak perspective differs by ~1 % of the size
    tolerance = 0.02 * box[3] * BASE_SCALE
    assert np.abs(got - frame_px).max() < tolerance
    wrong = project_to_pixels(
        verts, full_image_cameras(crop_cam[None], np.asarray(box)[None], 1280, 720, scale=1.0)[0], 1280, 720
    )
    assert np.abs(wrong - frame_px).max() > 3 * tolerance  # the 1.3 matters: the check can fail
