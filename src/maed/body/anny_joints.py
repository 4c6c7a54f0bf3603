"""Anny's rigs as tables, and where each of the project's 49 output joints comes from on Anny.

The tables let the data pipeline know a rig's pose layout (bone names, left/right pairs) without building
the model. ``tests/body/test_body_anny.py`` checks them against ``anny.Anny(rig=...).bone_labels``.

The 49 joints (``maed.body.joints.JOINT_NAMES``: OpenPose-25, then the 24 ground-truth joints) are linear
in the posed bone heads and vertices: each is a weighted sum of terms ``("bone", anatomical name)`` (the
head of the rig's bone for that joint: hips, knees, ankles, shoulders, elbows, wrists, neck base, skull
base, mid spine, root), ``("coco", label)`` (anny's COCO keypoint regressor: nose, eyes, ears, toes,
heels) and ``("top",)`` (the crown: the mean of the highest rest-pose vertices near the mid-plane). Only
the H36M jaw has no counterpart; it is placed between the nose and the neck and masked out.
"""

from __future__ import annotations

from maed.body.joints import JOINT_NAMES
from maed.errors import ConfigError

ANNY_RIGS = ("anny", "cmu_mb")
ANNY_NUM_BETAS = 6
ANNY_PHENOTYPES = ("gender", "age", "muscle", "weight", "height", "proportions")


def _anny_default_bones() -> tuple[str, ...]:
    def toes(side: str) -> list[str]:
        return [f"toe1-{k}.{side}" for k in (1, 2)] + [f"toe{t}-{k}.{side}" for t in (2, 3, 4, 5) for k in (1, 2, 3)]

    def fingers(side: str) -> list[str]:
        out = [f"finger1-{k}.{side}" for k in (1, 2, 3)]
        for f in (2, 3, 4, 5):
            out += [f"metacarpal{f - 1}.{side}"] + [f"finger{f}-{k}.{side}" for k in (1, 2, 3)]
        return out

    def leg(side: str) -> list[str]:
        names = ["pelvis", "upperleg01", "upperleg02", "lowerleg01", "lowerleg02", "foot"]
        return [f"{n}.{side}" for n in names] + toes(side)

    def arm(side: str) -> list[str]:
        names = ["clavicle", "shoulder01", "upperarm01", "upperarm02", "lowerarm01", "lowerarm02", "wrist"]
        return [f"{n}.{side}" for n in names] + fingers(side)

    spine = ["spine05", "spine04", "spine03", "spine02", "spine01"]
    head = ["neck01", "neck02", "neck03", "head", "eye.L", "eye.R"]
    return tuple(["root", *leg("L"), *leg("R"), *spine, *arm("L"), *arm("R"), *head])


#: bone names of each rig in pose order (root first)
ANNY_BONES: dict[str, tuple[str, ...]] = {
    "anny": _anny_default_bones(),
    "cmu_mb": (
        "Hips", "LHipJoint", "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase", "LowerBack", "Spine", "Spine1",
        "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand", "LThumb", "LeftFingerBase", "LeftHandFinger1",
        "Neck", "Neck1", "Head", "RightShoulder", "RightArm", "RightForeArm", "RightHand", "RThumb",
        "RightFingerBase", "RightHandFinger1", "RHipJoint", "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase",
    ),
}  # fmt: skip

#: the rig's bone whose head is each anatomical joint
ANNY_ANATOMY: dict[str, dict[str, str]] = {
    "anny": {
        "root": "root", "lhip": "upperleg01.L", "rhip": "upperleg01.R", "lknee": "lowerleg01.L",
        "rknee": "lowerleg01.R", "lankle": "foot.L", "rankle": "foot.R", "lshoulder": "upperarm01.L",
        "rshoulder": "upperarm01.R", "lelbow": "lowerarm01.L", "relbow": "lowerarm01.R", "lwrist": "wrist.L",
        "rwrist": "wrist.R", "neck": "neck01", "skull": "head", "spine": "spine02",
    },
    "cmu_mb": {
        "root": "Hips", "lhip": "LeftUpLeg", "rhip": "RightUpLeg", "lknee": "LeftLeg", "rknee": "RightLeg",
        "lankle": "LeftFoot", "rankle": "RightFoot", "lshoulder": "LeftArm", "rshoulder": "RightArm",
        "lelbow": "LeftForeArm", "relbow": "RightForeArm", "lwrist": "LeftHand", "rwrist": "RightHand",
        "neck": "Neck", "skull": "Head", "spine": "Spine",
    },
}  # fmt: skip


def _b(name: str, w: float = 1.0) -> tuple[float, tuple[str, ...]]:
    return (w, ("bone", name))


def _c(label: str, w: float = 1.0) -> tuple[float, tuple[str, ...]]:
    return (w, ("coco", label))


