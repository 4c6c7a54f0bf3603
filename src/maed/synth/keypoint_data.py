"""Training data for the keypoint model without pixels: synthetic motion seen by random cameras, with the
landmarks a real detector would report.

Two layers:

* :class:`MotionBank`: ``count`` people, each a random body shape (``maed.synth.bodies``) moving for
  ``frames`` frames (``maed.synth.motion``: poses within the joint limits, walking or in place, turning),
  posed once: the 33 BlazePose landmarks through the fitted :class:`~maed.synth.landmarks.LandmarkMap`,
  the 49 joints, the kinematic rotations and the shape. Built in a few minutes and cached in a file.
* :class:`KeypointClips`: a training set over a bank. Every sample takes a random window of a random
  person, a random perspective camera around them (field of view, height, distance, frame size and
  orientation; optionally close-ups, where the person is taller than the frame), the person's square box
  as a detector would give it (jittered), and the landmarks as the detector would report them: moved by
  the fitted per-landmark spread, missed at the fitted rates, left and right swapped at the fitted rate,
  invisible outside the frame. So the same bank gives a new view, box and noise at every visit.

A sample has the fields of the video datasets (``maed.data.datasets``), with ``keypoints`` in place of
``images``: ``keypoints (T, 33, 3)`` x, y in [-1, 1] of the crop (the square box x 1.3, as the image
model's crops) and visibility 0/1 (positions of invisible landmarks are 0); ``kp_2d (T, 49, 3)`` the
joints in the same crop coordinates with confidence; ``kp_3d (T, 49, 4)`` camera-frame metres with
confidence; ``theta (T, 3 + 3J + S)`` = (1, 0, 0), the pose with the root turned into the camera frame,
the shape; ``w_smpl``, ``w_3d`` (T) ones; ``index``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from maed.body.layout import pose_layout
from maed.data.datasets import _item_rng
from maed.data.keypoints import SPIN_FLIP_PERM
from maed.data.transforms import BASE_SCALE, flip_pose
from maed.errors import AssetError
from maed.models.keypoints import inputs_from_landmarks
from maed.paths import resolve_paths
from maed.perception.skeletons import BLAZEPOSE33, mirror_permutation
from maed.synth.bodies import build_kit
from maed.synth.landmarks import LandmarkMap, shipped_map_path
from maed.synth.sequence import look_at, sequence_rng
from maed.utils.io import atomic_path

BANK_VERSION = 2
BOX_MARGIN = 1.1  # the datasets' boxes are 1.1 x the person's extent
FRAME_SIZES = ((640, 480), (1280, 720), (1920, 1080), (720, 1280), (480, 640))


@dataclass(frozen=True)
class BankSpec:
    """What decides a bank's content (the cache file is named by its hash)."""

    count: int = 2000
    frames: int = 64
    fps: float = 30.0
    seed: int = 0
    split: str = "train"  # 'test' draws the held-out shapes of maed.synth.bodies
    body_model: str = "anny"
    rig: str = "cmu_mb"
    landmark_map: str = ""  # LandmarkMap.geometry_key(): what places the landmarks (the noise does not matter here)

    def key(self) -> str:
        text = json.dumps({**asdict(self), "version": BANK_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class MotionBank:
    """Posed people: landmarks (M, F, 33, 3), joints (M, F, 49, 3) world metres (y up, floor at 0),
    rotmats (M, F, J, 3, 3) float32 root in the world frame, betas (M, S); joint_mask (49,)."""

    landmarks: np.ndarray
    joints: np.ndarray
    rotmats: np.ndarray
    betas: np.ndarray
    joint_mask: np.ndarray
    spec: BankSpec

    def __len__(self) -> int:
        return len(self.betas)

    @classmethod
    def build(cls, spec: BankSpec, lmap: LandmarkMap, *, progress: bool = True) -> MotionBank:
        from tqdm import tqdm

        kit = build_kit(spec.body_model, spec.rig)
        V = kit.num_vertices
        weights = torch.zeros(len(BLAZEPOSE33), V)
        weights.scatter_(1, torch.as_tensor(lmap.vertex_ids), torch.as_tensor(lmap.weights))
        M, F = spec.count, spec.frames
        J = kit.layout.num_joints
        out_lm = np.zeros((M, F, len(BLAZEPOSE33), 3), np.float32)
        out_j = np.zeros((M, F, 49, 3), np.float32)
        out_r = np.zeros((M, F, J, 3, 3), np.float32)
        out_b = np.zeros((M, kit.layout.num_betas), np.float32)
        for m in tqdm(range(M), desc="motion bank", disable=not progress, unit="person"):
            rng = sequence_rng(spec.seed, m)
            betas = kit.sample_shape(rng, spec.split)
            motion = kit.random_motion(rng, frames=F, fps=spec.fps, start_xz=np.zeros(2))
            with torch.no_grad():
                points, joints = kit.body.posed_points(
                    torch.as_tensor(motion.rotmats, dtype=torch.float32), torch.as_tensor(betas, dtype=torch.float32),
                    weights,
                )  # fmt: skip
            # the root's position: on the ground track, feet on the floor (the lowest landmark at 0)
            lift = -np.minimum(points[..., 1].min(1).values.numpy(), joints[..., 1].min(1).values.numpy())
            r = np.stack([motion.ground_xz[:, 0], lift, motion.ground_xz[:, 1]], axis=1)[:, None]
            out_lm[m] = points.numpy() + r
            out_j[m] = joints.numpy() + r
            out_r[m] = motion.rotmats
            out_b[m] = betas
        return cls(out_lm, out_j, out_r, out_b, kit.joint_mask.astype(bool), spec)

    def save(self, path: Path) -> None:

        with atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:
            spec = np.array(json.dumps(asdict(self.spec)))
            np.savez(fh, landmarks=self.landmarks, joints=self.joints, rotmats=self.rotmats.astype(np.float16),
                     betas=self.betas, joint_mask=self.joint_mask, spec=spec)  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> MotionBank:
        with np.load(path, allow_pickle=False) as z:
            spec = BankSpec(**json.loads(str(z["spec"])))
            return cls(z["landmarks"], z["joints"], z["rotmats"].astype(np.float32), z["betas"], z["joint_mask"], spec)

    @classmethod
    def cached(cls, folder: Path, spec: BankSpec, lmap: LandmarkMap, *, progress: bool = True) -> MotionBank:
        """The bank of ``spec`` from ``folder/kp_motion_<hash>.npz``, built and written there if absent."""
        path = Path(folder) / f"kp_motion_{spec.split}_{spec.key()}.npz"
        if path.is_file():
            return cls.load(path)
        bank = cls.build(spec, lmap, progress=progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        bank.save(path)
        return bank


# ------------------------------------------------------------------------------------------ views
def _look_at(position: np.ndarray, target: np.ndarray, roll: float) -> tuple[np.ndarray, np.ndarray]:

    return look_at(position, target, roll)


def _towards_axis(offset: np.ndarray) -> np.ndarray:
    """(T, 2) directions (x/z, y/z) of rays -> (T, 3, 3) the smallest rotations taking each ray onto +z."""
    d = np.concatenate([offset, np.ones((len(offset), 1))], axis=1)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    axis = np.cross(d, [0.0, 0.0, 1.0])
    s = np.linalg.norm(axis, axis=1)
    c = d[:, 2]
    k = axis / np.maximum(s, 1e-12)[:, None]
    Kx = np.zeros((len(d), 3, 3))
    Kx[:, 0, 1], Kx[:, 0, 2], Kx[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    Kx -= np.swapaxes(Kx, 1, 2)
    return np.eye(3) + s[:, None, None] * Kx + (1 - c)[:, None, None] * (Kx @ Kx)


def _visible_extent(points: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, N, 2) pixel points -> the (T, 2) corners of the extent of the body inside the frame, as a detector's
    box (clipped to the frame) covers it: a point outside moves along the line from the centre of the points
    inside towards it as far as the frame's edge, roughly where its limb leaves the frame. (Clipping each
    coordinate to the frame instead lets a foot far below and to the side widen the box at its bottom.)"""
    size = np.array([width - 1, height - 1], np.float64)
    inside = ((points >= 0) & (points <= size)).all(-1)
    weight = inside[..., None].astype(np.float64)
    centre = (points * weight).sum(1) / np.maximum(weight.sum(1), 1.0)
    centre = np.where(inside.any(1, keepdims=True), centre, np.clip(points.mean(1), 0, size))  # none inside
    d = points - centre[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        reach = np.where(d > 0, (size - centre[:, None]) / d, np.where(d < 0, -centre[:, None] / d, np.inf))
    s = np.clip(reach.min(-1, keepdims=True), 0.0, 1.0)
    clipped = centre[:, None] + s * d
    return clipped.min(1), clipped.max(1)


def _rotvec(R: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(R.reshape(-1, 3, 3)).as_rotvec().reshape(*R.shape[:-2], 3)


@dataclass
class ViewSettings:
    """How samples are seen: clip length and the camera, box and detector-noise randomisation."""

    seqlen: int = 16
    hfov_deg: tuple[float, float] = (40.0, 75.0)
    height_m: tuple[float, float] = (0.3, 2.6)
    person_fraction: tuple[float, float] = (0.25, 0.95)  # person height / frame height
    truncate: float = 0.15  # chance of aiming off the body, so that part of it leaves the frame
    # chance of a close-up (a portrait, a webcam): the upper body fills the frame, which cuts across the body
    close_up: float = 0.0
    close_up_fraction: tuple[float, float] = (1.2, 3.0)  # person height / frame height in a close-up
    close_up_hfov_deg: tuple[float, float] = (25.0, 60.0)  # portraits are taken with longer lenses
    box_jitter: float = 0.05  # centre shift and size change of the box, fraction of its side
    noise: bool = True  # False: exact landmarks, all visible inside the frame (tests, ablations)
    flip: bool = True  # mirror half of the samples (left and right exchanged)
    # the 3D targets as seen by a camera turned to look through the box centre (what a crop can tell)
    virtual_camera: bool = True


class KeypointClips(torch.utils.data.Dataset):
    """Training clips over a :class:`MotionBank` (see the module docstring); ``length`` samples per pass,
    each drawn afresh from torch's per-sample seed (``maed.train.streams``)."""

    def __init__(self, bank: MotionBank, lmap: LandmarkMap, view: ViewSettings | None = None, length: int = 10000):
        self.bank, self.lmap = bank, lmap
        self.view = view or ViewSettings()
        self.length = int(length)
        self.perm_lm = np.array(mirror_permutation(BLAZEPOSE33))

        self.perm_joints = np.asarray(SPIN_FLIP_PERM)
        # the residual pool's windows: rows whose next seqlen - 1 rows are the same track's next frames
        self.pool_starts = None
        if lmap.residuals is not None:
            track, T = lmap.residual_track, self.view.seqlen
            ok = np.flatnonzero(track[: len(track) - T + 1] == track[T - 1 :]) if len(track) >= T else np.array([])
            self.pool_starts = ok if len(ok) else None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:

        return self.sample(_item_rng(), index)

    def sample(self, rng: np.random.Generator, index: int = 0) -> dict:
        bank, v = self.bank, self.view
        T = v.seqlen
        m = int(rng.integers(len(bank)))
        start = int(rng.integers(bank.landmarks.shape[1] - T + 1))
        sl = slice(start, start + T)
        lm_w, j_w, rot = bank.landmarks[m, sl], bank.joints[m, sl], bank.rotmats[m, sl]
        mask = bank.joint_mask.astype(np.float32)

        # camera: a random side and height, aimed at the body (or off it, to truncate), static over the clip
        W, H = FRAME_SIZES[int(rng.integers(len(FRAME_SIZES)))]
        close_up = v.close_up > 0 and rng.random() < v.close_up  # (no random draw when 0)
        hfov = math.radians(rng.uniform(*(v.close_up_hfov_deg if close_up else v.hfov_deg)))
        f = 0.5 * W / math.tan(0.5 * hfov)
        K = np.array([f, f, 0.5 * W * rng.uniform(0.97, 1.03), 0.5 * H * rng.uniform(0.97, 1.03)])
        centre = j_w[:, :, [0, 2]].mean(axis=(0, 1))
        body_h = float(np.ptp(j_w[..., 1])) + 0.15
        if close_up:  # a portrait: the head near the top of the frame, the frame's bottom across the body
            fraction = rng.uniform(*v.close_up_fraction)
            span = body_h / fraction  # the height of body the frame shows
            aim_y = float(j_w[..., 1].max()) + 0.1 - span * rng.uniform(0.4, 0.6)
            target = np.array([centre[0], aim_y, centre[1]])
            height = aim_y + rng.normal() * 0.25
        else:
            fraction = rng.uniform(*v.person_fraction)
            aim_y = rng.uniform(0.6, 1.1) if rng.random() > v.truncate else rng.uniform(0.0, 1.8)
            target = np.array([centre[0], aim_y, centre[1]])
            if rng.random() < v.truncate:  # off to the side: part of the body leaves the frame
                target[[0, 2]] += rng.normal(size=2) * 0.4
            height = rng.uniform(*v.height_m)
        distance = f * body_h / (fraction * H)
        yaw = rng.uniform(0, 2 * np.pi)
        horizontal = math.sqrt(max(distance**2 - (height - aim_y) ** 2, 0.25))
        position = target + np.array([horizontal * math.sin(yaw), height - aim_y, horizontal * math.cos(yaw)])
        R_wc, t_wc = _look_at(position, target, math.radians(rng.uniform(-5, 5)))
        lm_c = lm_w @ R_wc.T + t_wc
        j_c = j_w @ R_wc.T + t_wc
        z_ok = (lm_c[..., 2] > 0.2).all() and (j_c[..., 2] > 0.2).all()
        if not z_ok:  # the camera ended up inside the body: step back
            return self.sample(rng, index)
        lm_px = lm_c[..., :2] / lm_c[..., 2:] * K[:2] + K[2:]
        j_px = j_c[..., :2] / j_c[..., 2:] * K[:2] + K[2:]

        # the detector's box: the person's extent (joints and landmarks) in the frame, squared, 1.1 x; where the
        # body crosses an edge of the frame, the extent ends at that edge (a detector's box is clipped to it)
        lo, hi = _visible_extent(np.concatenate([lm_px, j_px[:, mask > 0]], axis=1), W, H)
        side = BOX_MARGIN * (hi - lo).max(axis=1)
        if (side < 8).any():
            return self.sample(rng, index)
        cxy = 0.5 * (lo + hi)
        jitter = rng.normal(size=(T, 3)) * v.box_jitter
        jitter = np.cumsum(jitter, 0) * 0.3 + jitter  # slowly wandering, not independent per frame
        cxy = cxy + jitter[:, :2] * side[:, None]
        side = side * np.exp(jitter[:, 2])
        crop = BASE_SCALE * side  # the crop the image model would see

        # the detector's landmarks: noise, misses, swaps, invisible outside the frame
        det = lm_px.copy()
        vis = np.ones(det.shape[:2], np.float32)
        if v.noise and self.lmap.residuals is not None:  # the network's own errors, a window of a real track
            residual, seen = self._residual_window(rng, T)
            det += residual * side[:, None, None]
            vis *= seen
        elif v.noise:  # the fitted summary: Gaussian spread, misses, swaps
            det += rng.normal(size=det.shape) * (self.lmap.spread[None, :, None] * side[:, None, None])
            vis *= rng.random(vis.shape) >= self.lmap.miss[None]
            swap = rng.random(T) < self.lmap.swap
            det[swap] = det[swap][:, self.perm_lm]
        # targets: the pose with the root turned into the camera frame, the joints in the camera frame
        pose = rot.copy()
        pose[:, 0] = R_wc @ pose[:, 0]
        if v.virtual_camera:
            # a crop does not show where in the frame the person stood, so nothing in it tells how far off
            # the optical axis they were; the targets are what a camera at the same place turned to look
            # through the box centre sees (its image of the person is the crop, up to a small homography)
            R_v = _towards_axis((cxy - K[2:]) / K[:2])  # (T, 3, 3)
            j_c = np.einsum("tij,tkj->tki", R_v, j_c)
            pose[:, 0] = R_v @ pose[:, 0]
            kp_2d = j_c[..., :2] / j_c[..., 2:] * K[:2] / (crop[:, None, None] / 2)
        else:
            kp_2d = (j_px - cxy[:, None]) / (crop[:, None, None] / 2)  # the joints in the crop, [-1, 1]
        theta_pose = _rotvec(pose).reshape(T, -1)
        betas = np.broadcast_to(bank.betas[m], (T, bank.betas.shape[1]))
        kp_3d = np.concatenate([j_c, np.broadcast_to(mask[None, :, None], (T, 49, 1))], -1)
        kp_2d = np.concatenate([kp_2d, np.broadcast_to(mask[None, :, None], (T, 49, 1))], -1)
        boxes = np.stack([cxy[:, 0], cxy[:, 1], side, side], axis=1)  # the inputs as demo and evaluation make them
        keypoints = inputs_from_landmarks(np.concatenate([det, vis[..., None]], -1), boxes, (W, H))  # outside: unseen
        if v.flip and rng.random() < 0.5:
            keypoints, kp_2d, kp_3d, theta_pose = self._flip(keypoints, kp_2d, kp_3d, theta_pose)
        cam = np.tile(np.array([1.0, 0.0, 0.0], np.float32), (T, 1))
        return {
            "keypoints": torch.as_tensor(keypoints, dtype=torch.float32),
            "kp_2d": torch.as_tensor(kp_2d, dtype=torch.float32),
            "kp_3d": torch.as_tensor(kp_3d, dtype=torch.float32),
            "theta": torch.cat(
                [
                    torch.from_numpy(cam),
                    torch.as_tensor(theta_pose, dtype=torch.float32),
                    torch.as_tensor(np.ascontiguousarray(betas), dtype=torch.float32),
                ],
                1,
            ),  # fmt: skip
            "w_smpl": torch.ones(T),
            "w_3d": torch.ones(T),
            "index": torch.tensor([index]),
        }

    def _residual_window(self, rng: np.random.Generator, T: int) -> tuple[np.ndarray, np.ndarray]:
        """(T, 33, 2) residuals in box sides and (T, 33) reported flags: T consecutive frames of one track
        of the pool (T random rows when no track is that long), mirrored half of the time."""
        lmap = self.lmap
        if self.pool_starts is not None:
            rows = int(self.pool_starts[rng.integers(len(self.pool_starts))]) + np.arange(T)
        else:
            rows = rng.integers(len(lmap.residuals), size=T)
        residual, seen = lmap.residuals[rows].astype(np.float64), lmap.residual_seen[rows]
        if rng.random() < 0.5:
            residual = residual[:, self.perm_lm] * np.array([-1.0, 1.0])
            seen = seen[:, self.perm_lm]
        return residual, seen.astype(np.float32)

    def pose_rows(self, count: int = 2048, seed: int = 0) -> dict[str, np.ndarray]:
        """Pose (N, 3J) and shape (N, S) rows of a fixed draw of samples (the mean-pose start of the decoder
        and the mean-pose baseline use their chordal mean)."""
        rng = np.random.default_rng(seed)
        rows = [self.sample(rng)["theta"][0].numpy() for _ in range(count)]
        theta = np.stack(rows)
        S = self.bank.betas.shape[1]
        return {"pose": theta[:, 3:-S], "shape": theta[:, -S:]}

    def _flip(self, keypoints, kp_2d, kp_3d, theta_pose):
        """The mirror image: x negated, left and right exchanged, in inputs and targets alike."""

        keypoints = keypoints[:, self.perm_lm].copy()
        keypoints[..., 0] *= -1
        kp_2d = kp_2d[:, self.perm_joints].copy()
        kp_2d[..., 0] *= -1
        kp_3d = kp_3d[:, self.perm_joints].copy()
        kp_3d[..., 0] *= -1
        return keypoints, kp_2d, kp_3d, flip_pose(theta_pose, self.pose_layout.flip_permutation)

    @property
    def pose_layout(self):

        return pose_layout(self.bank.spec.body_model, self.bank.spec.rig)


# ------------------------------------------------------------------------------------------ from a config
def landmark_map_from_config(cfg) -> LandmarkMap:
    """``KEYPOINTS.LANDMARK_MAP`` or the map that ships for ``MODEL.BODY_MODEL`` / ``MODEL.BODY_RIG``."""

    path = (
        Path(cfg.KEYPOINTS.LANDMARK_MAP)
        if cfg.KEYPOINTS.LANDMARK_MAP
        else shipped_map_path(cfg.MODEL.BODY_MODEL, cfg.MODEL.BODY_RIG)
    )
    if not path.is_file():
        raise AssetError(
            f"KEYPOINTS.LANDMARK_MAP: {path}: no such file (a BlazePose landmark map fitted on renders of this "
            "body model and rig: python -m maed.synth.landmarks --data SYNTH_DIR --out FILE)"
        )
    return LandmarkMap.load(path)


def bank_from_config(cfg, split: str, *, progress: bool = True) -> MotionBank:
    """The motion bank of a split, cached in ``PATHS.DB_DIR`` (built there on first use)."""

    k = cfg.KEYPOINTS
    lmap = landmark_map_from_config(cfg)
    count = k.BANK_SIZE if split == "train" else max(1, k.VAL_SIZE // 4)
    spec = BankSpec(
        count=count,
        frames=k.BANK_FRAMES,
        seed={"train": 0, "val": 1, "test": 2}[split],
        split="test" if split != "train" else "train",  # validation and test use the held-out shapes
        body_model=cfg.MODEL.BODY_MODEL,
        rig=cfg.MODEL.BODY_RIG,
        landmark_map=lmap.geometry_key(),
    )
    return MotionBank.cached(Path(resolve_paths(cfg.PATHS)["db_dir"]), spec, lmap, progress=progress)


def clips_from_config(cfg, split: str = "train", *, progress: bool = True) -> KeypointClips:
    k = cfg.KEYPOINTS
    view = ViewSettings(seqlen=cfg.DATASET.SEQLEN, noise=k.NOISE, flip=split == "train", close_up=k.CLOSE_UP)
    length = k.SAMPLES_PER_PASS if split == "train" else k.VAL_SIZE
    return KeypointClips(bank_from_config(cfg, split, progress=progress), landmark_map_from_config(cfg), view, length)
