"""Keypoint formats of every dataset and conversions between them (ORIGINAL.md §4, ``kp_utils``).

A format is an ordered list of joint names. Names follow the original ``kp_utils`` so that databases
built here and the authors' released ones agree: ``OP ...`` for the OpenPose BODY_25 joints, short
names (``rankle``, ``lshoulder``, ``headtop`` ...) for the ground-truth joints. :func:`convert_kps`
copies joints by name and leaves the joints a source lacks at zero (so their confidence is 0).

The central format is ``spin`` (49 joints): indices 0-24 OpenPose BODY_25, 25-48 the 24 ground-truth
joints whose first 14 (25-38) are the LSP / ``common`` joints.
"""

from __future__ import annotations

import numpy as np

from maed.body.joints import mirror_permutation
from maed.errors import DataError

# ----------------------------------------------------------------------------------- joint-name lists
SPIN_JOINT_NAMES = [
    "OP Nose", "OP Neck", "OP RShoulder", "OP RElbow", "OP RWrist", "OP LShoulder", "OP LElbow",
    "OP LWrist", "OP MidHip", "OP RHip", "OP RKnee", "OP RAnkle", "OP LHip", "OP LKnee", "OP LAnkle",
    "OP REye", "OP LEye", "OP REar", "OP LEar", "OP LBigToe", "OP LSmallToe", "OP LHeel", "OP RBigToe",
    "OP RSmallToe", "OP RHeel",
    "rankle", "rknee", "rhip", "lhip", "lknee", "lankle", "rwrist", "relbow", "rshoulder", "lshoulder",
    "lelbow", "lwrist", "neck", "headtop", "hip", "thorax", "Spine (H36M)", "Jaw (H36M)", "Head (H36M)",
    "nose", "leye", "reye", "lear", "rear",
]  # fmt: skip

#: the 14 LSP joints, also called ``common`` (J14; the 3DPW/H36M evaluation joints)
COMMON_JOINT_NAMES = [
    "rankle", "rknee", "rhip", "lhip", "lknee", "lankle", "rwrist", "relbow", "rshoulder", "lshoulder",
    "lelbow", "lwrist", "neck", "headtop",
]  # fmt: skip

H36M_JOINT_NAMES = [
    "hip", "lhip", "lknee", "lankle", "rhip", "rknee", "rankle", "Spine (H36M)", "neck", "Head (H36M)",
    "headtop", "lshoulder", "lelbow", "lwrist", "rshoulder", "relbow", "rwrist",
]  # fmt: skip

#: the 28 joints of MPI-INF-3DHP training ``annot2``/``annot3``
MPII3D_JOINT_NAMES = [
    "spine3", "spine4", "spine2", "Spine (H36M)", "hip", "neck", "Head (H36M)", "headtop", "left_clavicle",
    "lshoulder", "lelbow", "lwrist", "left_hand", "right_clavicle", "rshoulder", "relbow", "rwrist",
    "right_hand", "lhip", "lknee", "lankle", "left_foot", "left_toe", "rhip", "rknee", "rankle",
    "right_foot", "right_toe",
]  # fmt: skip

#: the 17 joints of the MPI-INF-3DHP test set (``annot_data.mat``)
MPII3D_TEST_JOINT_NAMES = [
    "headtop", "neck", "rshoulder", "relbow", "rwrist", "lshoulder", "lelbow", "lwrist", "rhip", "rknee",
    "rankle", "lhip", "lknee", "lankle", "hip", "Spine (H36M)", "Head (H36M)",
]  # fmt: skip

#: InstaVariety's 25 joints (14 LSP, 5 face, 6 foot) with the names VIBE gives them; the LSP ankles are
#: mapped onto the OpenPose heels and the last pair onto the OpenPose ankles, as VIBE does.
INSTA_JOINT_NAMES = [
    "OP RHeel", "OP RKnee", "OP RHip", "OP LHip", "OP LKnee", "OP LHeel", "OP RWrist", "OP RElbow",
    "OP RShoulder", "OP LShoulder", "OP LElbow", "OP LWrist", "OP Neck", "headtop", "OP Nose", "OP LEye",
    "OP REye", "OP LEar", "OP REar", "OP LBigToe", "OP RBigToe", "OP LSmallToe", "OP RSmallToe",
    "OP LAnkle", "OP RAnkle",
]  # fmt: skip