#: each output joint as weighted terms; the H36M jaw (no counterpart) is listed in ANNY_MISSING_JOINTS
ANNY_JOINT_RECIPES: dict[str, list[tuple[float, tuple[str, ...]]]] = {
    "OP Nose": [_c("nose")], "OP Neck": [_b("neck")], "OP RShoulder": [_b("rshoulder")],
    "OP RElbow": [_b("relbow")], "OP RWrist": [_b("rwrist")], "OP LShoulder": [_b("lshoulder")],
    "OP LElbow": [_b("lelbow")], "OP LWrist": [_b("lwrist")], "OP MidHip": [_b("root")],
    "OP RHip": [_b("rhip")], "OP RKnee": [_b("rknee")], "OP RAnkle": [_b("rankle")], "OP LHip": [_b("lhip")],
    "OP LKnee": [_b("lknee")], "OP LAnkle": [_b("lankle")], "OP REye": [_c("right_eye")],
    "OP LEye": [_c("left_eye")], "OP REar": [_c("right_ear")], "OP LEar": [_c("left_ear")],
    "OP LBigToe": [_c("left_big_toe")], "OP LSmallToe": [_c("left_small_toe")], "OP LHeel": [_c("left_heel")],
    "OP RBigToe": [_c("right_big_toe")], "OP RSmallToe": [_c("right_small_toe")], "OP RHeel": [_c("right_heel")],
    "Right Ankle": [_b("rankle")], "Right Knee": [_b("rknee")], "Right Hip": [_b("rhip")],
    "Left Hip": [_b("lhip")], "Left Knee": [_b("lknee")], "Left Ankle": [_b("lankle")],
    "Right Wrist": [_b("rwrist")], "Right Elbow": [_b("relbow")], "Right Shoulder": [_b("rshoulder")],
    "Left Shoulder": [_b("lshoulder")], "Left Elbow": [_b("lelbow")], "Left Wrist": [_b("lwrist")],
    "Neck (LSP)": [_b("neck", 0.5), _b("skull", 0.5)], "Top of Head (LSP)": [(1.0, ("top",))],
    "Pelvis (MPII)": [_b("lhip", 0.5), _b("rhip", 0.5)], "Thorax (MPII)": [_b("neck")],
    "Spine (H36M)": [_b("spine")], "Jaw (H36M)": [_c("nose", 0.5), _b("neck", 0.25), _b("skull", 0.25)],
    "Head (H36M)": [_c("left_ear", 0.5), _c("right_ear", 0.5)], "Nose": [_c("nose")],
    "Left Eye": [_c("left_eye")], "Right Eye": [_c("right_eye")], "Left Ear": [_c("left_ear")],
    "Right Ear": [_c("right_ear")],
}  # fmt: skip
#: output joints without an Anny counterpart (placed by their recipe, never confident)
ANNY_MISSING_JOINTS = ("Jaw (H36M)",)

#: the crown: rest-pose vertices within this distance (metres) of the mid-plane and of the top
HEAD_TOP_HALF_WIDTH = 0.03
HEAD_TOP_DEPTH = 0.01


def check_anny_rig(rig: str) -> str:
    if rig not in ANNY_RIGS:
        raise ConfigError(f"MODEL.BODY_RIG={rig!r}: Anny's rigs are {', '.join(ANNY_RIGS)}")
    return rig


def anny_bone_names(rig: str = "anny") -> tuple[str, ...]:
    """The bone names of an Anny rig, in pose order."""
    return ANNY_BONES[check_anny_rig(rig)]


def anny_joint_weights(bone_names, coco_weights: dict, rest_vertices, dtype=None):
    """The output-joint regressors of an Anny rig.

    Args:
        bone_names: the rig's bones (J); the rig is told from them.
        coco_weights: COCO label -> V regression weights over the model's vertices (anny's ``coco.pth``).
        rest_vertices: V x 3 rest-pose vertices in the wrapper's axes (y up), to find the crown.

    Returns:
        (bone_weights 49 x J, vertex_weights 49 x V, mask 49 bool): joints = bone_weights @ bone heads +
        vertex_weights @ vertices; mask is False for the joints Anny lacks.
    """
    import torch

    bone_names = list(bone_names)
    rig = next((r for r, names in ANNY_BONES.items() if list(names) == bone_names), None)
    if rig is None:
        raise ConfigError(f"Anny bones {bone_names[:3]}...: not one of the rigs {ANNY_RIGS}")
    anatomy = ANNY_ANATOMY[rig]
    rest_vertices = torch.as_tensor(rest_vertices, dtype=torch.float64)
    V = rest_vertices.shape[0]
    near_mid = rest_vertices[:, 0].abs() < HEAD_TOP_HALF_WIDTH
    top_y = rest_vertices[near_mid, 1].max()
    crown = near_mid & (rest_vertices[:, 1] > top_y - HEAD_TOP_DEPTH)
    top = crown.to(torch.float64) / crown.sum()

    bone_w = torch.zeros(len(JOINT_NAMES), len(bone_names), dtype=torch.float64)
    vert_w = torch.zeros(len(JOINT_NAMES), V, dtype=torch.float64)
    for k, joint in enumerate(JOINT_NAMES):
        for w, term in ANNY_JOINT_RECIPES[joint]:
            if term[0] == "bone":
                bone_w[k, bone_names.index(anatomy[term[1]])] += w
            elif term[0] == "coco":
                vert_w[k] += w * torch.as_tensor(coco_weights[term[1]], dtype=torch.float64)
            else:
                vert_w[k] += w * top
    mask = torch.tensor([name not in ANNY_MISSING_JOINTS for name in JOINT_NAMES])
    dtype = dtype or torch.float32
    return bone_w.to(dtype), vert_w.to(dtype), mask
