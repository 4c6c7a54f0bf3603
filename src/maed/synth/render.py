"""Headless rendering of a synthetic frame: people on a textured floor in sunlight, over a backdrop.

The people are drawn by pyrender on the platform ``maed.render.gl`` chooses (EGL with Mesa's llvmpipe on
a CPU; a :class:`maed.render.gl.RenderError` names the missing system packages). Geometry is given in the
camera frame of the databases (x right, y down, z forward, metres) and turned into OpenGL's (y up,
looking down -z) here. The pinhole camera is the databases' (fx, fy, cx, cy) with pixel centres at integer
coordinates, so a vertex at camera point X lands at pixel ``(fx X/Z + cx, fy Y/Z + cy)``; OpenGL puts
pixel centres at +0.5, hence the half-pixel shift given to pyrender.

The floor (the plane y = 0 of the world) is drawn on the CPU by casting each pixel's ray onto it: a
repeated texture, lit like pyrender lights a rough surface (ambient plus the sun and a fill light from the
camera, in linear colour, then gamma 2.2), fading into haze with distance (which also hides texture
aliasing near the horizon); the backdrop image shows above the horizon. Shadows are the people's meshes
flattened onto the floor along the sunlight: where they fall the floor loses the sun's light.

pyrender draws two passes per frame: shaded people (RGBA, composited over the floor by their coverage),
and a segmentation pass (one colour channel per person, at most three people; shadows grey) whose
depth gives the occlusion test of the 2D joints.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass

import cv2
import numpy as np

from maed.render.gl import import_pyrender, offscreen_renderer

#: OpenCV camera axes (x right, y down, z forward) -> OpenGL camera axes (x right, y up, z backward)
GL_FROM_CV = np.diag([1.0, -1.0, -1.0])
MAX_PEOPLE = 3
Z_NEAR, Z_FAR = 0.05, 200.0
SHADOW_GREY = 64  # segmentation value of shadow pixels (people are 255 in their own channel)
HAZE_START, HAZE_RANGE, HAZE_MAX = 6.0, 30.0, 0.9  # metres, metres, fraction
DIFFUSE = 0.96 / np.pi  # pyrender's diffuse BRDF of a dielectric (1 - 0.04) / pi


@dataclass
class Look:
    """A sequence's lighting and surroundings (world frame: y up, the floor at y = 0).

    background: H x W x 3 uint8 backdrop (shown above the horizon); floor_texture: h x w x 3 uint8,
    repeated every ``floor_tile`` metres from ``floor_centre`` (x, z); sun_direction: 3 unit vector the
    sunlight travels along (down); sun_colour: 3 RGB in [0, 1]; sun_intensity, fill_intensity: pyrender
    light intensities (the fill light shines from the camera); ambient: 3 RGB.
    """

    background: np.ndarray
    floor_texture: np.ndarray
    floor_tile: float
    floor_centre: np.ndarray
    sun_direction: np.ndarray
    sun_colour: np.ndarray
    sun_intensity: float
    fill_intensity: float
    ambient: np.ndarray


@dataclass
class Frame:
    """A rendered frame: ``image`` H x W x 3 uint8 RGB; ``person`` H x W int8, the index of the person
    covering each pixel (-1: none); ``depth`` H x W float32, the depth (metres along z) of that person's
    surface (0 where no person)."""

    image: np.ndarray
    person: np.ndarray
    depth: np.ndarray


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB values in [0, 1] -> linear (the transfer function pyrender's shader uses for textures)."""
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def vertex_normal_operator(faces: np.ndarray, num_vertices: int):
    """Sparse V x F incidence matrix: ``op @ face_normals`` sums each vertex's area-weighted face normals."""
    import scipy.sparse as sp

    F = len(faces)
    rows = faces.reshape(-1)
    cols = np.repeat(np.arange(F), 3)
    return sp.csr_matrix((np.ones(3 * F), (rows, cols)), shape=(num_vertices, F))


def vertex_normals(vertices: np.ndarray, faces: np.ndarray, operator) -> np.ndarray:
    """V x 3 unit normals of a mesh (V x 3 vertices, F x 3 faces, the operator above)."""
    v0, v1, v2 = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    n = operator @ np.cross(v1 - v0, v2 - v0)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _light_pose(direction_gl: np.ndarray) -> np.ndarray:
    """4 x 4 pose of a pyrender directional light shining along ``direction_gl`` (its -z axis)."""
    z = -direction_gl / np.linalg.norm(direction_gl)
    up = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
    return pose


