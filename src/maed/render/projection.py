"""The weak-perspective camera of the original renderer (ORIGINAL.md §8), as numpy functions.

Conventions. Meshes are in the model's camera frame: x right, y down, z away from the camera, metres. A
full-image camera ``cam = (sx, sy, tx, ty)`` (``maed.body.geometry.convert_crop_cam_to_orig_img``) puts a
vertex (X, Y, Z) at normalised image coordinates ``(sx (X + tx), sy (Y + ty))``, in [-1, 1] across the
frame, x right and y down; Z only orders the surfaces. Pixel coordinates here are continuous: pixel
column ``i`` covers [i, i + 1), so its centre is at i + 0.5 (OpenCV draws with centres at integers).

The original renders with OpenGL after rotating the mesh 180 degrees about x, with the projection matrix
P00 = sx, P11 = sy, P03 = sx tx, P13 = -sy ty, P22 = -1. :func:`projection_matrix` returns that matrix for
a sub-window of the frame (so that only the pixels a person covers are drawn) and with a depth row that
keeps any mesh inside the clip volume (the original's P22 = -1 clips surfaces more than 1 m from Z = 0).
"""

from __future__ import annotations

import numpy as np

from maed.data.bbox import BASE_SCALE

#: the mesh rotation of the original renderer: 180 degrees about x, from the model frame (y down, z away)
#: to OpenGL's eye frame (y up, z towards the viewer)
MODEL_TO_EYE = np.diag([1.0, -1.0, -1.0]).astype(np.float32)


def project_to_pixels(verts: np.ndarray, cam, width: int, height: int) -> np.ndarray:
    """Vertices V x 3 (metres, model frame) -> V x 2 continuous pixel coordinates (u right, v down) of a
    ``width`` x ``height`` frame, through the full-image camera ``cam`` = (sx, sy, tx, ty)."""
    sx, sy, tx, ty = (float(c) for c in cam)
    verts = np.asarray(verts, dtype=np.float64)
    u = (sx * (verts[:, 0] + tx) + 1.0) * (0.5 * width)
    v = (sy * (verts[:, 1] + ty) + 1.0) * (0.5 * height)
    return np.stack([u, v], axis=-1)


def pixel_region(
    pixels: np.ndarray, width: int, height: int, *, margin: int = 2, align: int = 1
) -> tuple[int, int, int, int] | None:
    """The integer window (x0, y0, w, h) of a ``width`` x ``height`` frame that holds ``pixels`` (K x 2,
    continuous) plus ``margin`` pixels, or None when they all fall outside the frame.

    With ``align`` > 1 the window's width and height are rounded up to multiples of it (then moved back
    inside the frame, and never larger than the frame), so that a renderer sees few distinct sizes.
    """
    if len(pixels) == 0 or not np.isfinite(pixels).all():
        return None
    lo = np.floor(pixels.min(axis=0)).astype(np.int64) - margin
    hi = np.ceil(pixels.max(axis=0)).astype(np.int64) + margin
    size = np.array([width, height], dtype=np.int64)
    lo, hi = np.maximum(lo, 0), np.minimum(hi, size)
    if np.any(hi <= lo):
        return None
    extent = np.minimum(-(-(hi - lo) // align) * align, size)  # round up, at most the frame
    lo = np.minimum(lo, size - extent)  # keep the window inside the frame
    return int(lo[0]), int(lo[1]), int(extent[0]), int(extent[1])


def projection_matrix(
    cam, width: int, height: int, region: tuple[int, int, int, int] | None = None, z_range=(-1.0, 1.0)
) -> np.ndarray:
    """The 4 x 4 OpenGL projection of the original's weak-perspective camera for one window of the frame.

    cam: (sx, sy, tx, ty) full-image camera; region: (x0, y0, w, h) pixels of the ``width`` x ``height``
    frame (default: the whole frame, which gives the original's matrix up to the depth row). The mesh is
    expected in eye coordinates (``verts @ MODEL_TO_EYE``) with the camera at the origin. ``z_range`` =
    (near, far) model-frame depths Z that must stay visible; they map to normalised depth -0.9 and 0.9
    (nearer surfaces win the depth test, as with the original's P22 = -1).
    """
    sx, sy, tx, ty = (float(c) for c in cam)
    x0, y0, w, h = region if region is not None else (0, 0, width, height)
    near, far = float(z_range[0]), float(z_range[1])
    half = max(0.5 * (far - near), 1e-6) / 0.9
    mid = 0.5 * (near + far)
    P = np.zeros((4, 4))
    # full-frame NDC x_n = sx (X + tx) -> window NDC (x_n + 1) W / w - 2 x0 / w - 1
    P[0, 0] = sx * width / w
    P[0, 3] = sx * tx * width / w + (width - 2.0 * x0 - w) / w
    # eye y = -Y; NDC y points up, image rows down: window NDC = y_n H / h + (h - H + 2 y0) / h
    P[1, 1] = sy * height / h
    P[1, 3] = -sy * ty * height / h + (h - height + 2.0 * y0) / h
    # eye z = -Z: z_ndc = (Z - mid) / half
    P[2, 2] = -1.0 / half
    P[2, 3] = -mid / half
    P[3, 3] = 1.0
    return P


def rotate_about_vertical(verts: np.ndarray, degrees: float = 90.0) -> np.ndarray:
    """Rotate V x 3 vertices by ``degrees`` about the vertical (y) axis through their centroid.

    In the model frame (y down) +90 degrees turns a person who faces the camera so that the camera sees
    their left side.
    """
    verts = np.asarray(verts, dtype=np.float32)
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    R = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=np.float32)
    center = verts.mean(axis=0, keepdims=True)
    return (verts - center) @ R.T + center


def full_image_cameras(crop_cam, boxes, width: int, height: int, *, scale: float | None = None) -> np.ndarray:
    """Crop cameras of ``maed eval`` predictions -> full-image cameras (N x 4: sx, sy, tx, ty).

    crop_cam: N x 3 (s, tx, ty) of the 224 crop; boxes: N x 4 (cx, cy, w, h) pixels as stored in the
    database. The evaluation crop is the box scaled by ``scale`` (default
    ``maed.data.bbox.BASE_SCALE`` = 1.3, see ``crop_affine``) and stretched to a square, so x uses
    the scaled width and y the scaled height (the two agree for the square boxes of the datasets).
    """
    from maed.body.geometry import convert_crop_cam_to_orig_img  # start-up: torch (~2 s) stays out of `maed --help`

    scale = BASE_SCALE if scale is None else float(scale)
    crop_cam = np.asarray(crop_cam, dtype=np.float64).reshape(-1, 3)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    along_x = boxes.copy()
    along_x[:, 2] = boxes[:, 2] * scale
    along_y = boxes.copy()
    along_y[:, 2] = boxes[:, 3] * scale
    cam_x = convert_crop_cam_to_orig_img(crop_cam, along_x, width, height)
    cam_y = convert_crop_cam_to_orig_img(crop_cam, along_y, width, height)
    return np.stack([cam_x[:, 0], cam_y[:, 1], cam_x[:, 2], cam_y[:, 3]], axis=-1)
