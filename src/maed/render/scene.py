"""One pyrender scene and offscreen context that draws one person at a time into a window of the frame.

Why one person per draw: the original lights every mesh from positions fixed relative to the mesh itself
(``maed.render.shading``), which a shared scene of several people cannot reproduce, and each person's own
window is smaller than the window around everyone. Everything else is reused between draws and frames:
the context (its viewport is resized, never recreated), the lights, the camera, and the mesh, whose vertex
buffer is overwritten in place when pyrender's buffer layout is the one we expect.

pyrender always draws into 4x multisampled buffers. That halves the speed of Mesa's software rasteriser
and only pays off when the edges are blended with the frame through the coverage (alpha) it produces, so
without ``antialias`` the buffers are allocated with one sample and the mesh is cut out by its depth.
"""

from __future__ import annotations

import numpy as np

from maed.render.gl import import_pyrender, offscreen_renderer
from maed.render.projection import MODEL_TO_EYE, projection_matrix
from maed.render.shading import AMBIENT, DEFAULT_COLOR, LIGHT_INTENSITY, LIGHT_POSITIONS, VertexNormals


class GLPersonRenderer:
    """Draws meshes with fixed ``faces`` (F x 3) through pyrender on the headless platform of
    ``maed.render.gl``. Raises :class:`maed.render.gl.RenderError` when no context can be made."""

    def __init__(
        self, faces: np.ndarray, num_vertices: int, *, width: int = 64, height: int = 64, antialias: bool = False
    ):
        self._pyrender = pyrender = import_pyrender()
        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        self.num_vertices = int(num_vertices)
        self.normals = VertexNormals(self.faces, self.num_vertices)
        self.antialias = bool(antialias)
        self.renderer = offscreen_renderer(width, height)
        if not self.antialias:
            _single_sample_buffers(self.renderer)

        class _WeakPerspective(pyrender.Camera):
            """A camera whose projection matrix is set per draw."""

            def __init__(self):
                super().__init__(znear=0.05, zfar=100.0)
                self.matrix = np.eye(4)

            def get_projection_matrix(self, width=None, height=None):
                return self.matrix

        self.scene = pyrender.Scene(bg_color=[0.0, 0.0, 0.0, 0.0], ambient_light=[AMBIENT] * 3)
        for position in LIGHT_POSITIONS:
            pose = np.eye(4)
            pose[:3, 3] = position  # a new array per light: pyrender keeps the pose by reference
            self.scene.add(pyrender.PointLight(color=[1.0, 1.0, 1.0], intensity=LIGHT_INTENSITY), pose=pose)
        self.camera = _WeakPerspective()
        self.scene.add(self.camera, pose=np.eye(4))
        self.material = pyrender.MetallicRoughnessMaterial(
            metallicFactor=0.0, alphaMode="OPAQUE", baseColorFactor=(*DEFAULT_COLOR, 1.0)
        )
        self._node = None
        self._primitive = None
        # OSMesa has no framebuffer objects: pyrender recreates its context on every size change there, so
        # such a platform always draws the whole frame
        self.fixed_viewport = not self.renderer._platform.supports_framebuffers()

    def _set_mesh(self, verts_eye: np.ndarray, normals_eye: np.ndarray) -> None:
        """Put the mesh into the scene: overwrite the vertex buffer when it is already on the GPU, else add a
        new mesh (pyrender uploads it at the next draw)."""
        if self._primitive is not None and self._update_buffer(verts_eye, normals_eye):
            return
        if self._node is not None:
            self.scene.remove_node(self._node)
        pyrender = self._pyrender
        self._primitive = pyrender.Primitive(
            positions=verts_eye, normals=normals_eye, indices=self.faces, material=self.material
        )
        self._node = self.scene.add(pyrender.Mesh([self._primitive]))

    def _update_buffer(self, verts_eye: np.ndarray, normals_eye: np.ndarray) -> bool:
        """pyrender's vertex buffer holds interleaved float32 (position, normal) rows for a primitive with
        positions and normals only; write the new rows into it. False when that is not possible."""
        p = self._primitive
        if getattr(p, "_vaid", None) is None or not getattr(p, "_buffers", None):
            return False
        from OpenGL import GL

        data = np.ascontiguousarray(np.concatenate([verts_eye, normals_eye], axis=1), dtype=np.float32)
        platform = self.renderer._platform
        platform.make_current()
        try:
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, p._buffers[0])
            GL.glBufferSubData(GL.GL_ARRAY_BUFFER, 0, data.nbytes, data)
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, 0)
        finally:
            platform.make_uncurrent()
        # keep pyrender's copy (bounds, later uploads) in step with what is on the GPU
        p.positions, p.normals = verts_eye, normals_eye
        return True

    def draw(
        self,
        verts: np.ndarray,
        cam,
        color,
        frame_size: tuple[int, int],
        region: tuple[int, int, int, int],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw one mesh into ``region`` = (x0, y0, w, h) of a frame of ``frame_size`` = (width, height).

        verts: V x 3 model frame (metres); cam: (sx, sy, tx, ty); color: RGB in [0, 1]. Returns the h x w x 3
        float32 colour, premultiplied by the coverage, and the h x w float32 coverage in [0, 1]: the
        multisampled alpha with ``antialias`` when the platform returns one that agrees with the depth
        buffer, else 1 where the depth buffer was written (OSMesa returns no alpha).
        """
        verts = np.asarray(verts, dtype=np.float32)
        width, height = frame_size
        verts_eye = verts @ MODEL_TO_EYE  # the original's 180 degree turn about x
        self._set_mesh(verts_eye, self.normals(verts_eye))
        self.material.baseColorFactor = np.array([*color, 1.0], dtype=np.float32)
        z = verts[:, 2]
        self.camera.matrix = projection_matrix(cam, width, height, region, (float(z.min()), float(z.max())))
        x0, y0, w, h = region
        self.renderer.viewport_width, self.renderer.viewport_height = w, h
        flags = self._pyrender.RenderFlags.RGBA if self.antialias else self._pyrender.RenderFlags.NONE
        color_buf, depth = self.renderer.render(self.scene, flags=flags)
        drawn = depth > 0
        rgb = np.asarray(color_buf[..., :3], dtype=np.float32)
        if self.antialias and color_buf.shape[-1] == 4:
            alpha = color_buf[..., 3].astype(np.float32) / 255.0
            if not (alpha[drawn] == 0).any():  # an alpha that really is the coverage
                return rgb, alpha
        coverage = drawn.astype(np.float32)
        return rgb * coverage[..., None], coverage

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.delete()
            self.renderer = None


def _single_sample_buffers(renderer) -> None:
    """Make ``renderer`` (a ``pyrender.OffscreenRenderer``) allocate its framebuffers with one sample
    instead of four, by swapping the allocation call for the duration of pyrender's framebuffer setup.
    Nothing changes (still 4 samples) if pyrender's internals are not the expected ones."""
    import pyrender.renderer as module

    inner = getattr(renderer, "_renderer", None)
    configure = getattr(inner, "_configure_main_framebuffer", None)
    allocate = getattr(module, "glRenderbufferStorageMultisample", None)
    if configure is None or allocate is None:
        return

    def configure_single_sample():
        module.glRenderbufferStorageMultisample = lambda target, samples, fmt, w, h: allocate(target, 0, fmt, w, h)
        try:
            configure()
        finally:
            module.glRenderbufferStorageMultisample = allocate

    inner._configure_main_framebuffer = configure_single_sample
