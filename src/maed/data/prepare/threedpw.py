"""3DPW: ``sequenceFiles/{train,validation,test}/*.pkl`` -> ``3dpw_{train,val,test}_db.pt`` (ORIGINAL.md §4).

Per sequence file and actor: the SMPL pose's global orientation is rotated into the camera frame,
the 49 joints (train) or the H36M-regressed 14 joints (val/test) of the neutral model are computed in
camera coordinates (metres), the 18 2D joints are reduced to the 12 confident LSP limb joints, and the
box is HMMR's smoothed keypoint box. Fixed against the original (ORIGINAL.md §9): the boxes are aligned with
their frames (the original shifted them by the index of the first visible frame), and ``campose_valid``
is stored as ``valid`` and can drop frames (``drop_invalid_camera``).

The original added the world translation to joints posed with the camera-frame orientation, so its
joints are neither in world nor camera coordinates; here they are in camera coordinates. Every consumer
aligns joints at the pelvis, so the two agree after alignment.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maed.body import build_body_model
from maed.body.geometry import axis_angle_to_rotmat, rotmat_to_axis_angle
from maed.body.joints import H36M_TO_J14
from maed.data.bbox import bbox_params_to_bbox, get_smooth_bbox_params
from maed.data.database import concat_databases
from maed.data.keypoints import convert_kps
from maed.data.prepare.common import check_shape, progress
from maed.errors import DataError
from maed.utils.safe_pickle import ModelUnpickler, safe_load

SPLIT_DIRS = {"train": "train", "val": "validation", "test": "test"}
RAW_TREE = """\
  <raw>/sequenceFiles/train/*.pkl         (3DPW sequence files, python-2 pickles)
  <raw>/sequenceFiles/validation/*.pkl
  <raw>/sequenceFiles/test/*.pkl
  <raw>/imageFiles/<sequence>/image_%05d.jpg"""

VIS_THRESH = 0.3  # 2D joint confidence counted as visible
MIN_KP = 6  # a frame is kept with more than this many visible LSP joints
BBOX_SCALE = 1.1
SMOOTH_KERNEL = 11
SMOOTH_SIGMA = 8.0
ROOT_JOINT = 8  # 'OP MidHip' = SMPL joint 0 in the 49 output joints
GT_3D_JOINTS = slice(25, 39)  # joints given confidence 1 in joints3D (the 14 LSP joints)
REQUIRED_KEYS = ("poses", "betas", "trans", "poses2d", "cam_poses", "campose_valid", "img_frame_ids")
GENDER_NAMES = {"m": "male", "f": "female", "male": "male", "female": "female"}


def find_splits(raw: Path) -> dict[str, Path]:
    found = {}
    for split, sub in SPLIT_DIRS.items():
        d = raw / "sequenceFiles" / sub
        if d.is_dir() and any(d.glob("*.pkl")):
            found[split] = d
    return found


def load_sequence(path: Path) -> dict:
    """Read one 3DPW sequence pickle (python 2, latin1) without running code from it."""

    class SequenceUnpickler(ModelUnpickler):  # the SMPL allow-list (numpy, containers, chumpy stand-ins)
        hint = "use the official 3DPW sequence files"

    with open(path, "rb") as f:
        data = safe_load(f, source=str(path), error=DataError, what="3DPW sequence", unpickler=SequenceUnpickler)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a dict of sequence fields, got {type(data).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise DataError(f"{path}: missing field '{missing[0]}' (fields present: {sorted(data)})")
    return data


def _body_models(options, need_h36m: bool):
    cache = {}

    def get(gender: str):
        if gender not in cache:
            model = build_body_model("smpl", model_dir=options.body_model_dir, gender=gender).eval()
            if need_h36m and model.J_regressor_h36m is None:
                raise DataError(
                    f"3DPW val/test ground truth needs J_regressor_h36m.npy in {options.body_model_dir} "
                    "(docs/DATA.md, SMPL files)"
                )
            cache[gender] = model
        return cache[gender]

    return get


def camera_frame_body(
    model, pose_w: np.ndarray, betas: np.ndarray, trans: np.ndarray, cam_poses: np.ndarray, chunk: int = 2048
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pose an actor in the camera frame.

    Args:
        model: ``maed.body.smpl.SMPL``.
        pose_w: N x 72 axis-angle, global orientation in world axes. betas: 10. trans: N x 3 metres (world).
        cam_poses: N x 4 x 4 world-to-camera extrinsics (metres).

    Returns:
        pose_c N x 72 (global orientation in camera axes), joints N x 49 x 3 and vertices N x V x 3 in
        camera coordinates (metres), equal to ``R_c (SMPL(pose_w) + trans) + t_c``.
    """
    import torch

    n = len(pose_w)
    R_c = torch.as_tensor(cam_poses[:, :3, :3], dtype=torch.float64)
    t_c = torch.as_tensor(cam_poses[:, :3, 3], dtype=torch.float64)
    pose = torch.as_tensor(pose_w, dtype=torch.float64).clone()
    pose[:, :3] = rotmat_to_axis_angle(R_c @ axis_angle_to_rotmat(pose[:, :3]))
    joints, verts = [], []
    betas_t = torch.as_tensor(np.asarray(betas, dtype=np.float32)[None])
    with torch.no_grad():
        for s in range(0, n, chunk):
            p = pose[s : s + chunk].float()
            out = model.forward_axis_angle(p, betas_t.expand(len(p), -1))
            joints.append(out.joints.double())
            verts.append(out.verts.double())
    joints = torch.cat(joints)
    verts = torch.cat(verts)
    # SMPL rotates about its root joint J0, so R_c (M(pose_w) + trans) + t_c = M(pose_c) + shift
    root = joints[:, ROOT_JOINT]  # N x 3, J0 (independent of pose)
    shift = (R_c @ (root + torch.as_tensor(trans, dtype=torch.float64))[..., None])[..., 0] + t_c - root
    joints = joints + shift[:, None]
    verts = verts + shift[:, None]
    return pose.numpy(), joints.numpy(), verts.numpy()


def reduce_2d(poses2d: np.ndarray) -> np.ndarray:
    """3DPW N x 18 x 3 (x, y, conf) -> N x 49 x 3 with the 12 LSP limb joints, confidence binarised at
    0.3 (neck and head top stay empty, as in the original)."""
    j2d = np.array(poses2d, dtype=np.float64)
    j2d[..., 2] = j2d[..., 2] > VIS_THRESH
    common = convert_kps(j2d, src="3dpw", dst="common")
    return convert_kps(common, src="common", dst="spin")


def read_split(raw: Path, split: str, source: Path, options) -> dict:
    import torch

    files = sorted(source.glob("*.pkl"))
    need_h36m = split != "train"
    body = _body_models(options, need_h36m)
    parts: list[dict] = []
    dropped_camera = 0
    for path in progress(files, desc=f"3dpw {split}", enabled=options.progress):
        data = load_sequence(path)
        seq = path.stem
        frame_ids = np.asarray(data["img_frame_ids"]).reshape(-1).astype(np.int64)
        n = len(frame_ids)
        cam_poses = check_shape(data["cam_poses"], (n, 4, 4), path, "cam_poses").astype(np.float64)
        num_people = len(data["poses"])
        for key in ("betas", "trans", "poses2d", "campose_valid"):
            if len(data[key]) != num_people:
                raise DataError(f"{path}: field '{key}' lists {len(data[key])} actors, 'poses' {num_people}")
        for p in range(num_people):
            pose_w = check_shape(data["poses"][p], (n, 72), path, f"poses[{p}]")
            trans = check_shape(data["trans"][p], (n, 3), path, f"trans[{p}]")
            betas = np.asarray(data["betas"][p], dtype=np.float64).reshape(-1)
            if betas.size < 10:
                raise DataError(f"{path}: field 'betas[{p}]' has {betas.size} values, expected at least 10")
            betas = betas[:10]
            poses2d = check_shape(data["poses2d"][p], (n, 3, 18), path, f"poses2d[{p}]").transpose(0, 2, 1)
            cam_valid = check_shape(
                np.asarray(data["campose_valid"][p]).reshape(-1), (n,), path, f"campose_valid[{p}]"
            ).astype(bool)
            gender = "neutral"
            if options.gendered:
                g = str(data.get("genders", ["?"] * num_people)[p]).lower()
                if g not in GENDER_NAMES:
                    raise DataError(f"{path}: field 'genders[{p}]' is {g!r}, expected 'm' or 'f'")
                gender = GENDER_NAMES[g]
            model = body(gender)

            params, start, end = get_smooth_bbox_params(
                poses2d, vis_thresh=VIS_THRESH, kernel_size=SMOOTH_KERNEL, sigma=SMOOTH_SIGMA
            )
            if end <= start:
                continue
            rows = np.arange(start, end)
            bbox = bbox_params_to_bbox(params, scale=BBOX_SCALE)  # aligned with rows (ORIGINAL.md §9 fix)
            j2d = reduce_2d(poses2d[rows])
            pose_c, joints, verts = camera_frame_body(model, pose_w[rows], betas, trans[rows], cam_poses[rows])
            if need_h36m:
                h36m = torch.as_tensor(verts, dtype=torch.float64)
                reg = model.J_regressor_h36m.double()
                j14 = torch.einsum("jv,nvc->njc", reg, h36m)[:, H36M_TO_J14].numpy()
                joints = convert_kps(j14, src="common", dst="spin")
            conf = np.zeros((len(rows), 49, 1))
            conf[:, GT_3D_JOINTS] = 1.0
            keep = (j2d[..., 2] > VIS_THRESH).sum(-1) > MIN_KP
            if options.drop_invalid_camera:
                dropped_camera += int((keep & ~cam_valid[rows]).sum())
                keep &= cam_valid[rows]
            fids = frame_ids[rows]
            parts.append(
                {
                    "vid_name": np.array([f"{seq}_{p}"] * len(rows))[keep],
                    "frame_id": fids[keep],
                    "img_name": np.array([f"imageFiles/{seq}/image_{f:05d}.jpg" for f in fids])[keep],
                    "joints2D": j2d[keep].astype(np.float32),
                    "joints3D": np.concatenate([joints, conf], axis=-1)[keep].astype(np.float32),
                    "pose": pose_c[keep].astype(np.float32),
                    "shape": np.repeat(betas[None], len(rows), axis=0)[keep].astype(np.float32),
                    "bbox": bbox[keep].astype(np.float32),
                    "valid": cam_valid[rows][keep],
                }
            )

    db = concat_databases(parts) if parts else _empty()
    db["__notes__"] = [f"dropped {dropped_camera} frames with campose_valid false"] if dropped_camera else []
    return db


def _empty() -> dict:
    return {"img_name": np.zeros((0,), dtype=str)}
