"""Headless OpenGL for pyrender: choose the platform, build an offscreen renderer, explain failures.

PyOpenGL fixes its platform when ``OpenGL`` is first imported, from ``PYOPENGL_PLATFORM``: ``egl`` (Mesa's
llvmpipe software rasteriser on a CPU-only machine, the GPU's driver on a GPU machine) or ``osmesa``. When
the variable is unset, :func:`gl_platform` picks EGL if its library is installed, else OSMesa, and sets it
before pyrender is imported. A machine without either gets one :class:`RenderError` that names the Debian
packages to install; callers that can do without shading (the demo) catch it and draw without OpenGL.

Notes for callers: OSMesa returns RGB even when RGBA is asked for, so use ``depth > 0`` as the coverage
mask; pyrender's renderer is not thread-safe, so keep one per thread and ``delete()`` it when done.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import os
import sys

from maed.errors import MaedError

#: Debian/Ubuntu packages that provide each platform
GL_PACKAGES = {"egl": "libegl1 libegl-mesa0 libgl1-mesa-dri", "osmesa": "libosmesa6"}
_LIBRARIES = {"egl": "EGL", "osmesa": "OSMesa"}


class RenderError(MaedError, RuntimeError):
    """No usable headless OpenGL (missing system libraries, or a driver that fails to start)."""


def install_hint(platform: str | None = None) -> str:
    """How to get a headless OpenGL platform, for messages."""
    if platform in GL_PACKAGES:
        return f"`apt-get install {GL_PACKAGES[platform]}`"
    return f"`apt-get install {GL_PACKAGES['egl']}` (EGL) or `apt-get install {GL_PACKAGES['osmesa']}` (OSMesa)"


def gl_platform() -> str:
    """The PyOpenGL platform to use: ``$PYOPENGL_PLATFORM`` when set, else ``egl`` or ``osmesa``, whichever
    library is installed (EGL first). Sets ``PYOPENGL_PLATFORM`` so that pyrender picks the same one."""
    chosen = os.environ.get("PYOPENGL_PLATFORM")
    if not chosen:
        chosen = next((p for p, lib in _LIBRARIES.items() if ctypes.util.find_library(lib)), None)
        if chosen is None:
            raise RenderError(f"no headless OpenGL library found (neither EGL nor OSMesa); install {install_hint()}")
        os.environ["PYOPENGL_PLATFORM"] = chosen
    return chosen


def import_pyrender():
    """``pyrender`` (the ``pyrender2`` package) imported on the chosen headless platform."""
    platform = gl_platform()
    _load_triton_first()
    try:
        import pyrender
    except ImportError as e:
        if getattr(e, "name", None) in ("pyrender", "trimesh", "pyglet"):
            raise MaedError(f"mesh rendering needs pyrender2 ({e}); install it with `pip install maed[demo]`") from None
        raise RenderError(f"OpenGL ({platform}) could not be loaded ({e}); install {install_hint(platform)}") from None
    return pyrender


def _load_triton_first() -> None:
    """Mesa's software rasteriser (EGL's llvmpipe and OSMesa) loads its LLVM into the process; importing
    triton (PyTorch's compiler, which bundles another LLVM) after that crashes the interpreter (seen here
    with Mesa 22.3 and triton 3.x, e.g. on a later ``torch.compile``), while the other order works. So
    triton, when installed, is imported before OpenGL is loaded (about 0.2 s, once)."""
    import importlib.util

    if "triton" not in sys.modules and importlib.util.find_spec("triton") is not None:
        with contextlib.suppress(Exception):  # a broken triton install must not stop the rendering
            import triton  # noqa: F401


def offscreen_renderer(width: int, height: int):
    """A ``pyrender.OffscreenRenderer`` of ``width`` x ``height`` pixels; :class:`RenderError` when the
    platform cannot create a context (with the packages that provide one)."""
    pyrender = import_pyrender()
    platform = os.environ.get("PYOPENGL_PLATFORM", "egl")
    try:
        return pyrender.OffscreenRenderer(int(width), int(height))
    except Exception as e:  # PyOpenGL and the drivers raise many different error types
        raise RenderError(
            f"headless OpenGL ({platform}) failed to start: {type(e).__name__}: {e}. Install {install_hint(platform)}, "
            "or set PYOPENGL_PLATFORM=osmesa with libosmesa6 installed"
        ) from None