class FloorPainter:
    """The floor and backdrop of a sequence's frames (see the module docstring): one per ``Look``."""

    def __init__(self, look: Look, width: int, height: int):
        self.look, self.width, self.height = look, width, height
        texture = srgb_to_linear(look.floor_texture.astype(np.float32) / 255.0).astype(np.float32)
        self.texture = cv2.resize(texture, (256, 256), interpolation=cv2.INTER_AREA)  # fewer texels: less shimmer
        self.haze = self.texture.reshape(-1, 3).mean(axis=0).astype(np.float32)
        self._rays_key: bytes | None = None

    def _rays(self, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every pixel's ray K^-1 (u, v, 1) in camera axes (H x W x 3) and its length (H x W), float32."""
        if self._rays_key != intrinsics.tobytes():
            fx, fy, cx, cy = intrinsics
            v, u = np.mgrid[0 : self.height, 0 : self.width].astype(np.float32)
            rays = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], axis=-1).astype(np.float32)
            self._ray_cache = (rays, np.linalg.norm(rays, axis=-1))
            self._rays_key = intrinsics.tobytes()
        return self._ray_cache

    def paint(self, intrinsics: np.ndarray, R_wc: np.ndarray, t_wc: np.ndarray) -> tuple[np.ndarray, ...]:
        """(sunlit, shaded, floor): H x W x 3 float32 linear colours of the floor with and without the sun,
        and H x W bool where the floor is seen (the rest is backdrop)."""
        look = self.look
        rays, length = self._rays(intrinsics)
        d = rays @ R_wc.astype(np.float32)  # world ray directions (rows of R_wc are the camera axes)
        centre = (-R_wc.T @ t_wc).astype(np.float32)
        floor = d[..., 1] < -1e-6
        s = np.where(floor, -centre[1] / np.where(floor, d[..., 1], -1.0), 0.0).astype(np.float32)
        floor &= s > 0
        size = self.texture.shape[0]
        scale = np.float32(size / look.floor_tile)
        map_x = np.mod((centre[0] - look.floor_centre[0] + s * d[..., 0]) * scale, size).astype(np.float32)
        map_y = np.mod((centre[2] - look.floor_centre[1] + s * d[..., 2]) * scale, size).astype(np.float32)
        albedo = cv2.remap(self.texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        haze = np.clip((s * length - HAZE_START) / HAZE_RANGE, 0.0, HAZE_MAX)[..., None]
        albedo += haze * (self.haze - albedo)
        up_from_camera = max(0.0, float(-R_wc[2, 1]))  # the fill light shines along the camera's forward axis
        shaded = (look.ambient + look.fill_intensity * up_from_camera * DIFFUSE).astype(np.float32)
        sun = look.sun_intensity * max(0.0, float(-look.sun_direction[1])) * DIFFUSE * np.asarray(look.sun_colour)
        return albedo * (shaded + sun.astype(np.float32)), albedo * shaded, floor


class FrameRenderer:
    """One offscreen OpenGL context of ``width`` x ``height`` and the per-body-model mesh data.

    faces: F x 3 int of the body mesh; num_vertices: V. Keep one per process (pyrender is not thread-safe)
    and call :meth:`close` when done.
    """

    def __init__(self, width: int, height: int, faces: np.ndarray, num_vertices: int):
        self.pyrender = import_pyrender()
        self.width, self.height = int(width), int(height)
        self.renderer = offscreen_renderer(self.width, self.height)
        with _single_sampled_framebuffers():  # the framebuffer is made by the first render
            empty = self.pyrender.Scene()
            empty.add(self.pyrender.PerspectiveCamera(yfov=1.0), pose=np.eye(4))
            self.renderer.render(empty, flags=self.pyrender.RenderFlags.DEPTH_ONLY)
        self.faces = np.ascontiguousarray(faces, dtype=np.uint32)
        self.normal_op = vertex_normal_operator(np.asarray(faces, dtype=np.int64), num_vertices)
        self._painter: FloorPainter | None = None

    def close(self) -> None:
        self.renderer.delete()

    def render(
        self,
        *,
        intrinsics: np.ndarray,
        R_wc: np.ndarray,
        t_wc: np.ndarray,
        people: list[np.ndarray],
        colours: list[np.ndarray],
        roughness: list[float],
        look: Look,
    ) -> Frame:
        """Draw one frame.

        intrinsics: (fx, fy, cx, cy) pixels; R_wc (3 x 3), t_wc (3,): world -> camera (x_c = R_wc x_w +
        t_wc); people: up to three V x 3 vertex arrays in the camera frame (metres); colours: V x 4 uint8
        sRGB per person; roughness: per person.
        """
        pyr = self.pyrender
        if len(people) > MAX_PEOPLE:
            raise ValueError(f"at most {MAX_PEOPLE} people per frame, got {len(people)}")
        if self._painter is None or self._painter.look is not look:
            self._painter = FloorPainter(look, self.width, self.height)
        intrinsics = np.asarray(intrinsics, dtype=np.float64)
        fx, fy, cx, cy = (float(v) for v in intrinsics)
        scene = pyr.Scene(bg_color=[0.0, 0.0, 0.0, 0.0], ambient_light=np.asarray(look.ambient, dtype=np.float64))
        camera = pyr.IntrinsicsCamera(fx=fx, fy=fy, cx=cx + 0.5, cy=cy + 0.5, znear=Z_NEAR, zfar=Z_FAR)
        scene.add(camera, pose=np.eye(4))
        sun_c = R_wc @ look.sun_direction
        sun = pyr.DirectionalLight(color=np.asarray(look.sun_colour), intensity=float(look.sun_intensity))
        scene.add(sun, pose=_light_pose(GL_FROM_CV @ sun_c))
        fill = pyr.DirectionalLight(color=np.ones(3), intensity=float(look.fill_intensity))
        scene.add(fill, pose=np.eye(4))  # from the camera, looking where it looks

        up_c = R_wc[:, 1]  # the world's up in camera axes
        seg_map, shadows = {}, []
        for k, (verts, rgba, rough) in enumerate(zip(people, colours, roughness)):
            v_gl = np.ascontiguousarray(verts @ GL_FROM_CV.T, dtype=np.float32)
            linear = np.rint(srgb_to_linear(rgba[:, :3] / 255.0) * 255.0).astype(np.uint8)  # lit, then gamma 2.2
            material = pyr.MetallicRoughnessMaterial(
                baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=float(rough)
            )
            prim = pyr.Primitive(
                positions=v_gl,
                normals=vertex_normals(v_gl, self.faces, self.normal_op).astype(np.float32),
                color_0=np.concatenate([linear, rgba[:, 3:]], axis=1),
                indices=self.faces,
                material=material,
            )
            node = scene.add(pyr.Mesh([prim]))
            seg_map[node] = tuple(255 if c == k else 0 for c in range(3))
            # the shadow: the mesh slid along the sunlight onto the floor (1 mm above it)
            height = (verts - t_wc) @ up_c
            flat = verts - (height / (sun_c @ up_c))[:, None] * sun_c + 0.001 * up_c
            shadow = pyr.Primitive(positions=(flat @ GL_FROM_CV.T).astype(np.float32), indices=self.faces)
            node = scene.add(pyr.Mesh([shadow]))
            seg_map[node] = (SHADOW_GREY,) * 3
            shadows.append(node.mesh)

        for mesh in shadows:  # shadows are seen only through the segmentation pass
            mesh.is_visible = False
        rgba, colour_depth = self.renderer.render(scene, flags=pyr.RenderFlags.RGBA)
        for mesh in shadows:
            mesh.is_visible = True
        if rgba.shape[-1] == 3:  # OSMesa gives RGB only: the coverage is where something was drawn
            rgba = np.concatenate([rgba, np.where(colour_depth > 0, 255, 0).astype(np.uint8)[..., None]], axis=-1)
        seg, depth = self.renderer.render(scene, flags=pyr.RenderFlags.SEG, seg_node_map=seg_map)
        people_map = _people_from_seg(seg, depth, len(people))
        sunlit, shaded, floor = self._painter.paint(intrinsics, R_wc, t_wc)
        in_shadow = (seg.min(axis=-1) >= SHADOW_GREY // 2) & (people_map["person"] < 0)
        shade = cv2.GaussianBlur(in_shadow.astype(np.float32), (0, 0), sigmaX=1.5)[..., None]
        ground = (1.0 - shade) * sunlit + shade * shaded
        ground = np.clip(ground, 0.0, 1.0) ** (1.0 / 2.2) * 255.0
        backdrop = np.where(floor[..., None], ground, look.background.astype(np.float32))
        return Frame(image=_composite(rgba, backdrop), **people_map)


@contextlib.contextmanager
def _single_sampled_framebuffers():
    """Make pyrender create its framebuffer without multisampling while this is active.

    pyrender always asks for 4x multisampled buffers; on llvmpipe they cost a third of a frame, and the
    frames end up downscaled into 128-224 pixel crops where edge aliasing does not show. Without the
    expected name in pyrender (another release) this does nothing and rendering stays multisampled.
    """
    module = sys.modules.get("pyrender.renderer")
    original = getattr(module, "glRenderbufferStorageMultisample", None)
    if original is None:
        yield
        return
    module.glRenderbufferStorageMultisample = lambda target, samples, fmt, w, h: original(target, 0, fmt, w, h)
    try:
        yield
    finally:
        module.glRenderbufferStorageMultisample = original


def _composite(rgba: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Premultiplied RGBA (pyrender's antialiased edges over a transparent clear) over a float backdrop."""
    alpha = rgba[..., 3:].astype(np.float32) / 255.0
    out = rgba[..., :3].astype(np.float32) + (1.0 - alpha) * background
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _people_from_seg(seg: np.ndarray, depth: np.ndarray, count: int) -> dict:
    """Person index per pixel from the one-channel-per-person segmentation (antialiased edges belong to
    the person covering at least half the pixel; shadows are grey in every channel), and its depth."""
    channels = seg[..., :count]
    strongest = channels.argmax(axis=-1)
    top = np.take_along_axis(channels, strongest[..., None], axis=-1)[..., 0]
    person = np.where((top >= 128) & (depth > 0), strongest, -1).astype(np.int8)
    return {"person": person, "depth": np.where(person >= 0, depth, 0.0).astype(np.float32)}
