"""One synthetic sequence: people, motion, camera, look; its frames and its per-person-frame annotations.

Everything random in a sequence comes from one generator seeded with (run seed, sequence index), so a
sequence is the same whatever else the run does (worker count, order, interruptions).

Frames of reference: the world has y up and the floor at y = 0; the camera frame is the databases' (x
right, y down, z forward, metres). A person's body model is evaluated once per sequence with its root
rotation in the world; with R_wc, t_wc the camera's pose (x_c = R_wc x_w + t_wc) and c the point the
root rotates about (the body model's ``OP MidHip`` joint: Anny's root head at the origin, SMPL's pelvis
joint), the stored parameters are

    pose root  = R_wc R_root   (the global orientation in the camera frame, as 3DPW's)
    trans      = R_wc (r + c) + t_wc - c   (r: the person's world translation)

so that ``body_model(pose, shape).joints + trans`` equals ``joints3D``. 2D joints are the pinhole
projection (fx X/Z + cx, fy Y/Z + cy) with confidence 1 where the joint exists for the body model, lies
in the frame, in front of the camera, and no other person's surface is nearer at its pixel. Boxes are
squares around the projected mesh (1.1 x its larger side). ``valid`` is 1 where at least 7 of the 14
LSP joints are inside the frame and the whole body is in front of the camera.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from maed.body.joints import J49_TO_J14, JOINT_IDS
from maed.synth.appearance import random_outfit
from maed.synth.backgrounds import SPLIT_POOL, available_sources, source_image
from maed.synth.bodies import BodyKit
from maed.synth.render import MAX_PEOPLE, Z_NEAR, FrameRenderer, Look
from maed.utils.io import atomic_path, atomic_write_bytes

BOX_MARGIN = 1.1
MIN_VALID_JOINTS = 7
PEOPLE_PROBS = (0.45, 0.35, 0.2)  # one, two, three people
#: how tall a person of 1.7 m usually appears (pixels), and at least, for frames 480 pixels high (both
#: scale with the frame height)
PERSON_PIXELS = (170.0, 370.0)
MIN_PERSON_PIXELS = 110.0


@dataclass(frozen=True)
class Settings:
    """What every sequence of a run shares: frame size (pixels), frames per sequence, frame rate, JPEG
    quality, the most people per sequence, and an exact people count (0: drawn, one to ``max_people``)."""

    width: int = 640
    height: int = 480
    frames: int = 64
    fps: float = 30.0
    jpeg_quality: int = 90
    max_people: int = MAX_PEOPLE
    people: int = 0


def sequence_name(index: int) -> str:
    return f"seq_{index:04d}"


def frame_name(index: int, t: int) -> str:
    """An image path relative to the output folder: ``frames/seq_0003/000012.jpg``."""
    return f"frames/{sequence_name(index)}/{t:06d}.jpg"


def sequence_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index)])


# ------------------------------------------------------------------------------------------ camera
def look_at(position: np.ndarray, target: np.ndarray, roll: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """World -> camera (x right, y down, z forward) for a camera at ``position`` looking at ``target``
    (world y up), turned by ``roll`` radians about its axis. Returns (R_wc 3 x 3, t_wc 3)."""
    forward = target - position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])
    c, s = np.cos(roll), np.sin(roll)
    R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ R
    return R, -R @ position


def project(points: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """... x 3 camera-frame points -> ... x 2 pixels (points at or behind the camera give non-finite)."""
    fx, fy, cx, cy = intrinsics
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(points[..., 2] > 0, points[..., 2], np.nan)
        return np.stack([fx * points[..., 0] / z + cx, fy * points[..., 1] / z + cy], axis=-1)


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    pad = np.pad(x, ((width, width), (0, 0)), mode="edge")
    kernel = np.ones(2 * width + 1) / (2 * width + 1)
    return np.stack([np.convolve(pad[:, k], kernel, mode="valid") for k in range(x.shape[1])], axis=1)


def plan_camera(rng: np.random.Generator, boxes_w: np.ndarray, settings: Settings) -> dict:
    """A random camera for people whose world bounding boxes are ``boxes_w`` (T x P x 8 x 3 corners).

    Perspective with a horizontal field of view of 45-70 degrees, 0.4-2.4 m high, looking at the people
    (at 0.7-1.1 m above the floor) from a random side, at the distance that makes a 1.7 m person
    ``PERSON_PIXELS`` tall, moved back until everyone stays in view (a person no smaller than
    ``MIN_PERSON_PIXELS``). Half the cameras move: they follow the people (pan), dolly by up to 25 % and
    orbit by up to 15 degrees a second. Returns intrinsics (4,), R_wc T x 3 x 3, t_wc T x 3 and a summary.
    """
    W, H, T = settings.width, settings.height, boxes_w.shape[0]
    hfov = np.deg2rad(rng.uniform(45.0, 70.0))
    fx = 0.5 * W / np.tan(0.5 * hfov)
    intrinsics = np.array([fx, fx, 0.5 * W + rng.uniform(-0.02, 0.02) * W, 0.5 * H + rng.uniform(-0.02, 0.02) * H])
    moving = bool(rng.random() < 0.5)
    target_y = rng.uniform(0.7, 1.1)
    height = rng.uniform(0.4, 2.4)
    yaw0 = rng.uniform(0.0, 2.0 * np.pi)
    roll = np.deg2rad(rng.uniform(-3.0, 3.0))
    pixels = rng.uniform(*PERSON_PIXELS) * H / 480.0
    dolly = rng.uniform(-0.25, 0.25) if moving else 0.0
    orbit = np.deg2rad(rng.uniform(-15.0, 15.0)) / settings.fps if moving else 0.0

    centre = boxes_w.mean(axis=(1, 2))[:, [0, 2]]  # (T, 2) people's centre on the floor
    centre = (
        _moving_average(centre, max(int(settings.fps // 2), 1))
        if moving
        else np.repeat(centre.mean(0, keepdims=True), T, 0)
    )
    t = np.arange(T)
    yaw = yaw0 + orbit * t
    distance0 = fx * 1.7 / pixels
    for _ in range(16):
        distance = distance0 * (1.0 + dolly * t / max(T - 1, 1))
        horizontal = np.sqrt(np.maximum(distance**2 - (height - target_y) ** 2, 0.25))
        target = np.stack([centre[:, 0], np.full(T, target_y), centre[:, 1]], axis=1)
        position = target + np.stack(
            [horizontal * np.sin(yaw), np.full(T, height - target_y), horizontal * np.cos(yaw)], 1
        )
        Rt = [look_at(position[k], target[k], roll) for k in range(T)]
        R_wc, t_wc = np.stack([r for r, _ in Rt]), np.stack([tt for _, tt in Rt])
        corners_c = np.einsum("tij,tpkj->tpki", R_wc, boxes_w) + t_wc[:, None, None]
        uv = project(corners_c, intrinsics)
        inside = (
            np.isfinite(uv).all(-1)
            & (corners_c[..., 2] > 0.3)
            & (uv[..., 0] > -0.05 * W)
            & (uv[..., 0] < 1.05 * W)
            & (uv[..., 1] > -0.1 * H)
            & (uv[..., 1] < 1.05 * H)
        )
        if inside.all() or fx * 1.7 / (1.1 * distance.max()) < MIN_PERSON_PIXELS * H / 480.0:
            break
        distance0 *= 1.1
    info = {
        "moving": moving,
        "hfov_deg": float(np.rad2deg(hfov)),
        "height_m": float(height),
        "distance_m": [float(distance.min()), float(distance.max())],
    }
    return {"intrinsics": intrinsics, "R_wc": R_wc, "t_wc": t_wc, "info": info}


def random_look(rng: np.random.Generator, split: str, centre_xz: np.ndarray, settings: Settings) -> tuple[Look, dict]:
    """Backdrop, floor and lights of a sequence, from the split's pool of backgrounds."""
    sources, floors = available_sources(SPLIT_POOL[split]), available_sources(SPLIT_POOL[split], floor=True)
    backdrop, floor = sources[int(rng.integers(len(sources)))], floors[int(rng.integers(len(floors)))]
    elevation, azimuth = np.deg2rad(rng.uniform(25.0, 80.0)), rng.uniform(0.0, 2.0 * np.pi)
    sun = -np.array([np.cos(elevation) * np.sin(azimuth), np.sin(elevation), np.cos(elevation) * np.cos(azimuth)])
    tint = rng.uniform(-0.12, 0.12)
    look = Look(
        background=source_image(backdrop, settings.width, settings.height, rng),
        floor_texture=source_image(floor, 512, 512, rng),
        floor_tile=float(rng.uniform(1.0, 4.0)),
        floor_centre=np.asarray(centre_xz, dtype=np.float64),
        sun_direction=sun,
        sun_colour=np.clip(np.array([1.0 + tint, 1.0, 1.0 - tint]), 0.0, 1.0),
        sun_intensity=float(rng.uniform(2.0, 5.0)),
        fill_intensity=float(rng.uniform(0.4, 1.5)),
        ambient=np.full(3, rng.uniform(0.15, 0.45)),
    )
    return look, {"backdrop": backdrop, "floor": floor}


