"""A synthetic sequence as a video file with its ground truth beside it (``maed synth --video``).

``videos/seq_0003.mp4``: the sequence's frames as H.264 (``maed.render.video.VideoWriter``), at the run's
frame rate and size. ``videos/seq_0003_gt.npz``: its ground truth as plain arrays (``np.load(...,
allow_pickle=False)`` reads it), P people by T frames, in the units and frames of the databases
(docs/SYNTH.md):

    frame_id     T          frame numbers (frame t of the video)
    image_size   2          width, height in pixels
    fps          ()         frames per second
    person       P          each person's track name (the databases' ``vid_name``)
    bbox         P x T x 4  square box cx, cy, w, h (pixels), 1.1 x the projected mesh
    joints2D     P x T x 49 x 3   pixels and visibility (0: outside, hidden, or no such joint)
    joints3D     P x T x 49 x 4   camera frame, metres, and whether the body model has the joint
    pose         P x T x 3J axis-angle per bone, the root in the camera frame
    shape        P x T x S  shape (Anny: phenotype - 0.5)
    trans        P x T x 3  body_model(pose, shape).joints + trans = joints3D
    valid        P x T      the databases' ``valid``
    intrinsics   T x 4      fx, fy, cx, cy
    joint_names  49; bone_names J; body_model, rig (strings)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from maed.body.joints import JOINT_NAMES
from maed.render.video import VideoWriter
from maed.synth.sequence import frame_name
from maed.utils.io import atomic_path

PER_PERSON = ("bbox", "joints2D", "joints3D", "pose", "shape", "trans", "valid")


def ground_truth_path(video: str | os.PathLike) -> Path:
    """``seq_0003.mp4`` -> ``seq_0003_gt.npz`` beside it."""
    video = Path(video)
    return video.with_name(f"{video.stem}_gt.npz")


def ground_truth_arrays(rows: dict[str, np.ndarray], *, fps: float, size: tuple[int, int], kit: dict) -> dict:
    """One sequence's annotation rows (every person's T rows, consecutive, as ``maed.synth.sequence`` writes
    them) as the arrays listed in the module docstring. ``kit``: the run's ``pose_joints`` (bone names),
    ``body_model`` and ``rig``."""
    people = list(dict.fromkeys(str(v) for v in rows["vid_name"]))
    first = np.flatnonzero(rows["vid_name"] == people[0])
    out = {
        "frame_id": np.asarray(rows["frame_id"][first], dtype=np.int64),
        "image_size": np.asarray(size, dtype=np.int64),
        "fps": np.float64(fps),
        "person": np.asarray(people),
        "intrinsics": np.asarray(rows["intrinsics"][first], dtype=np.float32),
        "joint_names": np.asarray(JOINT_NAMES),
        "bone_names": np.asarray(kit["pose_joints"]),
        "body_model": np.asarray(kit["body_model"]),
        "rig": np.asarray(kit["rig"]),
    }
    for key in PER_PERSON:
        out[key] = np.stack([rows[key][rows["vid_name"] == p] for p in people])  # (P, T, ...)
    return out


def write_ground_truth(path: Path, rows: dict, *, fps: float, size: tuple[int, int], kit: dict) -> None:
    """``seq_XXXX_gt.npz`` (atomically) from a sequence's annotation rows (see :func:`ground_truth_arrays`)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **ground_truth_arrays(rows, fps=fps, size=size, kit=kit))


def write_sequence_video(path: Path, out: Path, index: int, *, frames: int, fps: float) -> None:
    """``path`` (H.264 at x264's CRF 20, written atomically) from the JPEG frames of sequence ``index`` of the
    run in ``out``. The renders compress well: 120 frames of 640 x 480 take about 0.2-0.3 MB."""
    import cv2

    writer = None
    try:
        for t in range(frames):
            image = cv2.imread(str(out / frame_name(index, t)), cv2.IMREAD_COLOR)
            if image is None:
                raise OSError(f"cannot read {out / frame_name(index, t)}")
            if writer is None:
                height, width = image.shape[:2]
                writer = VideoWriter(path, fps=fps, width=width, height=height)
            writer.write(image[..., ::-1])  # BGR -> RGB
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
