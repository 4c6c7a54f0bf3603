"""Meshes drawn over video frames: the renderer the demo and ``maed render`` share.

:class:`OverlayRenderer` draws every person of a frame with the original's weak-perspective camera and
lights (``maed.render.projection``, ``maed.render.shading``) through pyrender on a headless OpenGL
platform, or, when none works, with the numpy rasteriser of ``maed.render.raster`` (flat shading, same
camera and colours), so that an overlay is always written. Only the window each person covers is drawn
and composited; untouched pixels keep the input frame's values exactly.

People are composited one after the other, farthest first: with a weak-perspective camera a person's
scale is their only depth cue (scale ~ 1 / distance), so the one drawn with the larger scale covers the
other where they overlap.
"""

from __future__ import annotations

import colorsys
import contextlib
from dataclasses import dataclass

import numpy as np

from maed.render.gl import install_hint
from maed.render.projection import pixel_region, project_to_pixels, rotate_about_vertical
from maed.render.raster import draw_mesh
from maed.render.scene import GLPersonRenderer

BACKENDS = ("auto", "gl", "opencv")
#: window margin around a person's projected vertices (pixels), and the size step of GL windows
REGION_MARGIN = 3
REGION_ALIGN = 32
#: background of the side view (RGB uint8): a plain light grey
SIDE_BACKGROUND = (235, 235, 235)
#: rotation of the side view about the vertical axis through each person's centroid (degrees)
SIDE_ANGLE = 90.0

# colours of the first track ids, then golden-ratio steps around the hue circle
_PALETTE = (
    (0.60, 0.75, 0.95),  # light blue
    (0.98, 0.70, 0.50),  # apricot
    (0.60, 0.90, 0.60),  # green
    (0.95, 0.60, 0.80),  # pink
    (0.98, 0.90, 0.50),  # yellow
    (0.72, 0.62, 0.95),  # lavender
    (0.50, 0.88, 0.88),  # cyan
    (0.95, 0.55, 0.55),  # salmon
    (0.80, 0.85, 0.55),  # olive
    (0.85, 0.75, 0.65),  # beige
)


@dataclass
class PersonDraw:
    """One person in one frame.

    verts: V x 3 float32, metres, the model's frame (``MAEDOutput.verts``: x right, y down, z away).
    cam: (sx, sy, tx, ty) full-image weak-perspective camera, as returned by
    ``maed.body.geometry.convert_crop_cam_to_orig_img(crop cam, box, W, H)``.
    color: RGB in [0, 1] (``track_color(track_id)`` for a track).
    """

    verts: np.ndarray
    cam: np.ndarray
    color: tuple[float, float, float]


def track_color(track_id: int) -> tuple[float, float, float]:
    """A fixed colour (RGB in [0, 1]) per track id: ten distinct pastel colours for ids 0-9, then hues
    spaced by the golden ratio. Negative ids are mirrored onto non-negative ones."""
    i = abs(int(track_id))
    if i < len(_PALETTE):
        return _PALETTE[i]
    hue = (0.13 + i * 0.6180339887498949) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.45 + 0.1 * (i % 3), 0.95)
    return (round(r, 4), round(g, 4), round(b, 4))


