"""Crop cache: each frame's enlarged square crop stored once as a small JPEG, for fast training.

Decoding a 1920 x 1080 JPEG for every 224-px crop starves a GPU. ``build_crop_cache`` cuts, for every
database row, the square region of side ``max(w, h) x margin`` centred on the row's box, resizes it to
``size`` x ``size`` pixels and stores it as ``frames/<i // 1000>/<i>.jpg``. The margin covers every
augmentation the cache was built for, so that the augmented crop stays inside the cached region::

    margin = (1.3 + size_jitter) x (|cos r| + |sin r|) x (1 + slack),  r = min(rot_jitter, 45 degrees)

(1.3 is the crop's base scale, ``|cos r| + |sin r|`` the growth of a square's bounding box when turned
by r, ``slack`` = 5 % for the bilinear filter's footprint). A random crop (scale <= 1.3, shift <=
(1.3 - scale) / 2) stays within the 1.3 box. With the shipped configurations (no size or rotation
jitter) the margin is 1.365 and the 224-px training crop is resampled from about 244 cached pixels.

Layout of a cache directory::

    index.npz   center (n, 2) and zoom (n,): cache pixel = zoom x (frame pixel - center) + size / 2
    meta.json   version, size, margin, rows, database fingerprint; written last, so a cache without
                it is incomplete (a rerun resumes: rows whose JPEG exists are skipped)
    frames/     the JPEGs, written atomically

Datasets given a complete cache read the small JPEG and map the row's box and 2D keypoints into its
pixel frame with the same similarity, so the augmented crop and keypoints match full-frame loading (the
keypoints exactly, the pixels up to one extra bilinear resampling and the JPEG round trip).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from maed.data.database import as_str, find_image_prefix, image_path, load_database
from maed.data.transforms import BASE_SCALE
from maed.errors import DataError
from maed.utils.io import atomic_path, atomic_write_text, check_output_dir, remove_stale_temporaries

CACHE_VERSION = 1


def cache_margin(size_jitter: float = 0.0, rot_jitter: float = 0.0, slack: float = 0.05) -> float:
    """Cached region side / box side needed so that crops with these jitters stay inside (see above)."""
    r = np.deg2rad(min(abs(rot_jitter), 45.0))
    return float((BASE_SCALE + abs(size_jitter)) * (abs(np.cos(r)) + abs(np.sin(r))) * (1.0 + slack))


def default_crop_cache_dir(db_path: str | os.PathLike) -> Path:
    """Where a database's crop cache lives by default: ``<db_dir>/crop_cache/<db file stem>``."""
    db_path = Path(db_path)
    return db_path.parent / "crop_cache" / db_path.stem


def database_fingerprint(db: dict) -> str:
    """A short hash of the rows' image names and boxes: a cache is valid only for the same rows."""
    h = hashlib.sha1()
    names = np.asarray(db["img_name"])
    h.update(str(len(names)).encode())
    h.update("\n".join(as_str(n) for n in names).encode("utf-8", "surrogateescape"))
    h.update(np.ascontiguousarray(np.asarray(db["bbox"], dtype=np.float64)).tobytes())
    return h.hexdigest()[:16]


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as H x W x 3 uint8 RGB; a missing or unreadable file raises ``DataError``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"image could not be decoded (truncated or not an image): {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _cache_frames(bbox: np.ndarray, size: int, margin: float) -> tuple[np.ndarray, np.ndarray]:
    bbox = np.asarray(bbox, dtype=np.float64)
    side = np.maximum(np.maximum(bbox[:, 2], bbox[:, 3]), 1.0) * margin
    return bbox[:, :2].copy(), size / side


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        data = e
    if not isinstance(data, dict):
        raise DataError(
            f"{path}: not a crop cache record ({data}); delete the cache or rebuild it "
            "(--crop-cache --force on the command that made it: maed prepare or maed synth)"
        )
    return data


def _frame_path(out_dir: Path, i: int) -> Path:
    return out_dir / "frames" / f"{i // 1000:04d}" / f"{i:07d}.jpg"


