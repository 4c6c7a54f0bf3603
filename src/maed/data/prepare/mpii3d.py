"""MPI-INF-3DHP -> ``mpii3d_train_db.pt`` (S1-S8) and ``mpii3d_val_db.pt`` (the test set TS1-TS6).

Training: per subject, sequence and camera, the 28 ``annot2``/``annot3`` joints of each extracted
frame are converted to the 49-joint format (3D in metres, centred on the pelvis, joint 39). A frame
with any joint outside the 2048 x 2048 image is dropped and the video continues in a new segment
(``subj1_seq1_vid0_seg0``, ``..._seg1``, ...); the original's segment numbering could continue a
previous video's (ORIGINAL.md §9), here each video numbers its own segments from 0.

Test set: the 17 ``annot2``/``univ_annot3`` joints of ``annot_data.mat``, ``valid_frame`` stored as
``valid_i``; the same out-of-image rule with each sequence's image size.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from maed.data.bbox import bbox_from_present_kp2d, run_ids
from maed.data.database import concat_databases
from maed.data.keypoints import convert_kps
from maed.data.prepare.common import load_mat, progress, rel
from maed.errors import DataError

RAW_TREE = """\
  <raw>/S{1..8}/Seq{1,2}/annot.mat                              (training annotations)
  <raw>/S{1..8}/Seq{1,2}/imageFrames/video_{0..8}/frame_%06d.jpg (frames extracted from
        imageSequence/video_{i}.avi, numbered from 1: ffmpeg -i video_0.avi -qscale:v 2 frame_%06d.jpg)
  <raw>/mpi_inf_3dhp_test_set/TS{1..6}/annot_data.mat             (test set -> split 'val')
  <raw>/mpi_inf_3dhp_test_set/TS{1..6}/imageSequence/img_%06d.jpg"""

TRAIN_IMAGE_SIZE = (2048, 2048)  # (h, w) of the training videos
ROOT = 39  # 'hip' (pelvis) in the 49-joint format
#: joints with 3D confidence 1: the 14 LSP joints, pelvis, spine (H36M), head (H36M)
VALID_3D = list(range(25, 39)) + [39, 41, 43]
SUBJECTS = range(1, 9)
SEQUENCES = (1, 2)
TEST_SEQUENCES = range(1, 7)
_FRAME = re.compile(r"frame_(\d+)\.jpg$")


def find_splits(raw: Path) -> dict[str, list[Path]]:
    found = {}
    train = [raw / f"S{s}" / f"Seq{q}" for s in SUBJECTS for q in SEQUENCES]
    train = [d for d in train if (d / "annot.mat").is_file()]
    if train:
        found["train"] = train
    test = [raw / "mpi_inf_3dhp_test_set" / f"TS{t}" for t in TEST_SEQUENCES]
    test = [d for d in test if (d / "annot_data.mat").is_file()]
    if test:
        found["val"] = test
    return found


def _frames_dir(seq_dir: Path, cam: int) -> Path | None:
    for d in (seq_dir / "imageFrames" / f"video_{cam}", seq_dir / f"video_{cam}"):
        if d.is_dir():
            return d
    return None


def _in_image(j2d: np.ndarray, h: int, w: int) -> np.ndarray:
    """N x 49 x 3 -> N bool: every joint (absent ones sit at 0) inside an h x w image."""
    x, y = j2d[..., 0], j2d[..., 1]
    return np.all((x >= 0) & (x < w) & (y >= 0) & (y < h), axis=-1)


def _valid_column(n: int) -> np.ndarray:
    conf = np.zeros((n, 49, 1), dtype=np.float32)
    conf[:, VALID_3D] = 1.0
    return conf


def _video_rows(j2d: np.ndarray, j3d: np.ndarray, keep: np.ndarray, vid_prefix: str) -> dict:
    """Rows of the kept frames of one video (arrays over its frames), one segment per run of kept frames."""
    seg = run_ids(keep)[keep]
    j2d, j3d = j2d[keep], j3d[keep]
    present = j2d[..., 2] > 0  # the joints the dataset has (the same in 2D and 3D)
    # pelvis-centred; joints the dataset lacks stay at zero (the original moved them to minus the pelvis)
    j3d = np.where(present[..., None], j3d - j3d[:, ROOT : ROOT + 1], 0.0)
    return {
        "vid_name": np.array([f"{vid_prefix}_seg{k}" for k in seg]),
        "joints2D": j2d.astype(np.float32),
        "joints3D": np.concatenate([j3d.astype(np.float32), _valid_column(len(j3d))], axis=-1),
        "bbox": bbox_from_present_kp2d(j2d, present).astype(np.float32),
    }


def _cell(mat: dict, key: str, cam: int, path: Path) -> np.ndarray:
    cells = np.asarray(mat[key]).reshape(-1)
    if cam >= len(cells):
        raise DataError(f"{path}: field '{key}' has {len(cells)} cameras, camera {cam} requested")
    return np.asarray(cells[cam], dtype=np.float64)


def _read_train(raw: Path, seq_dirs: list[Path], options) -> tuple[list[dict], list[str]]:
    parts: list[dict] = []
    notes: list[str] = []
    h, w = TRAIN_IMAGE_SIZE
    missing_videos = []
    for seq_dir in progress(seq_dirs, desc="mpii3d train", enabled=options.progress):
        annot_path = seq_dir / "annot.mat"
        mat = load_mat(annot_path, fields=("annot2", "annot3"))
        subj, seq = seq_dir.parent.name[1:], seq_dir.name[3:]
        for cam in options.cameras:
            frames_dir = _frames_dir(seq_dir, cam)
            if frames_dir is None:
                missing_videos.append(f"{seq_dir.parent.name}/{seq_dir.name}/video_{cam}")
                continue
            a2 = _cell(mat, "annot2", cam, annot_path)
            a3 = _cell(mat, "annot3", cam, annot_path)
            if a2.ndim != 2 or a2.shape[1] != 56 or a3.shape != (a2.shape[0], 84):
                raise DataError(
                    f"{annot_path}: field 'annot2'/'annot3' of camera {cam} has shapes {a2.shape}/{a3.shape}, "
                    "expected (frames, 56)/(frames, 84)"
                )
            frames = sorted((int(m.group(1)), f.name) for f in frames_dir.iterdir() if (m := _FRAME.search(f.name)))
            frames = [(k, name) for k, name in frames if 1 <= k <= len(a2)]
            if not frames:
                continue
            idx = np.array([k - 1 for k, _ in frames])
            j2d = np.concatenate([a2.reshape(-1, 28, 2)[idx], np.ones((len(idx), 28, 1))], axis=-1)
            j2d = convert_kps(j2d, src="mpii3d", dst="spin")
            j3d = convert_kps(a3.reshape(-1, 28, 3)[idx] / 1000.0, src="mpii3d", dst="spin")
            keep = _in_image(j2d, h, w)
            if not keep.any():
                continue
            part = _video_rows(j2d, j3d, keep, f"subj{subj}_seq{seq}_vid{cam}")
            names = np.array([name for _, name in frames])[keep]
            part["frame_id"] = np.array([Path(n).stem for n in names])
            part["img_name"] = np.array([rel(frames_dir / n, raw) for n in names])
            parts.append(part)
    if missing_videos:
        notes.append(f"{len(missing_videos)} videos without extracted frames skipped (e.g. {missing_videos[0]})")
    return parts, notes


def _test_arrays(mat: dict, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """annot2 N x 17 x 2, univ_annot3 N x 17 x 3 (mm), valid_frame N, from either MATLAB file flavour."""
    a2, a3, valid = (np.asarray(mat[k]) for k in ("annot2", "univ_annot3", "valid_frame"))
    valid = valid.reshape(-1)
    n = len(valid)

    def frames_first(a: np.ndarray, c: int, field: str) -> np.ndarray:
        a = np.squeeze(a)
        if a.shape == (n, 17, c):  # h5py: MATLAB's c x 17 x 1 x N read reversed
            return a
        if a.shape == (c, 17, n):  # scipy: MATLAB order
            return a.transpose(2, 1, 0)
        raise DataError(f"{path}: field '{field}' has shape {np.shape(mat[field])}, expected 17 joints x {n} frames")

    return frames_first(a2, 2, "annot2"), frames_first(a3, 3, "univ_annot3"), valid


def _read_test(raw: Path, seq_dirs: list[Path], options) -> tuple[list[dict], list[str]]:
    import cv2

    parts: list[dict] = []
    for seq_dir in progress(seq_dirs, desc="mpii3d val", enabled=options.progress):
        annot_path = seq_dir / "annot_data.mat"
        mat = load_mat(annot_path, fields=("annot2", "univ_annot3", "valid_frame"))
        a2, a3, valid = _test_arrays(mat, annot_path)
        imgs = [seq_dir / "imageSequence" / f"img_{i + 1:06d}.jpg" for i in range(len(valid))]
        exists = np.array([p.is_file() for p in imgs], dtype=bool)
        if not exists.any():
            continue
        im = cv2.imread(str(imgs[int(np.argmax(exists))]))
        if im is None:
            raise DataError(f"{imgs[int(np.argmax(exists))]}: not a readable image")
        j2d = np.concatenate([a2, np.ones((len(a2), 17, 1))], axis=-1)
        j2d = convert_kps(j2d, src="mpii3d_test", dst="spin")
        j3d = convert_kps(a3 / 1000.0, src="mpii3d_test", dst="spin")
        keep = exists & _in_image(j2d, *im.shape[:2])
        if not keep.any():
            continue
        part = _video_rows(j2d, j3d, keep, seq_dir.name)
        kept = [p for p, k in zip(imgs, keep) if k]
        part["frame_id"] = np.array([p.stem for p in kept])
        part["img_name"] = np.array([rel(p, raw) for p in kept])
        part["valid_i"] = valid[keep].astype(bool)
        parts.append(part)
    return parts, []


def read_split(raw: Path, split: str, source: list[Path], options) -> dict:
    parts, notes = (_read_train if split == "train" else _read_test)(raw, source, options)
    db = concat_databases(parts) if parts else {"img_name": np.zeros((0,), dtype=str)}
    db["__notes__"] = notes
    return db