#: PoseTrack 2018 (17 joints, COCO-like but with head bottom/top instead of the eyes)
POSETRACK_JOINT_NAMES = [
    "nose", "neck", "headtop", "lear", "rear", "lshoulder", "rshoulder", "lelbow", "relbow", "lwrist",
    "rwrist", "lhip", "rhip", "lknee", "rknee", "lankle", "rankle",
]  # fmt: skip

#: Penn Action's official order (``labels/*.mat`` x/y/visibility rows). MAED replaced it with a
#: different list (ORIGINAL.md §9); this is VIBE's, which matches the dataset's README.
PENNACTION_JOINT_NAMES = [
    "headtop", "lshoulder", "rshoulder", "lelbow", "relbow", "lwrist", "rwrist", "lhip", "rhip", "lknee",
    "rknee", "lankle", "rankle",
]  # fmt: skip

COCO_JOINT_NAMES = [
    "nose", "leye", "reye", "lear", "rear", "lshoulder", "rshoulder", "lelbow", "relbow", "lwrist",
    "rwrist", "lhip", "rhip", "lknee", "rknee", "lankle", "rankle",
]  # fmt: skip

MPII_JOINT_NAMES = [
    "rankle", "rknee", "rhip", "lhip", "lknee", "lankle", "hip", "thorax", "neck", "headtop", "rwrist",
    "relbow", "rshoulder", "lshoulder", "lelbow", "lwrist",
]  # fmt: skip

#: 3DPW ``poses2d``: the 18 OpenPose COCO-18 joints. The original names the neck ``thorax`` (and only
#: lists the first 14); the 3DPW preparation keeps that so that no joint lands on ``neck``.
THREEDPW_JOINT_NAMES = [
    "nose", "thorax", "rshoulder", "relbow", "rwrist", "lshoulder", "lelbow", "lwrist", "rhip", "rknee",
    "rankle", "lhip", "lknee", "lankle", "reye", "leye", "rear", "lear",
]  # fmt: skip

#: the 24 SMPL kinematic joints, with the original ``kp_utils`` names
SMPL_JOINT_NAMES = [
    "hips", "leftUpLeg", "rightUpLeg", "spine", "leftLeg", "rightLeg", "spine1", "leftFoot", "rightFoot",
    "spine2", "leftToeBase", "rightToeBase", "neck", "leftShoulder", "rightShoulder", "head", "leftArm",
    "rightArm", "leftForeArm", "rightForeArm", "leftHand", "rightHand", "leftHandIndex1", "rightHandIndex1",
]  # fmt: skip

#: OpenPose BODY_25 alone
OPENPOSE_JOINT_NAMES = SPIN_JOINT_NAMES[:25]

JOINT_NAMES: dict[str, list[str]] = {
    "spin": SPIN_JOINT_NAMES,
    "common": COMMON_JOINT_NAMES,
    "lsp": COMMON_JOINT_NAMES,
    "lspet": COMMON_JOINT_NAMES,
    "h36m": H36M_JOINT_NAMES,
    "mpii3d": MPII3D_JOINT_NAMES,
    "mpii3d_test": MPII3D_TEST_JOINT_NAMES,
    "insta": INSTA_JOINT_NAMES,
    "posetrack": POSETRACK_JOINT_NAMES,
    "pennaction": PENNACTION_JOINT_NAMES,
    "coco": COCO_JOINT_NAMES,
    "mpii": MPII_JOINT_NAMES,
    "3dpw": THREEDPW_JOINT_NAMES,
    "smpl": SMPL_JOINT_NAMES,
    "openpose": OPENPOSE_JOINT_NAMES,
}


# ----------------------------------------------------------------------------------------- left/right
def joint_names(fmt: str) -> list[str]:
    """The ordered joint names of a keypoint format (see ``JOINT_NAMES`` for the known formats)."""
    try:
        return JOINT_NAMES[fmt]
    except KeyError:
        raise DataError(f"unknown keypoint format {fmt!r}; expected one of {sorted(JOINT_NAMES)}") from None


def flip_permutation(fmt: str) -> list[int]:
    """Index list ``perm`` such that ``joints[..., perm, :]`` swaps every left joint with its right twin.

    Centre joints map to themselves; applying it twice is the identity.
    """
    return mirror_permutation(joint_names(fmt))


