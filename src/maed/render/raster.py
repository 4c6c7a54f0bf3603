"""Drawing meshes without OpenGL: a vectorised numpy triangle rasteriser with a depth buffer.

The demo falls back to this when no headless OpenGL works. ``cv2.fillPoly`` fills several polygons of one
call with the even-odd rule, so overlapping or edge-sharing triangles drawn in batches cancel out (holes
and cracks); one OpenCV call per triangle is a Python loop over ~27k faces. Instead every triangle is
expanded into the pixel centres of its bounding box at once, tested with edge functions, and the nearest
surface wins per pixel (interpolated depth), which is what drawing the faces sorted far to near gives,
without its errors where surfaces cross. Faces are shaded flat with the lights of ``maed.render.shading``.
"""

from __future__ import annotations

import numpy as np

from maed.render.projection import MODEL_TO_EYE, project_to_pixels
from maed.render.shading import face_normals, irradiance, to_srgb_uint8

#: candidate (triangle, pixel) pairs tested per batch, to bound memory for large meshes on large frames
_BATCH = 1 << 21


def rasterize(tri_xy: np.ndarray, tri_z: np.ndarray, width: int, height: int, *, cull_back: bool = False) -> np.ndarray:
    """Face index per pixel of a ``width`` x ``height`` image (H x W int32, -1 where no triangle covers).

    tri_xy: F x 3 x 2 continuous pixel coordinates of the corners (pixel centres at i + 0.5); tri_z: F x 3
    depths (smaller is nearer). A pixel is covered when its centre is inside a triangle or on its edge.
    With ``cull_back``, triangles that appear clockwise on screen (y down), i.e. turn their back to the
    viewer for a counter-clockwise mesh, are skipped.
    """
    tri_xy = np.asarray(tri_xy, dtype=np.float64)
    tri_z = np.asarray(tri_z, dtype=np.float64)
    a, b, c = tri_xy[:, 0], tri_xy[:, 1], tri_xy[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    keep = np.isfinite(area) & (area != 0)
    if cull_back:
        keep &= area < 0  # counter-clockwise with y up is clockwise in these y-down coordinates
    # pixel indices whose centres lie in each triangle's bounding box
    lo = np.ceil(tri_xy.min(axis=1) - 0.5)
    hi = np.floor(tri_xy.max(axis=1) - 0.5)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [width - 1, height - 1])
    extent = np.where(keep[:, None], hi - lo + 1, 0).clip(min=0).astype(np.int64)  # F x 2 (w, h)
    count = extent[:, 0] * extent[:, 1]
    faces = np.flatnonzero(count > 0)

    zbuf = np.full(height * width, np.inf)
    index = np.full(height * width, -1, dtype=np.int32)
    # batches of whole faces, about _BATCH candidate pixels each
    batch_of = (np.cumsum(count[faces]) - 1) // _BATCH
    for batch in np.split(faces, np.flatnonzero(np.diff(batch_of)) + 1):
        if len(batch) == 0:
            continue
        n = count[batch]
        f = np.repeat(batch, n)
        k = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)  # offset inside each face's box
        w = extent[f, 0]
        px = lo[f, 0].astype(np.int64) + k % w
        py = lo[f, 1].astype(np.int64) + k // w
        x, y = px + 0.5, py + 0.5
        # barycentric weights from edge functions, divided by the signed area
        A, B, C = a[f], b[f], c[f]
        w0 = ((B[:, 0] - x) * (C[:, 1] - y) - (B[:, 1] - y) * (C[:, 0] - x)) / area[f]
        w1 = ((C[:, 0] - x) * (A[:, 1] - y) - (C[:, 1] - y) * (A[:, 0] - x)) / area[f]
        w2 = 1.0 - w0 - w1
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= -1e-12)
        if not inside.any():
            continue
        f, px, py = f[inside], px[inside], py[inside]
        z = w0[inside] * tri_z[f, 0] + w1[inside] * tri_z[f, 1] + w2[inside] * tri_z[f, 2]
        pix = py * width + px
        order = np.lexsort((z, pix))  # by pixel, nearest first
        pix, z, f = pix[order], z[order], f[order]
        first = np.flatnonzero(np.r_[True, pix[1:] != pix[:-1]])
        pix, z, f = pix[first], z[first], f[first]
        nearer = z < zbuf[pix]
        zbuf[pix[nearer]] = z[nearer]
        index[pix[nearer]] = f[nearer]
    return index.reshape(height, width)


def draw_mesh(
    image: np.ndarray,
    verts: np.ndarray,
    faces: np.ndarray,
    cam,
    color,
    region: tuple[int, int, int, int],
    frame_size: tuple[int, int],
) -> np.ndarray:
    """Draw one mesh, flat-shaded, into ``region`` = (x0, y0, w, h) of a frame of ``frame_size`` = (width,
    height). ``image`` is that region (h x w x 3 uint8), changed in place; returns the h x w bool coverage.

    verts: V x 3 model frame (metres); faces: F x 3 counter-clockwise seen from outside; cam: (sx, sy, tx,
    ty) full-image camera; color: RGB in [0, 1].
    """
    x0, y0, w, h = region
    width, height = frame_size
    verts = np.asarray(verts, dtype=np.float32)
    pixels = project_to_pixels(verts, cam, width, height) - [x0, y0]
    index = rasterize(pixels[faces], verts[faces, 2], w, h, cull_back=True)
    covered = index >= 0
    if covered.any():
        used, local = np.unique(index[covered], return_inverse=True)
        tri = (verts @ MODEL_TO_EYE)[faces[used]]  # shade in the eye frame, where the lights are
        normals = face_normals(tri.reshape(-1, 3), np.arange(3 * len(used)).reshape(-1, 3))
        light = irradiance(tri.mean(axis=1), normals)
        shades = to_srgb_uint8(light[:, None] * np.asarray(color, dtype=np.float32)[None, :])
        image[covered] = shades[local.reshape(-1)]
    return covered
