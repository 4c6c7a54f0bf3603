"""Human3.6M from SPIN-style preprocessed files -> ``h36m_{train,test}_db.pt``.

SPIN's ``h36m_train.py`` (and its evaluation files) write npz archives with ``imgname`` (N, relative
to the Human3.6M root), ``center`` (N x 2 px), ``scale`` (N; box side / 200 px), ``part`` (N x 24 x 3:
x, y px, visibility), ``S`` (N x 24 x 4: x, y, z metres, confidence), ``pose`` (N x 72) and ``shape``
(N x 10); the 24 joints are the ground-truth half (25-48) of the 49-joint format. The test split reads
``h36m_valid_protocol{1,2}.npz`` (``--h36m-protocol``, default 2), which need not carry part/pose/shape.
Video names come from the image names (``S1_Directions_1.54138969_000001.jpg`` -> video
``S1_Directions_1.54138969``, frame 1); rows are sorted by video and frame.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from maed.data.prepare.common import check_shape, require_file
from maed.errors import DataError

RAW_TREE = """\
  <raw>/h36m_train.npz                 (SPIN-style: imgname, center, scale, part, S, pose, shape)
  <raw>/h36m_valid_protocol2.npz       (test split; or _protocol1 with --h36m-protocol 1)
  <raw>/images/...                     (the frames imgname points to, relative to <raw>)"""

GT_JOINTS = slice(25, 49)  # where SPIN's 24 ground-truth joints go in the 49-joint format
_FRAME = re.compile(r"^(?P<vid>.+?)_(?P<frame>\d+)$")


def _test_file(raw: Path, protocol: int) -> Path:
    return raw / f"h36m_valid_protocol{protocol}.npz"


def find_splits(raw: Path) -> dict[str, Path]:
    found = {}
    if (raw / "h36m_train.npz").is_file():
        found["train"] = raw / "h36m_train.npz"
    for protocol in (2, 1):
        if _test_file(raw, protocol).is_file():
            found.setdefault("test", _test_file(raw, protocol))
    return found


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: not a readable npz archive ({e})") from None


def split_video_name(imgname: str) -> tuple[str, int]:
    """``images/S1_Directions_1.54138969_000001.jpg`` -> (``S1_Directions_1.54138969``, 1)."""
    stem = Path(imgname).stem
    m = _FRAME.match(stem)
    if not m:
        return stem, 0
    return m.group("vid"), int(m.group("frame"))


def read_split(raw: Path, split: str, source: Path, options) -> dict:
    if split == "test":
        source = require_file(
            _test_file(raw, options.h36m_protocol), f"Human3.6M protocol {options.h36m_protocol} test set"
        )
    z = _load_npz(source)
    for key in ("imgname", "center", "scale"):
        if key not in z:
            raise DataError(f"{source}: missing field '{key}' (fields present: {sorted(z)})")
    names = [str(n) for n in z["imgname"].reshape(-1)]
    n = len(names)
    center = check_shape(z["center"], (n, 2), source, "center").astype(np.float64)
    side = 200.0 * check_shape(z["scale"].reshape(-1), (n,), source, "scale").astype(np.float64)
    db: dict[str, np.ndarray] = {"img_name": np.array(names)}
    vids, frames = zip(*(split_video_name(x) for x in names)) if n else ((), ())
    db["vid_name"] = np.array(vids, dtype=str)
    db["frame_id"] = np.array(frames, dtype=np.int64)
    db["bbox"] = np.stack([center[:, 0], center[:, 1], side, side], axis=1).astype(np.float32)
    j2d = np.zeros((n, 49, 3), dtype=np.float32)
    if "part" in z:
        j2d[:, GT_JOINTS] = check_shape(z["part"], (n, 24, 3), source, "part")
    db["joints2D"] = j2d
    if "S" in z:
        j3d = np.zeros((n, 49, 4), dtype=np.float32)
        j3d[:, GT_JOINTS] = check_shape(z["S"], (n, 24, 4), source, "S")
        db["joints3D"] = j3d
    if "pose" in z and "shape" in z:
        db["pose"] = check_shape(z["pose"], (n, 72), source, "pose").astype(np.float32)
        db["shape"] = check_shape(z["shape"], (n, 10), source, "shape").astype(np.float32)
    order = np.lexsort((db["frame_id"], db["vid_name"]))  # videos contiguous, frames in order
    db = {k: v[order] for k, v in db.items()}
    db["__notes__"] = [f"from {source.name}"]
    return db