# ------------------------------------------------------------------------------------------ people
def _place_people(rng: np.random.Generator, count: int) -> np.ndarray:
    """Start positions on the floor (count x 2), at least 0.9 m apart."""
    spots = [np.zeros(2)]
    while len(spots) < count:
        angle, radius = rng.uniform(0, 2 * np.pi), rng.uniform(0.9, 2.5)
        base = spots[int(rng.integers(len(spots)))]
        spot = base + radius * np.array([np.cos(angle), np.sin(angle)])
        if min(np.linalg.norm(spot - s) for s in spots) >= 0.9:
            spots.append(spot)
    return np.stack(spots)


def _pose_people(kit: BodyKit, rng: np.random.Generator, split: str, settings: Settings) -> list[dict]:
    """Shapes, motions and world-frame meshes of the sequence's people."""
    count = min(int(rng.choice(len(PEOPLE_PROBS), p=PEOPLE_PROBS)) + 1, settings.max_people)
    if settings.people:  # drawn all the same, so that the draws after it do not depend on the option
        count = settings.people
    starts = _place_people(rng, count)
    people = []
    for k in range(count):
        betas = kit.sample_shape(rng, split)
        motion = kit.random_motion(rng, frames=settings.frames, fps=settings.fps, start_xz=starts[k])
        T = settings.frames
        with torch.no_grad():
            out = kit.body(
                torch.as_tensor(motion.rotmats, dtype=torch.float32),
                torch.as_tensor(betas, dtype=torch.float32).expand(T, -1),
            )
        verts = out["verts"].double().numpy()  # (T, V, 3) with the root at c, unplaced
        joints = out["joints"].double().numpy()  # (T, 49, 3)
        centre = joints[:, JOINT_IDS["OP MidHip"]]  # the point the root rotates about
        lift = -verts[..., 1].min(axis=1)  # the lowest vertex touches the floor
        r = np.stack([motion.ground_xz[:, 0], lift, motion.ground_xz[:, 1]], axis=1)  # (T, 3)
        people.append(
            {
                "betas": betas,
                "style": motion.style,
                "rotmats": motion.rotmats,
                "verts_w": verts + r[:, None],
                "joints_w": joints + r[:, None],
                "r": r,
                "c": centre,
                "outfit": random_outfit(rng),
            }
        )
    return people


