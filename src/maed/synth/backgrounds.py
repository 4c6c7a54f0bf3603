"""Backdrops and floor textures: procedural patterns and the photographs inside the scikit-image wheel.

Only files that ship in the wheel are read (``skimage/data/*.png|jpg``, located without importing
scikit-image); no ``skimage.data`` function is called, since some of them download. Each source belongs
to the training pool (train and validation sequences) or the held-out pool (test sequences), so the test
split shows backgrounds the training split never saw:

- photographs, training: astronaut, camera, chelsea, rocket, motorcycle_left, hubble_deep_field,
  coins, text, brick, grass; held out: coffee, motorcycle_right, moon, page, gravel.
- procedural patterns, training: gradient, checker, stripes, blobs; held out: plaid, rings.

Floors take the texture-like ones only (tiled photographs of scenes look like wallpaper): training
brick, grass, text, checker, stripes, blobs; held out gravel, page, plaid, rings.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from maed.errors import MaedError

PHOTOS = {
    "train": (
        "astronaut.png", "camera.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "hubble_deep_field.jpg",
        "coins.png", "text.png", "brick.png", "grass.png",
    ),
    "test": ("coffee.png", "motorcycle_right.png", "moon.png", "page.png", "gravel.png"),
}  # fmt: skip
PATTERNS = {"train": ("gradient", "checker", "stripes", "blobs"), "test": ("plaid", "rings")}
#: sources that tile well as a floor
FLOOR_SOURCES = frozenset(
    {"brick.png", "grass.png", "text.png", "gravel.png", "page.png", "checker", "stripes", "blobs", "plaid", "rings"}
)
#: which pool each split draws from
SPLIT_POOL = {"train": "train", "val": "train", "test": "test"}


def skimage_data_dir() -> Path:
    """The ``data`` folder of the installed scikit-image wheel (found without importing the package)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise MaedError("maed synth reads the photographs of the scikit-image wheel; `pip install maed[synth]`")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@lru_cache(maxsize=32)
def load_photo(name: str) -> np.ndarray:
    """One bundled photograph as H x W x 3 uint8 RGB (grey images repeated). Read with Pillow, which,
    unlike libpng through OpenCV, does not print warnings about some files' colour profiles."""
    from PIL import Image, UnidentifiedImageError

    path = skimage_data_dir() / name
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as e:
        raise MaedError(
            f"{path}: missing or unreadable ({e}); reinstall scikit-image (`pip install maed[synth]`)"
        ) from None


def available_sources(pool: str, floor: bool = False) -> list[str]:
    """Source names of a pool: ``photo:<file>`` for the photographs present, ``pattern:<kind>``; with
    ``floor``, the texture-like ones only."""
    folder = skimage_data_dir()
    photos = [f"photo:{n}" for n in PHOTOS[pool] if (folder / n).is_file()]
    sources = photos + [f"pattern:{k}" for k in PATTERNS[pool]]
    return [s for s in sources if s.split(":", 1)[1] in FLOOR_SOURCES] if floor else sources


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(30, 200), rng.uniform(60, 240)]]], dtype=np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float64)


def pattern(kind: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A procedural H x W x 3 uint8 image of ``kind`` (see ``PATTERNS``) with random colours and scales."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    c0, c1 = _random_colour(rng), _random_colour(rng)
    angle = rng.uniform(0, np.pi)
    u = x * np.cos(angle) + y * np.sin(angle)
    v = -x * np.sin(angle) + y * np.cos(angle)
    period = rng.uniform(12, 120)
    if kind == "gradient":
        w = (u - u.min()) / max(np.ptp(u), 1.0)
    elif kind == "checker":
        w = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float64)
    elif kind == "stripes":
        w = 0.5 + 0.5 * np.sin(2 * np.pi * u / period)
    elif kind == "blobs":
        small = rng.random((max(height // 32, 2), max(width // 32, 2)))
        w = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        w = (w - w.min()) / max(np.ptp(w), 1e-6)
    elif kind == "plaid":
        w = 0.25 * (2 + np.sin(2 * np.pi * u / period) + np.sin(2 * np.pi * v / (0.6 * period)))
    elif kind == "rings":
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        w = 0.5 + 0.5 * np.cos(2 * np.pi * np.hypot(x - cx, y - cy) / period)
    else:
        raise ValueError(f"unknown pattern {kind!r}")
    image = (1 - w)[..., None] * c0 + w[..., None] * c1
    image += rng.normal(scale=4.0, size=image.shape)  # sensor-like grain
    return np.clip(image, 0, 255).astype(np.uint8)


def source_image(source: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """An H x W x 3 uint8 image from a source name: a random crop of a photograph (scaled, maybe
    mirrored, colour-shifted) or a fresh pattern."""
    kind, name = source.split(":", 1)
    if kind == "pattern":
        return pattern(name, width, height, rng)
    photo = load_photo(name)
    ph, pw = photo.shape[:2]
    zoom = max(width / pw, height / ph) * rng.uniform(1.0, 1.8)
    crop_w, crop_h = min(pw, int(np.ceil(width / zoom))), min(ph, int(np.ceil(height / zoom)))
    x0, y0 = int(rng.integers(0, pw - crop_w + 1)), int(rng.integers(0, ph - crop_h + 1))
    image = cv2.resize(photo[y0 : y0 + crop_h, x0 : x0 + crop_w], (width, height), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        image = image[:, ::-1]
    gain = rng.uniform(0.7, 1.2, size=3)
    return np.clip(image.astype(np.float64) * gain, 0, 255).astype(np.uint8)
