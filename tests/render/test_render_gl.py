"""Headless OpenGL platform choice, its errors, and the library-order guard."""

from __future__ import annotations

import ctypes.util
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maed.render import gl


def test_platform_from_the_environment_or_the_installed_library(monkeypatch):
    monkeypatch.setenv("PYOPENGL_PLATFORM", "osmesa")
    assert gl.gl_platform() == "osmesa"
    monkeypatch.delenv("PYOPENGL_PLATFORM")
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: "libOSMesa.so.8" if name == "OSMesa" else None)
    assert gl.gl_platform() == "osmesa" and os.environ["PYOPENGL_PLATFORM"] == "osmesa"
    monkeypatch.delenv("PYOPENGL_PLATFORM")
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    with pytest.raises(gl.RenderError, match="libegl1 libegl-mesa0 libgl1-mesa-dri.*libosmesa6"):
        gl.gl_platform()


def test_install_hint_names_the_packages():
    assert gl.install_hint("osmesa") == "`apt-get install libosmesa6`"
    assert "libegl-mesa0" in gl.install_hint("egl") and "libosmesa6" in gl.install_hint()


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_triton_imported_after_a_render_does_not_crash(gl_works):
    """Mesa's LLVM and triton's clash when triton is loaded second (a segmentation fault); the renderer
    loads triton first. Run in a fresh interpreter, since this one may have imported both already."""
    code = (
        "import pyrender\n"
        "from maed.render.gl import offscreen_renderer\n"
        "r = offscreen_renderer(8, 8)\n"
        "s = pyrender.Scene()\n"
        "s.add(pyrender.PerspectiveCamera(yfov=1.0))\n"
        "r.render(s)\n"
        "import triton.runtime\n"
        "print('alive')\n"
    )
    src = str(Path(gl.__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "alive", done.stderr[-2000:]