def _world_boxes(people: list[dict]) -> np.ndarray:
    """T x P x 8 x 3 corners of every person's world bounding box per frame."""
    lo = np.stack([p["verts_w"].min(axis=1) for p in people], axis=1)  # (T, P, 3)
    hi = np.stack([p["verts_w"].max(axis=1) for p in people], axis=1)
    bits = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=np.float64)  # (8, 3)
    return lo[:, :, None] + bits[None, None] * (hi - lo)[:, :, None]


def _rotvec(R: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(R.reshape(-1, 3, 3)).as_rotvec().reshape(*R.shape[:-2], 3)


# ------------------------------------------------------------------------------------------ sequence
def render_sequence(
    kit: BodyKit, renderer: FrameRenderer, settings: Settings, *, seed: int, index: int, split: str, out_dir: Path
) -> tuple[dict[str, np.ndarray], dict]:
    """Render sequence ``index`` of a run into ``out_dir/frames/`` and return its annotations.

    Returns (rows, meta): rows is a dict of per-row arrays in the database format (one row per person
    and frame, each person's frames consecutive), meta a JSON-able description of the sequence.
    """
    rng = sequence_rng(seed, index)
    T = settings.frames
    people = _pose_people(kit, rng, split, settings)
    camera = plan_camera(rng, _world_boxes(people), settings)
    centre_xz = np.mean([p["r"][:, [0, 2]].mean(0) for p in people], axis=0)
    look, look_info = random_look(rng, split, centre_xz, settings)
    K, R_wc, t_wc = camera["intrinsics"], camera["R_wc"], camera["t_wc"]

    for p in people:
        p["verts_c"] = np.einsum("tij,tvj->tvi", R_wc, p["verts_w"]) + t_wc[:, None]
        p["joints_c"] = np.einsum("tij,tkj->tki", R_wc, p["joints_w"]) + t_wc[:, None]
        p["colours"] = p["outfit"].vertex_colours(kit.parts)

    vis = np.zeros((len(people), T, len(kit.joint_mask)), dtype=bool)
    frame_dir = out_dir / "frames" / sequence_name(index)
    frame_dir.mkdir(parents=True, exist_ok=True)
    for t in range(T):
        frame = renderer.render(
            intrinsics=K,
            R_wc=R_wc[t],
            t_wc=t_wc[t],
            people=[p["verts_c"][t] for p in people],
            colours=[p["colours"] for p in people],
            roughness=[p["outfit"].roughness for p in people],
            look=look,
        )
        for k, p in enumerate(people):
            vis[k, t] = _visible(p["joints_c"][t], k, frame, K) & kit.joint_mask
        ok, jpeg = cv2.imencode(".jpg", frame.image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, settings.jpeg_quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        atomic_write_bytes(out_dir / frame_name(index, t), jpeg.tobytes())

    rows = _rows(kit, people, vis, K, R_wc, t_wc, index, settings)
    meta = {
        "index": index,
        "name": sequence_name(index),
        "split": split,
        "frames": T,
        "camera": camera["info"],
        **look_info,
        "people": [
            {
                "vid_name": f"{sequence_name(index)}_p{k}",
                "shape": [round(float(b), 6) for b in p["betas"]],
                "style": p["style"],
            }
            for k, p in enumerate(people)
        ],
    }
    return rows, meta


def _visible(joints_c: np.ndarray, person: int, frame, intrinsics: np.ndarray) -> np.ndarray:
    """K bool: joint in the frame, in front of the camera, and not behind another person's surface."""
    H, W = frame.person.shape
    uv = project(joints_c, intrinsics)
    finite = np.isfinite(uv).all(-1) & (joints_c[:, 2] > Z_NEAR)
    px = np.where(finite, np.rint(np.nan_to_num(uv[:, 0])), -1).astype(np.int64)
    py = np.where(finite, np.rint(np.nan_to_num(uv[:, 1])), -1).astype(np.int64)
    inside = finite & (px >= 0) & (px < W) & (py >= 0) & (py < H)
    px, py = np.clip(px, 0, W - 1), np.clip(py, 0, H - 1)
    cover, depth = frame.person[py, px], frame.depth[py, px]
    hidden = (cover >= 0) & (cover != person) & (depth < joints_c[:, 2])
    return inside & ~hidden


def _rows(kit, people, vis, K, R_wc, t_wc, index, settings) -> dict[str, np.ndarray]:
    T = settings.frames
    mask = kit.joint_mask.astype(np.float32)
    parts: dict[str, list] = {k: [] for k in FIELDS}
    for k, p in enumerate(people):
        pose = p["rotmats"].copy()
        pose[:, 0] = R_wc @ pose[:, 0]  # global orientation in the camera frame
        trans = np.einsum("tij,tj->ti", R_wc, p["r"] + p["c"]) + t_wc - p["c"]
        uv = project(p["joints_c"], K)
        lo, hi, box_ok = _mesh_extent(project(p["verts_c"], K), settings)
        side = BOX_MARGIN * (hi - lo).max(axis=1)
        in_frame = (uv[..., 0] >= -0.5) & (uv[..., 0] < settings.width - 0.5)
        in_frame &= (uv[..., 1] >= -0.5) & (uv[..., 1] < settings.height - 0.5)
        front = (p["verts_c"][..., 2] > Z_NEAR).all(axis=1)
        valid = (in_frame[:, J49_TO_J14].sum(axis=1) >= MIN_VALID_JOINTS) & front & box_ok
        parts["vid_name"].append(np.full(T, f"{sequence_name(index)}_p{k}"))
        parts["frame_id"].append(np.arange(T, dtype=np.int64))
        parts["img_name"].append(np.array([frame_name(index, t) for t in range(T)]))
        parts["joints2D"].append(np.concatenate([np.nan_to_num(uv), vis[k, ..., None]], axis=-1))
        parts["joints3D"].append(np.concatenate([p["joints_c"], np.broadcast_to(mask[:, None], (T, len(mask), 1))], -1))
        parts["pose"].append(_rotvec(pose).reshape(T, -1))
        parts["shape"].append(np.broadcast_to(p["betas"], (T, len(p["betas"]))))
        parts["bbox"].append(np.concatenate([0.5 * (lo + hi), side[:, None], side[:, None]], axis=1))
        parts["valid"].append(valid.astype(np.int64))
        parts["trans"].append(trans)
        parts["intrinsics"].append(np.broadcast_to(K, (T, 4)))
    out = {k: np.concatenate(v, axis=0) for k, v in parts.items()}
    for key in FLOAT_FIELDS:
        out[key] = out[key].astype(np.float32)
    return out


def _mesh_extent(verts_uv: np.ndarray, settings: Settings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: the projected mesh's (min, max) pixels (T x 2 each) and whether every vertex projected
    (a body partly behind the camera gets the whole frame as its extent)."""
    ok = np.isfinite(verts_uv).all(axis=(1, 2))
    safe = np.where(ok[:, None, None], verts_uv, 0.0)
    lo, hi = safe.min(axis=1), safe.max(axis=1)
    lo[~ok], hi[~ok] = 0.0, [settings.width - 1.0, settings.height - 1.0]
    return lo, hi, ok


#: per-row fields of a synthetic database, in the order written
FIELDS = (
    "vid_name",
    "frame_id",
    "img_name",
    "joints2D",
    "joints3D",
    "pose",
    "shape",
    "bbox",
    "valid",
    "trans",
    "intrinsics",
)
FLOAT_FIELDS = ("joints2D", "joints3D", "pose", "shape", "bbox", "trans", "intrinsics")


def save_rows(path: Path, rows: dict[str, np.ndarray], meta: dict) -> None:
    """A sequence's annotations as one ``.npz`` (written atomically: its presence marks the sequence done)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta, sort_keys=True)), **rows)


def load_rows(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        rows = {k: z[k] for k in FIELDS}
    return rows, meta