class CropCache:
    """A complete crop cache opened for reading (see the module docstring)."""

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        meta_path = self.out_dir / "meta.json"
        if not meta_path.is_file():
            raise DataError(f"crop cache {self.out_dir} is incomplete (no meta.json); rerun build_crop_cache")
        self.meta = _read_json(meta_path)
        if self.meta.get("version") != CACHE_VERSION:
            raise DataError(
                f"crop cache {self.out_dir}: version {self.meta.get('version')}, expected {CACHE_VERSION}; rebuild it"
            )
        try:
            with np.load(self.out_dir / "index.npz") as index:  # allow_pickle=False: arrays only
                self.center = index["center"]
                self.zoom = index["zoom"]
            self.size = int(self.meta["size"])
            self.margin = float(self.meta["margin"])
            self.rows, self.fingerprint = int(self.meta["rows"]), str(self.meta["fingerprint"])
        except (OSError, ValueError, KeyError, TypeError, EOFError) as e:
            raise DataError(
                f"crop cache {self.out_dir} is damaged ({type(e).__name__}: {e}); rebuild it "
                "(--crop-cache --force on the command that made it: maed prepare or maed synth)"
            ) from None

    @staticmethod
    def is_complete(out_dir: str | os.PathLike | None) -> bool:
        return out_dir is not None and (Path(out_dir) / "meta.json").is_file()

    def check_database(self, db: dict, db_label: str = "database") -> None:
        """Raise ``DataError`` when the cache was built for other rows than ``db``'s."""
        fp = database_fingerprint(db)
        if fp != self.fingerprint or len(db["img_name"]) != self.rows:
            raise DataError(
                f"crop cache {self.out_dir} was built for different rows than {db_label} "
                f"({self.rows} rows, fingerprint {self.fingerprint}; the database has "
                f"{len(db['img_name'])} rows, fingerprint {fp}); delete it and rebuild it "
                "(--crop-cache on the command that made it: maed prepare or maed synth)"
            )

    def check_coverage(self, size_jitter: float, rot_jitter: float) -> None:
        need = cache_margin(size_jitter, rot_jitter, slack=0.0)
        if need > self.margin + 1e-9:
            warnings.warn(
                f"crop cache {self.out_dir} covers {self.margin:.3f} x the box, but size_jitter={size_jitter} "
                f"and rot_jitter={rot_jitter} need {need:.3f}: augmented crops will be cut at the cache's "
                "edge. Rebuild the cache with these jitters.",
                stacklevel=3,
            )

    def read(self, i: int) -> np.ndarray:
        """The cached crop of row ``i``: size x size x 3 uint8 RGB."""
        return read_image(_frame_path(self.out_dir, int(i)))

    def affine(self, i: int) -> np.ndarray:
        """2 x 3 affine from frame pixels to the cached crop's pixels of row ``i``."""
        z, c = float(self.zoom[i]), self.center[i]
        return np.array([[z, 0.0, self.size / 2.0 - z * c[0]], [0.0, z, self.size / 2.0 - z * c[1]]])

    def map_bbox(self, rows: np.ndarray, bbox: np.ndarray) -> np.ndarray:
        """Boxes N x 4 (cx, cy, w, h) in frame pixels of ``rows`` -> the same boxes in cache pixels."""
        z = self.zoom[rows][:, None]
        out = np.array(bbox, dtype=np.float64, copy=True)
        out[:, :2] = z * (out[:, :2] - self.center[rows]) + self.size / 2.0
        out[:, 2:4] = z * out[:, 2:4]
        return out

    def map_points(self, rows: np.ndarray, kp: np.ndarray) -> np.ndarray:
        """Keypoints N x K x C (x, y pixels first) of ``rows`` -> cache pixels (other columns kept)."""
        z = self.zoom[rows][:, None, None]
        out = np.array(kp, dtype=np.float64, copy=True)
        out[..., :2] = z * (out[..., :2] - self.center[rows][:, None, :]) + self.size / 2.0
        return out


