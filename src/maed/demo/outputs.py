"""From network output to what the user reads: cameras in the full image, joints in pixels, files.

Conventions (docs/OUTPUTS.md): the body model's 3D output (vertices, joints) is in metres, in the camera's
axes (x right, y down, z away from the camera, as the predicted global orientation includes the turn that
puts the body upright in the image), centred on the body model's origin (no translation). The crop camera
(s, tx, ty) projects it into the crop: ``u = s (X + tx)``, ``v = s (Y + ty)`` in [-1, 1] of the crop (up to
the model's mild perspective, focal length 5000 at the 224-pixel crop). The crop covers
``BASE_SCALE`` (1.3) x the square box, so the full-image camera is :func:`full_image_camera`.

Root translation (for the GLB/BVH files and ``trans`` in tracks.npz): a pinhole camera with the nominal
focal length ``f = sqrt(W^2 + H^2)`` pixels (a 53 degree diagonal field of view, as CLIFF assumes for
unknown cameras) sees the body at depth ``t_z = 2 f / (W sx)``, the depth at which its weak-perspective
scale is right; ``t_x = tx`` and ``t_y = ty`` of the full-image camera. Depth is therefore only as good as
the nominal focal length: right up to one overall scale for the motion, exact for the image position.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from maed.body.geometry import convert_crop_cam_to_orig_img, rotmat_to_axis_angle, weak_perspective_projection
from maed.data.transforms import BASE_SCALE
from maed.demo.infer import TrackPrediction
from maed.demo.smooth import smooth_camera, smooth_rotations
from maed.demo.track import Track
from maed.utils.io import atomic_joblib_dump, atomic_path, atomic_write_text

TRACKS_FILE = "tracks.npz"
RESULTS_FILE = "results.pkl"
SUMMARY_FILE = "summary.json"
OVERLAY_FILE = "overlay.mp4"
SIDE_FILE = "overlay_side.mp4"
#: for an image input, its overlay also as a lossless picture (the video's frame is H.264-compressed)
STILL_FILE = "overlay.png"
BODY_CHUNK = 128  # frames per body-model forward


def nominal_focal(width: int, height: int) -> float:
    """Focal length in pixels assumed for an unknown camera: the image diagonal (about 53 degrees diagonal FoV)."""
    return float(math.hypot(width, height))


def crop_boxes(boxes: np.ndarray) -> np.ndarray:
    """Square track boxes (T x 4: cx, cy, side, side) -> the squares the crops cover (side x BASE_SCALE)."""
    out = np.array(boxes, dtype=np.float64, copy=True)
    out[:, 2:4] *= BASE_SCALE
    return out


def full_image_camera(cam: np.ndarray, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Crop cameras (T x 3: s, tx, ty) of square boxes (T x 4) -> full-image cameras (T x 4: sx, sy, tx, ty).

    With it, ``x_ndc = sx (X + tx)`` and ``y_ndc = sy (Y + ty)`` in [-1, 1] of the whole frame
    (``x_px = (x_ndc + 1) W / 2``). The crop side is 1.3 x the box side (:func:`crop_boxes`)."""
    return convert_crop_cam_to_orig_img(np.asarray(cam, np.float64), crop_boxes(boxes), width, height)


def camera_translation(cam_full: np.ndarray, width: int, height: int, focal: float | None = None) -> np.ndarray:
    """Full-image cameras (T x 4) -> the body's translation in the camera frame (T x 3 metres; x right,
    y down, z forward) under a pinhole camera of focal length ``focal`` pixels (default :func:`nominal_focal`)."""
    f = nominal_focal(width, height) if focal is None else float(focal)
    cam_full = np.asarray(cam_full, dtype=np.float64)
    # a negative scale (a mirrored body, which only an untrained model predicts) still lies in front
    tz = 2.0 * f / (width * np.clip(np.abs(cam_full[:, 0]), 1e-6, None))
    return np.stack([cam_full[:, 2], cam_full[:, 3], tz], axis=1)


