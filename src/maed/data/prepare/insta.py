"""InstaVariety TFRecords -> ``insta_{train,test}_db.pt`` and the frames as JPEG files, without TensorFlow.

Each record of ``<raw>/<split>/*.tfrecord`` is one video (a ``tf.train.Example``): ``meta/N`` frames,
``image/encoded`` (N JPEGs, 224 px crops), ``image/xys`` (N x 2 x 14 LSP joints), ``image/visibilities``
(N x 14), ``image/face_pts`` (N x 3 x 5), ``image/toe_pts`` (N x 3 x 6, possibly empty). When
``image/phis`` is present the points are in [-1, 1] and are mapped to pixels. The 25 joints are
converted to the 49-joint format (the original stored the 25 as they are, ORIGINAL.md §9). The frames are
written once, with their original bytes, to ``<raw>/insta_variety_img/<split>/<record>/<video>/<i>.jpg``;
``img_name`` is relative to ``<raw>``. There is no ``bbox``: the frames are already crops.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maed.data.keypoints import convert_kps
from maed.data.prepare.common import progress, rel
from maed.data.prepare.tfrecord import iter_records, parse_example
from maed.data.registry import dataset_info
from maed.errors import DataError
from maed.utils.io import atomic_write_bytes, remove_stale_temporaries

SPLITS = dataset_info("insta").splits
RAW_TREE = """\
  <raw>/train/*.tfrecord     (InstaVariety TFRecords)
  <raw>/test/*.tfrecord
  frames are written to <raw>/insta_variety_img/<split>/..."""
IMAGE_DIR = "insta_variety_img"


def find_splits(raw: Path) -> dict[str, list[Path]]:
    found = {}
    for split in SPLITS:
        files = sorted((raw / split).glob("*.tfrecord*")) if (raw / split).is_dir() else []
        if files:
            found[split] = files
    return found


def _floats(feat: dict, key: str, shape: tuple[int, ...], path: Path, index: int) -> np.ndarray:
    arr = np.asarray(feat.get(key, []), dtype=np.float64)
    if arr.size != int(np.prod(shape)):
        raise DataError(
            f"{path}: record {index} field '{key}' has {arr.size} values, expected {' x '.join(map(str, shape))}"
        )
    return arr.reshape(shape)


def example_keypoints(feat: dict, path: Path, index: int, image_hw: tuple[int, int] | None) -> np.ndarray:
    """The N x 25 x 3 InstaVariety keypoints (x, y pixels, visibility) of one decoded example."""
    if "meta/N" not in feat or not feat["meta/N"]:
        raise DataError(f"{path}: record {index} has no field 'meta/N'")
    n = int(feat["meta/N"][0])
    xys = _floats(feat, "image/xys", (n, 2, 14), path, index)
    vis = _floats(feat, "image/visibilities", (n, 1, 14), path, index)
    face = _floats(feat, "image/face_pts", (n, 3, 5), path, index)
    toes = feat.get("image/toe_pts", [])
    toes = np.zeros((n, 3, 6)) if len(toes) == 0 else _floats(feat, "image/toe_pts", (n, 3, 6), path, index)
    kp = np.concatenate([np.concatenate([xys, vis], axis=1), face, toes], axis=2)  # N x 3 x 25
    kp = kp.transpose(0, 2, 1).copy()
    if "image/phis" in feat:  # preprocessed: points in [-1, 1] of the image
        h, w = image_hw if image_hw is not None else (224, 224)
        kp[..., 0] = (kp[..., 0] + 1.0) * 0.5 * w
        kp[..., 1] = (kp[..., 1] + 1.0) * 0.5 * h
    return kp


def _image_hw(jpeg: bytes) -> tuple[int, int] | None:
    import cv2

    im = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    return None if im is None else im.shape[:2]


def _write_once(path: Path, data: bytes) -> None:
    if path.is_file() and path.stat().st_size == len(data):
        return

    atomic_write_bytes(path, data)


def read_split(raw: Path, split: str, source: list[Path], options) -> dict:
    vid_names, frame_ids, img_names, joints = [], [], [], []
    for path in progress(source, desc=f"insta {split}", enabled=options.progress):
        record = path.name
        for index, data in enumerate(iter_records(path)):
            try:
                feat = parse_example(data)
            except (ValueError, UnicodeDecodeError) as e:
                raise DataError(f"{path}: record {index} is not a tf.train.Example ({e})") from None
            images = feat.get("image/encoded", [])
            n = int(feat["meta/N"][0]) if feat.get("meta/N") else -1
            if len(images) != n:
                raise DataError(f"{path}: record {index} field 'image/encoded' has {len(images)} frames, meta/N {n}")
            kp = example_keypoints(feat, path, index, _image_hw(images[0]) if n else None)
            out_dir = raw / IMAGE_DIR / split / record / str(index)
            remove_stale_temporaries(out_dir)  # frames of a killed earlier run
            for i, jpeg in enumerate(images):
                _write_once(out_dir / f"{i}.jpg", jpeg)
            vid_names += [f"{split}/{record}-{index}"] * n
            frame_ids.append(np.arange(n))
            img_names += [rel(out_dir / f"{i}.jpg", raw) for i in range(n)]
            joints.append(convert_kps(kp, src="insta", dst="spin").astype(np.float32))
    if not img_names:
        return {"img_name": np.zeros((0,), dtype=str)}
    return {
        "vid_name": np.array(vid_names),
        "frame_id": np.concatenate(frame_ids),
        "img_name": np.array(img_names),
        "joints2D": np.concatenate(joints),
    }