def flipped_joint_names(fmt: str) -> list[str]:
    """The joint names of ``fmt`` with left and right exchanged (the original ``get_*_joint_names(flip=True)``)."""
    names = joint_names(fmt)
    return [names[i] for i in flip_permutation(fmt)]


SPIN_FLIP_PERM = flip_permutation("spin")
SPIN_FLIPPED_JOINT_NAMES = flipped_joint_names("spin")
SMPL_FLIP_PERM = flip_permutation("smpl")

# ------------------------------------------------------------------------------------------ skeletons
#: bones as index pairs into each format
SKELETONS: dict[str, list[tuple[int, int]]] = {
    "spin": [
        (0, 1), (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (10, 11), (8, 12),
        (12, 13), (13, 14), (0, 15), (0, 16), (15, 17), (16, 18), (21, 19), (19, 20), (14, 21), (11, 24),
        (24, 22), (22, 23), (0, 38),
    ],
    "common": [
        (0, 1), (1, 2), (3, 4), (4, 5), (6, 7), (7, 8), (8, 2), (8, 9), (9, 3), (2, 3), (8, 12), (9, 10),
        (12, 9), (10, 11), (12, 13),
    ],
    "h36m": [
        (0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10), (8, 11), (11, 12),
        (12, 13), (8, 14), (14, 15), (15, 16),
    ],
    "mpii3d": [
        (4, 2), (2, 3), (3, 0), (0, 1), (1, 5), (5, 6), (6, 7), (5, 8), (8, 9), (9, 10), (10, 11), (11, 12),
        (5, 13), (13, 14), (14, 15), (15, 16), (16, 17), (4, 18), (18, 19), (19, 20), (20, 21), (21, 22),
        (4, 23), (23, 24), (24, 25), (25, 26), (26, 27),
    ],
    "mpii3d_test": [
        (0, 16), (16, 1), (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 15), (15, 14), (14, 8), (8, 9),
        (9, 10), (14, 11), (11, 12), (12, 13),
    ],
    "insta": [
        (0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (9, 10), (2, 8), (3, 9), (10, 11),
        (8, 12), (9, 12), (12, 13), (12, 14), (14, 15), (14, 16), (15, 17), (16, 18), (0, 20), (20, 22),
        (5, 19), (19, 21), (5, 23), (0, 24),
    ],
    "posetrack": [
        (0, 1), (1, 2), (0, 3), (0, 4), (1, 5), (1, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (6, 12),
        (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
    ],
    "pennaction": [
        (0, 1), (0, 2), (1, 3), (3, 5), (2, 4), (4, 6), (1, 7), (2, 8), (7, 8), (7, 9), (9, 11), (8, 10),
        (10, 12),
    ],
    "coco": [
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
        (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    ],
    "mpii": [
        (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (7, 12), (12, 11), (11, 10),
        (7, 13), (13, 14), (14, 15),
    ],
    "3dpw": [
        (0, 1), (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (2, 8), (5, 11), (8, 11), (8, 9), (9, 10),
        (11, 12), (12, 13), (0, 14), (0, 15), (14, 16), (15, 17),
    ],
    "smpl": [
        (0, 1), (0, 2), (0, 3), (1, 4), (2, 5), (3, 6), (4, 7), (5, 8), (6, 9), (7, 10), (8, 11), (9, 12),
        (9, 13), (9, 14), (12, 15), (13, 16), (14, 17), (16, 18), (17, 19), (18, 20), (19, 21), (20, 22),
        (21, 23),
    ],
}  # fmt: skip
SKELETONS["lsp"] = SKELETONS["lspet"] = SKELETONS["common"]

#: bones of the 49-joint format drawn by ``maed data show``: the ground-truth limbs (25-48) and the
#: OpenPose limbs, both by name so that either half alone draws a skeleton
SPIN_DRAW_BONES = [
    ("rankle", "rknee"), ("rknee", "rhip"), ("lankle", "lknee"), ("lknee", "lhip"), ("rhip", "lhip"),
    ("rwrist", "relbow"), ("relbow", "rshoulder"), ("lwrist", "lelbow"), ("lelbow", "lshoulder"),
    ("rshoulder", "neck"), ("lshoulder", "neck"), ("neck", "headtop"), ("rshoulder", "rhip"),
    ("lshoulder", "lhip"),
    ("OP RAnkle", "OP RKnee"), ("OP RKnee", "OP RHip"), ("OP LAnkle", "OP LKnee"), ("OP LKnee", "OP LHip"),
    ("OP RHip", "OP MidHip"), ("OP LHip", "OP MidHip"), ("OP MidHip", "OP Neck"), ("OP Neck", "OP Nose"),
    ("OP RWrist", "OP RElbow"), ("OP RElbow", "OP RShoulder"), ("OP RShoulder", "OP Neck"),
    ("OP LWrist", "OP LElbow"), ("OP LElbow", "OP LShoulder"), ("OP LShoulder", "OP Neck"),
    ("OP RAnkle", "OP RHeel"), ("OP RAnkle", "OP RBigToe"), ("OP LAnkle", "OP LHeel"),
    ("OP LAnkle", "OP LBigToe"),
]  # fmt: skip


# ------------------------------------------------------------------------------------------ functions
def get_perm_idxs(src: str, dst: str) -> list[int]:
    """Indices into ``src`` of the ``dst`` joints that ``src`` has, in ``dst`` order (the original's helper).

    ``joints_src[:, get_perm_idxs(src, dst)]`` gives the shared joints in ``dst`` order; joints of
    ``dst`` missing from ``src`` are skipped, so the result can be shorter than ``dst``.
    """
    src_names = joint_names(src)
    return [src_names.index(n) for n in joint_names(dst) if n in src_names]


def conversion_indices(src: str, dst: str) -> tuple[np.ndarray, np.ndarray]:
    """``(dst_idx, src_idx)`` pairs of the joints shared by two formats: ``out[:, dst_idx] = x[:, src_idx]``."""
    src_names = joint_names(src)
    pairs = [(i, src_names.index(n)) for i, n in enumerate(joint_names(dst)) if n in src_names]
    dst_idx = np.array([p[0] for p in pairs], dtype=np.int64)
    src_idx = np.array([p[1] for p in pairs], dtype=np.int64)
    return dst_idx, src_idx


def convert_kps(joints: np.ndarray, src: str, dst: str, flip: bool = False) -> np.ndarray:
    """Convert keypoints between formats by joint name.

    Args:
        joints: N x J_src x C (any trailing channels: x, y, confidence; x, y, z; ...). A single
            J_src x C array is accepted and returned without the N axis.
        src, dst: format names (``JOINT_NAMES``), e.g. ``convert_kps(kp, src="pennaction", dst="spin")``.
        flip: read ``dst`` with left and right exchanged (the original's ``flip=True``).

    Returns:
        N x J_dst x C, same dtype (float for integer inputs); joints ``src`` lacks are all-zero rows.
    """
    joints = np.asarray(joints)
    squeeze = joints.ndim == 2
    if squeeze:
        joints = joints[None]
    n_src = len(joint_names(src))
    if joints.ndim != 3 or joints.shape[1] != n_src:
        raise DataError(f"convert_kps: keypoints of format {src!r} must be N x {n_src} x C, got shape {joints.shape}")
    dst_idx, src_idx = conversion_indices(src, dst)
    if flip:
        dst_idx = np.asarray(flip_permutation(dst), dtype=np.int64)[dst_idx]
    dtype = joints.dtype if np.issubdtype(joints.dtype, np.floating) else np.float64
    out = np.zeros((joints.shape[0], len(joint_names(dst)), joints.shape[2]), dtype=dtype)
    out[:, dst_idx] = joints[:, src_idx]
    return out[0] if squeeze else out


def joint_coverage(joints: np.ndarray, fmt: str = "spin") -> dict[str, float]:
    """Fraction of rows in which each joint is present (confidence > 0), by joint name.

    ``joints``: N x J x C with the confidence in the last channel (2D: x, y, conf; 3D: x, y, z, conf).
    """
    joints = np.asarray(joints)
    names = joint_names(fmt)
    if joints.ndim != 3 or joints.shape[1] != len(names):
        raise DataError(f"joint_coverage: expected N x {len(names)} x C keypoints, got {joints.shape}")
    if joints.shape[0] == 0:
        return dict.fromkeys(names, 0.0)
    present = (joints[..., -1] > 0).mean(axis=0)
    return {n: float(p) for n, p in zip(names, present)}