def build_crop_cache(
    db: str | os.PathLike | dict,
    dataset_root: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    *,
    size: int = 256,
    size_jitter: float = 0.0,
    rot_jitter: float = 0.0,
    quality: int = 95,
    num_workers: int = 4,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write the crop cache of a database (a ``*_db.pt`` path or a loaded dict) and return its directory.

    ``dataset_root`` is the directory the rows' ``img_name`` are relative to. ``out_dir`` defaults to
    :func:`default_crop_cache_dir` (needs a path ``db``). ``size`` is the cached crop's side in pixels;
    ``size_jitter`` and ``rot_jitter`` are the largest augmentation jitters the cache must cover
    (``cfg.DATASET.SIZE_JITTER`` / ``ROT_JITTER``). Each source image is decoded once for all its rows.
    Resumable: rerunning skips the rows already written (and removes the temporary files a killed build
    left, see ``maed.utils.io.remove_stale_temporaries``). A finished cache is left untouched unless
    ``overwrite``; a cache of other rows or parameters raises ``DataError`` unless ``overwrite``.
    """
    from tqdm import tqdm

    if isinstance(db, dict):
        if out_dir is None:
            raise DataError("build_crop_cache: out_dir is required when the database is given as a dict")
        db_label = "the given database"
    else:
        db_path = Path(db)
        out_dir = default_crop_cache_dir(db_path) if out_dir is None else out_dir
        db_label = str(db_path)
        db = load_database(db_path)
    out_dir = Path(out_dir)
    if "bbox" not in db:
        raise DataError(f"{db_label}: no 'bbox' field; its images are already crops and need no crop cache")
    names = [as_str(n) for n in np.asarray(db["img_name"])]
    n = len(names)
    margin = cache_margin(size_jitter, rot_jitter)
    center, zoom = _cache_frames(db["bbox"], size, margin)
    meta = {
        "version": CACHE_VERSION,
        "size": int(size),
        "margin": margin,
        "rows": n,
        "fingerprint": database_fingerprint(db),
        "quality": int(quality),
        "dataset_root": str(dataset_root),
    }
    params_path = out_dir / "params.json"  # the parameters of a build in progress or done
    if params_path.is_file() and not overwrite:
        old = _read_json(params_path)
        if {k: old.get(k) for k in meta if k != "dataset_root"} != {k: meta[k] for k in meta if k != "dataset_root"}:
            raise DataError(
                f"crop cache {out_dir} holds crops of other rows or parameters ({old}); pass overwrite=True "
                "(`maed prepare ... --crop-cache --force`) or choose another directory"
            )
        if (out_dir / "meta.json").is_file():
            return out_dir
    elif overwrite and out_dir.exists():  # remove only what a cache consists of
        import shutil

        shutil.rmtree(out_dir / "frames", ignore_errors=True)
        for name in ("meta.json", "index.npz", "params.json"):
            (out_dir / name).unlink(missing_ok=True)
    check_output_dir(out_dir, option="crop cache")
    remove_stale_temporaries(out_dir, recursive=True)  # JPEGs of a killed earlier build
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(params_path, json.dumps(meta, indent=1))
    with atomic_path(out_dir / "index.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, center=center, zoom=zoom)

    todo: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        if not _frame_path(out_dir, i).is_file():
            todo.setdefault(name, []).append(i)
    root = Path(dataset_root)
    prefix = find_image_prefix(names, root)  # the authors' databases bake in 'data/<dataset>/...'

    def work(item: tuple[str, list[int]]) -> int:
        name, rows = item
        image = read_image(image_path(root, name, prefix))
        for i in rows:
            z, c = zoom[i], center[i]
            A = np.array([[z, 0.0, size / 2.0 - z * c[0]], [0.0, z, size / 2.0 - z * c[1]]])
            interp = cv2.INTER_AREA if z < 1.0 else cv2.INTER_LINEAR
            crop = cv2.warpAffine(image, A, (size, size), flags=interp, borderMode=cv2.BORDER_CONSTANT)
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise DataError(f"could not encode the crop of row {i} ({image_path(root, name, prefix)})")
            path = _frame_path(out_dir, i)
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_bytes(buf.tobytes())
        return len(rows)

    items = list(todo.items())
    with tqdm(total=sum(len(r) for r in todo.values()), disable=not progress, desc=f"crop cache {out_dir.name}") as bar:
        if num_workers > 1:
            with ThreadPoolExecutor(max_workers=num_workers) as pool:
                for done in pool.map(work, items):
                    bar.update(done)
        else:
            for item in items:
                bar.update(work(item))
    atomic_write_text(out_dir / "meta.json", json.dumps(meta, indent=1))
    return out_dir