class OverlayRenderer:
    """Draws people (:class:`PersonDraw`) over ``width`` x ``height`` RGB frames.

    faces: F x 3 int triangle indices of the body model (``body_model.faces``). ``backend``: ``"auto"``
    (pyrender through ``maed.render.gl`` when a context can be made, else the OpenCV fallback), ``"gl"``
    (:class:`maed.render.gl.RenderError` when impossible) or ``"opencv"``. ``.backend`` says which runs and
    ``.fallback_reason`` why the fallback was taken (None when GL runs or ``"opencv"`` was asked for). A GL
    failure during a render in ``"auto"`` mode also switches to the fallback, for that frame and the rest.
    ``opacity`` < 1 blends the meshes with the frame. ``antialias`` (OpenGL only) blends the mesh edges with
    the frame through their multisampled coverage, at about twice the drawing time. Use as a context
    manager, or call :meth:`close`.
    """

    def __init__(
        self,
        width: int,
        height: int,
        faces: np.ndarray,
        *,
        backend: str = "auto",
        opacity: float = 1.0,
        antialias: bool = False,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r}: expected one of {BACKENDS}")
        if int(width) < 1 or int(height) < 1:
            raise ValueError(f"frame size {width} x {height}: expected positive integers")
        faces = np.asarray(faces)
        if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
            raise ValueError(f"faces: expected F x 3 triangle indices, got shape {faces.shape}")
        self.width, self.height = int(width), int(height)
        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        self.num_vertices = int(self.faces.max()) + 1
        self.opacity = float(opacity)
        if not 0.0 < self.opacity <= 1.0:
            raise ValueError(f"opacity {opacity}: expected a value in (0, 1]")
        self.antialias = bool(antialias)
        self.requested = backend
        self.fallback_reason: str | None = None
        self._gl = None
        self._closed = False
        if backend != "opencv":
            try:
                self._start_gl()
            except Exception as e:  # headless GL fails in many ways (libraries, drivers, permissions)
                if backend == "gl":
                    raise
                self._fall_back(e)
        self.backend = "gl" if self._gl is not None else "opencv"

    # ------------------------------------------------------------------------------------------ GL
    def _start_gl(self) -> None:
        self._gl = GLPersonRenderer(
            self.faces, self.num_vertices, width=self.width, height=self.height, antialias=self.antialias
        )

    def _fall_back(self, error: BaseException) -> None:
        hint = install_hint()
        message = f"{type(error).__name__}: {error}"
        if hint not in message:
            message += f"; for the shaded OpenGL render install {hint}"
        self.fallback_reason = f"drawn without OpenGL (flat shading): {message}"
        if self._gl is not None:
            with contextlib.suppress(Exception):  # the context is already broken; nothing more to release
                self._gl.close()
        self._gl = None
        self.backend = "opencv"

    # ------------------------------------------------------------------------------------------ drawing
    def _check_people(self, people) -> list[PersonDraw]:
        checked = []
        for i, p in enumerate(people):
            verts = np.asarray(p.verts, dtype=np.float32)
            if verts.ndim != 2 or verts.shape[1] != 3 or len(verts) < self.num_vertices:
                raise ValueError(
                    f"people[{i}].verts: expected V x 3 with V >= {self.num_vertices} (the faces' vertices), "
                    f"got shape {verts.shape}"
                )
            cam = np.asarray(p.cam, dtype=np.float64).reshape(-1)
            if cam.shape != (4,):
                raise ValueError(f"people[{i}].cam: expected (sx, sy, tx, ty), got shape {cam.shape}")
            color = tuple(float(c) for c in p.color)
            if len(color) != 3:
                raise ValueError(f"people[{i}].color: expected RGB in [0, 1], got {p.color!r}")
            # vertices no face uses are never drawn
            checked.append(PersonDraw(verts=verts[: self.num_vertices], cam=cam, color=color))
        return checked

    def _draw(self, canvas: np.ndarray, people: list[PersonDraw]) -> np.ndarray:
        """Composite ``people`` onto ``canvas`` (H x W x 3 uint8, changed in place), farthest first."""
        if self._closed:
            raise RuntimeError("OverlayRenderer: render after close()")
        size = (self.width, self.height)
        order = sorted(range(len(people)), key=lambda i: abs(people[i].cam[0]))  # small scale = far
        for i in order:
            p = people[i]
            if not np.isfinite(p.verts).all() or not np.isfinite(p.cam).all():
                continue  # nothing sensible to draw (a failed prediction); the frame stays as it is
            pixels = project_to_pixels(p.verts, p.cam, *size)
            if self._gl is not None:
                region = pixel_region(pixels, *size, margin=REGION_MARGIN, align=REGION_ALIGN)
                if region is None:
                    continue
                if self._gl.fixed_viewport:
                    region = (0, 0, *size)
                try:
                    rgb, coverage = self._gl.draw(p.verts, p.cam, p.color, size, region)
                except Exception as e:
                    if self.requested == "gl":
                        raise
                    self._fall_back(e)
                else:
                    self._composite(canvas, region, rgb, coverage)
                    continue
            region = pixel_region(pixels, *size, margin=REGION_MARGIN)
            if region is None:
                continue

            x0, y0, w, h = region
            rgb = np.zeros((h, w, 3), dtype=np.uint8)
            covered = draw_mesh(rgb, p.verts, self.faces, p.cam, p.color, region, size)
            self._composite(canvas, region, rgb.astype(np.float32), covered.astype(np.float32))
        return canvas

    def _composite(self, canvas: np.ndarray, region, rgb: np.ndarray, coverage: np.ndarray) -> None:
        """canvas window = window (1 - opacity a) + opacity rgb, where a > 0; ``rgb`` (h x w x 3 float) is
        premultiplied by the coverage ``a`` (h x w in [0, 1]). Other pixels are not touched."""
        x0, y0, w, h = region
        window = canvas[y0 : y0 + h, x0 : x0 + w]
        drawn = coverage > 0
        a = self.opacity * coverage[drawn][:, None]
        mixed = window[drawn] * (1.0 - a) + self.opacity * rgb[drawn]
        window[drawn] = np.clip(np.round(mixed), 0, 255).astype(np.uint8)

    def render(self, frame: np.ndarray, people: list[PersonDraw]) -> np.ndarray:
        """The meshes of ``people`` over ``frame`` (H x W x 3 uint8 RGB, not modified). Returns a new
        H x W x 3 uint8 RGB image; pixels no mesh covers equal the input's."""
        frame = np.asarray(frame)
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"frame: expected {self.height} x {self.width} x 3 uint8 RGB, got {frame.shape} {frame.dtype}"
            )
        return self._draw(frame.copy(), self._check_people(people))

    def render_side(self, frame_shape_or_background, people: list[PersonDraw]) -> np.ndarray:
        """The same people seen from the side: each turned by ``SIDE_ANGLE`` (90) degrees about the vertical
        axis through its own centroid (the camera then sees a person who faces it from their left), drawn
        with the same cameras onto a plain light-grey background (``SIDE_BACKGROUND``), or onto the given
        H x W x 3 uint8 background image. ``frame_shape_or_background``: (H, W[, 3]) or that image."""
        arg = frame_shape_or_background
        if isinstance(arg, np.ndarray) and arg.ndim == 3:
            if arg.shape != (self.height, self.width, 3) or arg.dtype != np.uint8:
                raise ValueError(f"background: expected {self.height} x {self.width} x 3 uint8, got {arg.shape}")
            canvas = arg.copy()
        else:
            shape = tuple(int(s) for s in arg)
            if shape[:2] != (self.height, self.width):
                raise ValueError(f"frame shape {shape}: this renderer draws {self.height} x {self.width} frames")
            canvas = np.empty((self.height, self.width, 3), dtype=np.uint8)
            canvas[:] = SIDE_BACKGROUND
        turned = [
            PersonDraw(verts=rotate_about_vertical(p.verts, SIDE_ANGLE), cam=p.cam, color=p.color)
            for p in self._check_people(people)
        ]
        return self._draw(canvas, turned)

    def close(self) -> None:
        """Release the OpenGL context (if any). The renderer cannot draw afterwards."""
        if self._gl is not None:
            self._gl.close()
            self._gl = None
        self._closed = True

    def __enter__(self) -> OverlayRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
