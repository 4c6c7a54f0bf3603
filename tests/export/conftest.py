"""Body models built once per session for the export tests, random poses, and the Khronos glTF validator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

GLTF_VALIDATOR_VERSION = "2.0.0-dev.3.10"
# validates every file named on the command line in one node process; prints a JSON list of reports
_VALIDATE_JS = r"""
const fs = require('fs');
const validator = require(process.argv[2]);
(async () => {
  const reports = [];
  for (const path of process.argv.slice(3)) {
    reports.push(await validator.validateBytes(new Uint8Array(fs.readFileSync(path)), {uri: path, maxIssues: 0}));
  }
  process.stdout.write(JSON.stringify(reports));
})().catch((e) => { console.error(String(e)); process.exit(1); });
"""


@pytest.fixture(scope="session")
def anny_body():
    """Anny's default 104-bone rig (first build about two minutes, cached under ~/.cache/anny)."""
    pytest.importorskip("anny")
    from maed.body import build_body_model

    return build_body_model("anny")


@pytest.fixture(scope="session")
def anny_cmu_body():
    """Anny's 31-bone CMU rig (first build about 45 s, cached under ~/.cache/anny)."""
    pytest.importorskip("anny")
    from maed.body.anny_model import AnnyBody

    return AnnyBody(rig="cmu_mb")


@pytest.fixture(scope="session")
def smpl_lbs_body(smpl_dir):
    """The SMPL-format stand-in without pose blend shapes, which skinned files cannot hold: pure LBS."""
    from maed.body import build_body_model

    body = build_body_model("smpl", model_dir=smpl_dir)
    body.layer.posedirs.zero_()
    return body


def _random_rotmats(T: int, J: int, *, scale: float = 0.3, seed: int = 0) -> np.ndarray:
    """T x J x 3 x 3 rotations about random axes, angles about ``scale`` radians (float64)."""
    import torch

    from maed.body.geometry import axis_angle_to_rotmat

    aa = scale * np.random.default_rng(seed).standard_normal((T, J, 3))
    return axis_angle_to_rotmat(torch.from_numpy(aa)).numpy()


def _camera_root(T: int, *, seed: int = 0) -> np.ndarray:
    """T x 3 x 3 root rotations as a model predicts them in the camera frame: upright in the image (180
    degrees about x from the body model's y-up frame), turned a little about the vertical."""
    from scipy.spatial.transform import Rotation

    yaw = np.random.default_rng(seed).uniform(-0.6, 0.6, size=T)
    return Rotation.from_euler("xy", np.stack([np.full(T, np.pi), yaw], axis=1)).as_matrix()


def _rotation_angle(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Angle (radians) of A^T B for rotation stacks ... x 3 x 3."""
    cos = (np.trace(np.swapaxes(A, -1, -2) @ B, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.arccos(np.clip(cos, -1.0, 1.0))


@pytest.fixture(scope="session")
def random_rotmats():
    return _random_rotmats


@pytest.fixture(scope="session")
def camera_root():
    return _camera_root


@pytest.fixture(scope="session")
def rotation_angle():
    return _rotation_angle


@pytest.fixture(scope="session")
def gltf_validator():
    """``validate(paths) -> reports``: the Khronos glTF validator (npm ``gltf-validator``) run through node.

    Installed once into ``$MAED_CACHE_DIR/npm`` (default ~/.cache/maed/npm) with ``npm install --prefix``;
    skipped with the reason when node/npm are absent or the install fails (no network to the npm registry).
    """
    from maed.utils.io import atomic_write_text

    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("the Khronos glTF validator needs node and npm, which are not installed")
    # a test tool's cache, not the package's: maed itself reads no cache directory
    prefix = Path(os.environ.get("MAED_CACHE_DIR", Path.home() / ".cache" / "maed")) / "npm"
    package = prefix / "node_modules" / "gltf-validator"
    if not (package / "package.json").is_file():
        prefix.mkdir(parents=True, exist_ok=True)
        cmd = [
            npm,
            "install",
            "--prefix",
            str(prefix),
            "--no-audit",
            "--no-fund",
            f"gltf-validator@{GLTF_VALIDATOR_VERSION}",
        ]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.skip("npm install gltf-validator timed out (no network to the npm registry?)")
        if result.returncode != 0 or not (package / "package.json").is_file():
            pytest.skip(f"npm install gltf-validator failed: {result.stderr.strip()[-300:]}")
    script = prefix / "maed_validate.js"
    if not script.is_file() or script.read_text() != _VALIDATE_JS:
        atomic_write_text(script, _VALIDATE_JS)  # other test sessions may share the cache folder

    def validate(paths: list[Path]) -> list[dict]:
        out = subprocess.run(
            [node, str(script), str(package), *map(str, paths)], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, f"gltf-validator failed to run: {out.stderr}"
        return json.loads(out.stdout)

    return validate