def crop_to_image_points(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Points in [-1, 1] of each frame's crop (T x K x 2) -> pixels of the full frame."""
    cb = crop_boxes(boxes)
    return cb[:, None, :2] + np.asarray(points, np.float64) * (cb[:, None, 2:4] / 2.0)


@dataclass
class Person:
    """Everything the outputs hold about one tracked person (T frames; see docs/OUTPUTS.md)."""

    track: Track
    cam: np.ndarray  # (T, 3) crop camera
    rotmat: np.ndarray  # (T, J, 3, 3)
    betas: np.ndarray  # (T, S)
    cam_full: np.ndarray  # (T, 4)
    trans: np.ndarray  # (T, 3)
    joints3d: np.ndarray  # (T, K, 3)
    joints2d: np.ndarray  # (T, K, 2) pixels
    pose: np.ndarray  # (T, 3J) axis-angle
    verts: np.ndarray | None = None  # (T, V, 3) when asked for; dropped once the files are written

    @property
    def track_id(self) -> int:
        return self.track.track_id


@torch.inference_mode()
def body_forward(body_model, rotmat: np.ndarray, betas: np.ndarray, *, vertices: bool = True, device="cpu"):
    """The body model on T frames in chunks -> (vertices T x V x 3 or None, joints T x K x 3), float32."""
    verts, joints = [], []
    for s in range(0, len(rotmat), BODY_CHUNK):
        R = torch.from_numpy(np.ascontiguousarray(rotmat[s : s + BODY_CHUNK], dtype=np.float32)).to(device)
        b = torch.from_numpy(np.ascontiguousarray(betas[s : s + BODY_CHUNK], dtype=np.float32)).to(device)
        out = body_model(R, b)
        joints.append(out.joints.float().cpu().numpy())
        if vertices:
            verts.append(out.verts.float().cpu().numpy())
    return (np.concatenate(verts) if vertices else None), np.concatenate(joints)


def make_person(
    track: Track,
    pred: TrackPrediction,
    body_model,
    *,
    width: int,
    height: int,
    fps: float,
    smooth: dict | None = None,
    vertices: bool = False,
    device="cpu",
) -> Person:
    """Post-process one track's predictions: optional One-Euro smoothing (``smooth``: its keyword
    arguments, None to skip), the body model's joints (and ``vertices``, from the same forward pass), 2D
    joints in pixels, full-image camera, translation."""
    cam, rotmat, betas = pred.cam, pred.rotmat, pred.betas
    if smooth is not None:
        cam = smooth_camera(cam, fps=fps, **smooth)
        rotmat = smooth_rotations(rotmat, fps=fps, **smooth)
    verts, joints = body_forward(body_model, rotmat, betas, vertices=vertices, device=device)
    uv = weak_perspective_projection(torch.from_numpy(joints), torch.from_numpy(np.asarray(cam, np.float32)))
    joints2d = crop_to_image_points(uv.numpy(), track.boxes)
    cam_full = full_image_camera(cam, track.boxes, width, height)
    pose = rotmat_to_axis_angle(torch.from_numpy(np.asarray(rotmat, np.float32))).reshape(len(rotmat), -1).numpy()
    return Person(
        track=track,
        cam=np.asarray(cam, np.float32),
        rotmat=np.asarray(rotmat, np.float32),
        betas=np.asarray(betas, np.float32),
        cam_full=cam_full.astype(np.float32),
        trans=camera_translation(cam_full, width, height).astype(np.float32),
        joints3d=joints.astype(np.float32),
        joints2d=joints2d.astype(np.float32),
        pose=pose.astype(np.float32),
        verts=verts,
    )


class VertexStream:
    """Vertices of a person frame by frame, computed a chunk at a time (frames must be asked in order)."""

    def __init__(self, person: Person, body_model, device="cpu"):
        self.person, self.body_model, self.device = person, body_model, device
        self.start, self.verts = -1, None

    def at(self, frame: int) -> np.ndarray:
        i = frame - self.person.track.first
        if self.verts is None or not (self.start <= i < self.start + len(self.verts)):
            self.start = i
            sl = slice(i, i + BODY_CHUNK)
            self.verts, _ = body_forward(
                self.body_model, self.person.rotmat[sl], self.person.betas[sl], device=self.device
            )
        return self.verts[i - self.start]


def all_vertices(person: Person, body_model, device="cpu") -> np.ndarray:
    """The person's vertices (T x V x 3): those computed with the joints, else from the body model."""
    if person.verts is not None:
        return person.verts
    verts, _ = body_forward(body_model, person.rotmat, person.betas, device=device)
    return verts


# ------------------------------------------------------------------------------------------------ files
def keypoint_arrays(track: Track, landmarks=None) -> dict[str, np.ndarray]:
    """A track's keypoints for ``tracks.npz``: the detector's COCO-17 and BlazePose's 33 (when it ran)."""
    out = {"keypoints_coco": track.keypoints.astype(np.float32)}
    if landmarks is not None:
        out["keypoints_blazepose"] = landmarks.image.astype(np.float32)
        out["keypoints_blazepose_world"] = landmarks.world.astype(np.float32)
    return out


def _header(ids: list[int], width: int, height: int, fps: float, num_frames: int) -> dict[str, np.ndarray]:
    return {
        "person_ids": np.array(ids, dtype=np.int64),
        "image_size": np.array([width, height], dtype=np.int64),
        "fps": np.array(fps, dtype=np.float64),
        "num_frames": np.array(num_frames, dtype=np.int64),
        "focal_length": np.array(nominal_focal(width, height), dtype=np.float64),
    }


def _track_arrays(track: Track) -> dict[str, np.ndarray]:
    return {
        "frame_ids": track.frames.astype(np.int64),
        "boxes": track.boxes.astype(np.float32),
        "detected": track.detected.astype(bool),
    }


def write_keypoints_npz(
    path: Path, tracks: list[Track], landmarks: dict, *, width: int, height: int, fps: float, num_frames: int
) -> None:
    """``tracks.npz`` of a ``--keypoints-only`` run: per person frames, boxes and keypoints, no body."""
    arrays = _header([t.track_id for t in tracks], width, height, fps, num_frames)
    for t in tracks:
        for name, value in {**_track_arrays(t), **keypoint_arrays(t, landmarks.get(t.track_id))}.items():
            arrays[f"person_{t.track_id}/{name}"] = value
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def write_tracks_npz(
    path: Path,
    people: list[Person],
    *,
    width: int,
    height: int,
    fps: float,
    num_frames: int,
    body_model=None,
    save_verts: bool = False,
    device="cpu",
    landmarks: dict | None = None,
) -> None:
    """``tracks.npz``: plain numeric arrays only (loads with ``allow_pickle=False``); keys in docs/OUTPUTS.md.
    ``landmarks``: BlazePose's per track id (``maed.demo.stages.landmarks``), stored when given."""
    arrays = _header([p.track_id for p in people], width, height, fps, num_frames)
    landmarks = landmarks or {}
    for p in people:
        key = f"person_{p.track_id}/"
        for name, value in {**_track_arrays(p.track), **keypoint_arrays(p.track, landmarks.get(p.track_id))}.items():
            arrays[key + name] = value
        arrays.update(
            {
                key + "cam_crop": p.cam,
                key + "cam_full": p.cam_full,
                key + "trans": p.trans,
                key + "pose": p.pose,
                key + "rotmat": p.rotmat,
                key + "betas": p.betas,
                key + "joints3d": p.joints3d,
                key + "joints2d": p.joints2d,
            }
        )
        if save_verts:
            arrays[key + "verts"] = all_vertices(p, body_model, device)
    if save_verts and body_model is not None:
        arrays["faces"] = body_model.faces.cpu().numpy().astype(np.int64)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def write_results_pkl(path: Path, people: list[Person], body_model, device="cpu") -> None:
    """``results.pkl``: VIBE's per-track layout (joblib dict person id -> pred_cam, orig_cam, verts, pose, betas,
    joints3d, joints2d (None: the input had no 2D keypoints), bboxes, frame_ids, plus joints2d_img_coord)."""
    results = {}
    for p in people:
        results[p.track_id] = {
            "pred_cam": p.cam,
            "orig_cam": p.cam_full,
            "verts": all_vertices(p, body_model, device),
            "pose": p.pose,
            "betas": p.betas,
            "joints3d": p.joints3d,
            "joints2d": None,
            "joints2d_img_coord": p.joints2d,
            "bboxes": p.track.boxes.astype(np.float32),
            "frame_ids": p.track.frames.astype(np.int64),
        }
    atomic_joblib_dump(results, path)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_summary(path: Path, summary: dict) -> None:
    atomic_write_text(path, json.dumps(_jsonable(summary), indent=2, allow_nan=False) + "\n")


def people_table(tracks: Iterable[Track]) -> list[dict]:
    return [
        {
            "id": t.track_id,
            "frames": len(t),
            "first_frame": t.first,
            "last_frame": t.last,
            "detected_frames": int(t.detected.sum()),
        }
        for t in tracks
    ]
