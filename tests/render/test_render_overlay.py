"""OverlayRenderer: silhouettes against an independent OpenCV rasterisation, windows, composition, fallback."""

from __future__ import annotations

import ctypes.util

import cv2
import numpy as np
import pytest

from maed.render import gl
from maed.render.overlay import SIDE_BACKGROUND, OverlayRenderer, PersonDraw, track_color
from maed.render.projection import project_to_pixels
from maed.render.raster import rasterize

W, H = 320, 240  # small, but thin limbs stay a few pixels wide


def reference_silhouette(verts, faces, cam, width=W, height=H) -> np.ndarray:
    """Every projected triangle filled by OpenCV, one call per triangle (pixel centres at integers there)."""
    px = project_to_pixels(verts, cam, width, height) - 0.5
    pts = np.round(px * 16).astype(np.int32)[faces]  # 4 fractional bits
    mask = np.zeros((height, width), np.uint8)
    for tri in pts:
        cv2.fillConvexPoly(mask, tri, 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def textured_frame(seed=0, width=W, height=H) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def camera(scale: float, cx: float, cy: float, width=W, height=H) -> np.ndarray:
    """A full-image camera that makes the 1.8 m test person ``scale`` tall and puts its origin at (cx, cy),
    both in normalised units of the frame ([-1, 1] across, y down)."""
    sy = scale / 1.8
    sx = sy * height / width
    return np.array([sx, sy, cx / sx, cy / sy])


# centred, and cut by each corner of the frame
PLACES = [(1.5, 0.0, 0.0), (1.4, -0.85, -0.7), (1.4, 0.85, -0.75), (1.5, -0.9, 0.7), (1.3, 0.9, 0.8)]


def renderer(kind: str, request, width=W, height=H, faces=None) -> OverlayRenderer:
    """``gl``, ``gl-aa`` (antialiased) or ``opencv``; GL kinds are skipped without headless OpenGL."""
    if kind.startswith("gl"):
        request.getfixturevalue("gl_works")
    faces = request.getfixturevalue("person")[1] if faces is None else faces
    r = OverlayRenderer(width, height, faces, backend=kind.split("-")[0], antialias=kind.endswith("-aa"))
    assert r.backend == kind.split("-")[0]
    return r


KINDS = ["gl", "gl-aa", "opencv"]


@pytest.mark.parametrize("backend", KINDS)
@pytest.mark.parametrize("place", PLACES)
def test_silhouette_matches_the_projected_triangles(backend, place, person, request):
    verts, faces = person
    cam = camera(*place)
    frame = np.zeros((H, W, 3), np.uint8)
    with renderer(backend, request) as r:
        out = r.render(frame, [PersonDraw(verts, cam, (1.0, 1.0, 1.0))])
    drawn = out.max(axis=-1) > 0
    expected = reference_silhouette(verts, faces, cam)
    assert 2000 < expected.sum() < H * W / 4  # a real person, cut by the frame unless centred
    assert iou(drawn, expected) > 0.9
    # a camera off by a tenth of the person's height is caught
    assert iou(drawn, reference_silhouette(verts, faces, cam + [0, 0, 0, 0.18])) < 0.85


def test_numpy_rasteriser_fills_each_triangle_like_opencv(person):
    verts, faces = person
    cam = camera(1.3, 0.1, 0.0)
    px = project_to_pixels(verts, cam, W, H)
    index = rasterize(px[faces], verts[faces, 2], W, H)
    expected = reference_silhouette(verts, faces, cam)
    # pixel centres inside triangles: within OpenCV's fill, which also takes the pixels the edges touch
    assert not (index >= 0)[~expected].any() and iou(index >= 0, expected) > 0.9
    # depth test: where the arm (in front) crosses nothing else, its faces win; z order is respected
    z_near = rasterize(px[faces], np.zeros((len(faces), 3)) - np.arange(len(faces))[:, None], W, H)
    z_far = rasterize(px[faces], np.zeros((len(faces), 3)) + np.arange(len(faces))[:, None], W, H)
    covered = index >= 0
    assert (z_near[covered] >= z_far[covered]).all() and (z_near[covered] != z_far[covered]).any()


@pytest.mark.parametrize("antialias", [False, True])
def test_window_render_equals_a_full_frame_render(antialias, person, gl_works):
    from maed.render.projection import pixel_region
    from maed.render.scene import GLPersonRenderer

    verts, faces = person
    cam = camera(1.0, 0.4, 0.1, 640, 480)
    region = pixel_region(project_to_pixels(verts, cam, 640, 480), 640, 480, margin=3, align=32)
    x0, y0, w, h = region
    assert w * h < 0.25 * 640 * 480
    r = GLPersonRenderer(faces, len(verts), antialias=antialias)
    try:
        full_rgb, full_mask = r.draw(verts, cam, track_color(1), (640, 480), (0, 0, 640, 480))
        rgb, mask = r.draw(verts, cam, track_color(1), (640, 480), region)
    finally:
        r.close()
    if antialias and not r.fixed_viewport:  # multisampled coverage is fractional at the edges (not on OSMesa)
        assert ((mask > 0) & (mask < 1)).sum() > 100
    full_mask, mask = full_mask > 0, mask > 0
    assert full_mask[y0 : y0 + h, x0 : x0 + w].sum() == full_mask.sum() > 1000  # the window holds the person
    same_mask = mask == full_mask[y0 : y0 + h, x0 : x0 + w]
    close = np.abs(rgb - full_rgb[y0 : y0 + h, x0 : x0 + w]).max(axis=-1) <= 2
    assert same_mask.mean() > 0.99 and (same_mask & close).mean() > 0.99


@pytest.mark.parametrize("backend", KINDS)
def test_untouched_pixels_keep_the_frame_and_people_are_drawn(backend, person, request):
    verts, faces = person
    frame = textured_frame()
    people = [
        PersonDraw(verts, camera(0.9, -0.5, 0.0), track_color(0)),
        PersonDraw(verts, camera(1.1, 0.6, 0.1), track_color(1)),
    ]
    with renderer(backend, request) as r:
        out = r.render(frame, people)
        out_again = r.render(frame, people)
    assert out.shape == frame.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, out_again)  # nothing left over between frames
    covered = np.zeros((H, W), bool)
    for p in people:
        covered |= reference_silhouette(p.verts, faces, p.cam)
    near = cv2.dilate(covered.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    np.testing.assert_array_equal(out[~near], frame[~near])
    changed = (out != frame).any(axis=-1)
    assert changed[covered].mean() > 0.9
    assert textured_frame().tobytes() == frame.tobytes()  # the input is not modified


def test_nearer_person_covers_the_farther_one(person, gl_works):
    verts, faces = person
    far = PersonDraw(verts, camera(0.8, 0.0, 0.0), (1.0, 0.0, 0.0))
    near = PersonDraw(verts, camera(1.2, 0.0, 0.0), (0.0, 0.0, 1.0))
    with OverlayRenderer(W, H, faces, backend="gl") as r:
        for people in ([far, near], [near, far]):  # the list order does not matter
            out = r.render(np.zeros((H, W, 3), np.uint8), people)
            torso = out[H // 2 - 5 : H // 2 + 5, W // 2 - 3 : W // 2 + 3].reshape(-1, 3).astype(int)
            assert (torso[:, 2] > torso[:, 0]).all()


def test_gl_and_flat_fallback_shade_alike(person, gl_works):
    verts, faces = person
    frame = np.zeros((H, W, 3), np.uint8)
    people = [PersonDraw(verts, camera(1.3, 0.0, 0.0), track_color(2))]
    with OverlayRenderer(W, H, faces, backend="gl") as a, OverlayRenderer(W, H, faces, backend="opencv") as b:
        shaded, flat = a.render(frame, people), b.render(frame, people)
    both = (shaded.max(-1) > 0) & (flat.max(-1) > 0)
    inner = cv2.erode(both.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)  # away from edges
    diff = np.abs(shaded[inner].astype(int) - flat[inner])
    assert inner.sum() > 300 and diff.mean() < 12
    # both are shaded, not one flat colour: brightness varies over the body
    assert shaded[inner].std(axis=0).mean() > 5 and flat[inner].std(axis=0).mean() > 5


@pytest.mark.parametrize("backend", ["gl", "opencv"])
def test_side_view_turns_people_on_a_plain_background(backend, person, request):
    verts, faces = person
    people = [PersonDraw(verts, camera(1.2, 0.0, 0.0), track_color(0))]
    with renderer(backend, request) as r:
        front = r.render(np.zeros((H, W, 3), np.uint8), people)
        side = r.render_side((H, W, 3), people)
        on_image = r.render_side(textured_frame(), people)
    front_cols = np.flatnonzero((front.max(-1) > 0).any(axis=0))
    side_mask = (side != SIDE_BACKGROUND).any(-1)
    side_cols = np.flatnonzero(side_mask.any(axis=0))
    assert len(side_cols) < 0.5 * len(front_cols)  # arms spread 1.6 m, the body 0.3 m deep
    assert abs(side_cols.mean() - front_cols.mean()) < 4  # turned about its own centroid
    assert (side[~side_mask] == SIDE_BACKGROUND).all() and side_mask.sum() > 100
    assert (on_image != textured_frame()).any(-1).sum() == pytest.approx(side_mask.sum(), rel=0.1)


def test_track_colors_are_fixed_and_distinct():
    colors = [track_color(i) for i in range(40)]
    assert colors == [track_color(i) for i in range(40)]
    assert all(len(c) == 3 and all(0.0 <= v <= 1.0 for v in c) for c in colors)
    first = np.array(colors[:10])
    gaps = np.linalg.norm(first[:, None] - first[None], axis=-1) + np.eye(10)
    assert gaps.min() > 0.1
    assert len(set(colors)) == 40


def test_missing_gl_falls_back_and_says_what_to_install(person, monkeypatch):
    verts, faces = person
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)  # neither EGL nor OSMesa installed
    with pytest.raises(gl.RenderError, match="apt-get install"):
        OverlayRenderer(W, H, faces, backend="gl")
    with OverlayRenderer(W, H, faces) as r:
        assert r.backend == "opencv" and gl.install_hint() in r.fallback_reason
        out = r.render(textured_frame(), [PersonDraw(verts, camera(1.2, 0, 0), track_color(0))])
    expected = reference_silhouette(verts, faces, camera(1.2, 0, 0))
    assert iou((out != textured_frame()).any(-1), expected) > 0.9


def test_gl_failure_mid_run_switches_to_the_fallback(person, gl_works, monkeypatch):
    from maed.render.scene import GLPersonRenderer

    verts, faces = person
    people = [PersonDraw(verts, camera(1.2, 0, 0), track_color(0))]
    with OverlayRenderer(W, H, faces) as r:
        assert r.backend == "gl" and r.fallback_reason is None
        first = r.render(textured_frame(), people)

        def broken(*args, **kwargs):
            raise RuntimeError("EGL_BAD_ALLOC")

        monkeypatch.setattr(GLPersonRenderer, "draw", broken)
        second = r.render(textured_frame(), people)
        assert r.backend == "opencv" and "EGL_BAD_ALLOC" in r.fallback_reason and gl.install_hint() in r.fallback_reason
    assert iou((first != textured_frame()).any(-1), (second != textured_frame()).any(-1)) > 0.9


def test_bad_arguments_are_refused(person):
    verts, faces = person
    with pytest.raises(ValueError, match="backend"):
        OverlayRenderer(W, H, faces, backend="vulkan")
    with pytest.raises(ValueError, match="faces"):
        OverlayRenderer(W, H, faces[:, :2], backend="opencv")
    with OverlayRenderer(W, H, faces, backend="opencv") as r:
        with pytest.raises(ValueError, match="frame"):
            r.render(np.zeros((H, W + 1, 3), np.uint8), [])
        with pytest.raises(ValueError, match="verts"):
            r.render(np.zeros((H, W, 3), np.uint8), [PersonDraw(verts[:10], camera(1, 0, 0), (1, 1, 1))])
        with pytest.raises(ValueError, match="cam"):
            r.render(np.zeros((H, W, 3), np.uint8), [PersonDraw(verts, np.zeros(3), (1, 1, 1))])
        nan = r.render(np.zeros((H, W, 3), np.uint8), [PersonDraw(verts * np.nan, camera(1, 0, 0), (1, 1, 1))])
        assert not nan.any()  # a failed prediction draws nothing rather than garbage
    with pytest.raises(RuntimeError, match="close"):
        r.render(np.zeros((H, W, 3), np.uint8), [])


def test_720p_frame_with_three_people(person, gl_works):
    """Full size, several people, partly outside the frame: drawn, and only near the people."""
    verts, faces = person
    frame = textured_frame(3, 1280, 720)
    cams = [camera(s, tx, ty, 1280, 720) for s, tx, ty in [(0.9, -0.6, 0.0), (1.3, 0.0, 0.2), (1.0, 0.95, -0.3)]]
    people = [PersonDraw(verts, c, track_color(i)) for i, c in enumerate(cams)]
    with OverlayRenderer(1280, 720, faces) as r:
        out = r.render(frame, people)
    covered = np.zeros((720, 1280), bool)
    for c in cams:
        covered |= reference_silhouette(verts, faces, c, 1280, 720)
    changed = (out != frame).any(-1)
    assert iou(changed, covered) > 0.9


def test_a_new_pose_reuses_the_uploaded_mesh(person, person_arms_down, gl_works):
    """Frames of a video change the vertices only: the buffer on the GPU is rewritten, and shows the new pose."""
    verts, faces = person
    lowered, same_faces = person_arms_down
    assert np.array_equal(faces, same_faces) and np.abs(lowered - verts).max() > 0.3
    cam = camera(1.4, 0.0, 0.0)
    with OverlayRenderer(W, H, faces, backend="gl") as r:
        first = r.render(np.zeros((H, W, 3), np.uint8), [PersonDraw(verts, cam, (1.0, 1.0, 1.0))])
        primitive = r._gl._primitive
        second = r.render(np.zeros((H, W, 3), np.uint8), [PersonDraw(lowered, cam, (1.0, 1.0, 1.0))])
        assert r._gl._primitive is primitive
    assert iou(first.max(-1) > 0, reference_silhouette(verts, faces, cam)) > 0.9
    assert iou(second.max(-1) > 0, reference_silhouette(lowered, faces, cam)) > 0.9
