"""Joint conventions of the original MAED/SPIN SMPL wrapper (ORIGINAL.md §2), the evaluation index maps, and
left/right twins by name. Tables only: the pose layouts of the body models are ``maed.body.layout``."""

from __future__ import annotations

#: parent of each of the 24 SMPL joints (kintree_table[0], root = -1)
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]

SMPL_JOINT_NAMES = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
]  # fmt: skip

#: the 49 output joints: OpenPose-25 order, then the 24 "GT"/SPIN joints
JOINT_NAMES = [
    # 0-24: OpenPose BODY_25
    "OP Nose", "OP Neck", "OP RShoulder", "OP RElbow", "OP RWrist", "OP LShoulder", "OP LElbow",
    "OP LWrist", "OP MidHip", "OP RHip", "OP RKnee", "OP RAnkle", "OP LHip", "OP LKnee", "OP LAnkle",
    "OP REye", "OP LEye", "OP REar", "OP LEar", "OP LBigToe", "OP LSmallToe", "OP LHeel", "OP RBigToe",
    "OP RSmallToe", "OP RHeel",
    # 25-48: ground-truth joints (25-38 are the 14 LSP joints, in J14 order)
    "Right Ankle", "Right Knee", "Right Hip", "Left Hip", "Left Knee", "Left Ankle", "Right Wrist",
    "Right Elbow", "Right Shoulder", "Left Shoulder", "Left Elbow", "Left Wrist", "Neck (LSP)",
    "Top of Head (LSP)", "Pelvis (MPII)", "Thorax (MPII)", "Spine (H36M)", "Jaw (H36M)", "Head (H36M)",
    "Nose", "Left Eye", "Right Eye", "Left Ear", "Right Ear",
]  # fmt: skip

#: Where each output joint comes from, in the 54-joint list the SMPL wrapper builds:
#: 0-23 SMPL joints, 24-44 smplx's vertex joints (nose, reye, leye, rear, lear, LBigToe, LSmallToe,
#: LHeel, RBigToe, RSmallToe, RHeel, 10 fingertips), 45-53 ``J_regressor_extra`` (R hip, L hip, neck
#: (LSP), top of head (LSP), pelvis (MPII), thorax (MPII), spine (H36M), jaw (H36M), head (H36M)).
JOINT_MAP = {
    "OP Nose": 24, "OP Neck": 12, "OP RShoulder": 17, "OP RElbow": 19, "OP RWrist": 21,
    "OP LShoulder": 16, "OP LElbow": 18, "OP LWrist": 20, "OP MidHip": 0, "OP RHip": 2, "OP RKnee": 5,
    "OP RAnkle": 8, "OP LHip": 1, "OP LKnee": 4, "OP LAnkle": 7, "OP REye": 25, "OP LEye": 26,
    "OP REar": 27, "OP LEar": 28, "OP LBigToe": 29, "OP LSmallToe": 30, "OP LHeel": 31,
    "OP RBigToe": 32, "OP RSmallToe": 33, "OP RHeel": 34,
    "Right Ankle": 8, "Right Knee": 5, "Right Hip": 45, "Left Hip": 46, "Left Knee": 4, "Left Ankle": 7,
    "Right Wrist": 21, "Right Elbow": 19, "Right Shoulder": 17, "Left Shoulder": 16, "Left Elbow": 18,
    "Left Wrist": 20, "Neck (LSP)": 47, "Top of Head (LSP)": 48, "Pelvis (MPII)": 49,
    "Thorax (MPII)": 50, "Spine (H36M)": 51, "Jaw (H36M)": 52, "Head (H36M)": 53, "Nose": 24,
    "Left Eye": 26, "Right Eye": 25, "Left Ear": 28, "Right Ear": 27,
}  # fmt: skip

#: index into the 54 smplx + extra joints for each of the 49 output joints
SMPL_JOINT_MAP = [JOINT_MAP[name] for name in JOINT_NAMES]
#: index of each output joint by name
JOINT_IDS = {name: i for i, name in enumerate(JOINT_NAMES)}

NUM_EXTRA_JOINTS = 9

# Index maps from the 17 joints of J_regressor_h36m. The original's H36M_TO_J17 ends with
# (neck, hip, spine, head, headtop) while the ground truth it is compared with ends with
# (neck, headtop, hip, spine, head) (ORIGINAL.md §9); H36M_TO_J17_FIXED uses the ground truth's order.
H36M_TO_J14 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]
H36M_TO_J17 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 0, 7, 9, 10]
H36M_TO_MPII3D = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9]
H36M_TO_J17_FIXED = list(H36M_TO_MPII3D)

J49_TO_J14 = list(range(25, 39))
#: J14 + pelvis, spine, head (H36M)
J49_TO_MPII3D = list(range(25, 39)) + [39, 41, 43]
#: rankle .. lwrist, neck, pelvis, spine, jaw, head
J49_TO_H36M = [25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 39, 41, 42, 43]


# ------------------------------------------------------------------------------------------ left/right
#: side markers: (right, left) name prefixes, then (right, left) name suffixes
_SIDE_PREFIXES = [("OP R", "OP L"), ("right", "left"), ("Right", "Left"), ("r", "l"), ("R", "L")]
_SIDE_SUFFIXES = [(".R", ".L"), ("_R", "_L")]


def mirror_name(name: str, names: list[str]) -> str:
    """The name of ``name``'s twin on the other side among ``names`` (``name`` itself for centre joints).

    Sides are told by a prefix (``OP R``/``OP L``, ``right``/``left``, ``Right``/``Left``, ``r``/``l``,
    ``R``/``L``: ``rankle``, ``LeftArm``, ``RThumb``) or a suffix (``.R``/``.L``, ``_R``/``_L``: anny's
    ``upperarm01.L``). A marker counts only when the swapped name is in ``names``, so ``root`` and
    ``LowerBack`` stay themselves.
    """
    for right, left in _SIDE_PREFIXES:
        for a, b in ((right, left), (left, right)):
            if name.startswith(a) and (b + name[len(a) :]) in names:
                return b + name[len(a) :]
    for right, left in _SIDE_SUFFIXES:
        for a, b in ((right, left), (left, right)):
            if name.endswith(a) and (name[: -len(a)] + b) in names:
                return name[: -len(a)] + b
    return name


def mirror_permutation(names: list[str]) -> list[int]:
    """Index list ``perm`` such that ``x[..., perm, :]`` swaps every left joint with its right twin.

    Centre joints map to themselves; applying it twice is the identity (see :func:`mirror_name`).
    """
    names = list(names)
    return [names.index(mirror_name(n, names)) for n in names]
