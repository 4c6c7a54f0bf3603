"""Per-bone angle limits of each rig, for the random motion of ``maed synth``.

A bone's rotation is three angles (degrees) about the axes of its *anatomical frame*, built from the rest
skeleton (:func:`maed.synth.motion.bone_frames`): y' along the bone (head to the mean of its children's
heads), z' the body's forward direction made perpendicular to y', x' = y' x z'. The rotation is
``F Rx(a) Ry(b) Rz(c) F^T`` with F = [x' y' z'], so a is flexion (legs and arms swing forward for a > 0,
knees bend for a < 0, elbows for a > 0, the spine bends forward for a > 0), b twists the bone about
itself and c is abduction (a left limb moves outwards, a shrug or side bend for the trunk).

Tables list each left and centre bone as ``(a range, b range, c range)`` and optionally a neutral pose
(the middle of the random motion: arms hanging, elbows and knees slightly bent); right bones mirror their
left twin (a kept, b and c negated), so the motion is left/right symmetric in distribution. Bones not
listed (toes, eyes, the twist-free hip bones) stay at rest. Keyframes are drawn inside the limits and
interpolated by a B-spline, which never leaves them (``maed.synth.motion``).
"""

from __future__ import annotations

import numpy as np

from maed.body.joints import mirror_name

Range = tuple[float, float]
Limits = tuple[Range, Range, Range]

_SPINE: Limits = ((-5, 12), (-8, 8), (-6, 6))
_CLAVICLE: Limits = ((-10, 15), (-5, 5), (-5, 15))
# shoulder adduction past the hanging arm and deep elbow bends put hands through the chest: kept out
_SHOULDER: Limits = ((-40, 110), (-40, 40), (-28, 110))
_ELBOW: Limits = ((0, 125), (-10, 10), (-5, 5))
_WRIST: Limits = ((-40, 40), (-10, 10), (-15, 25))
_HIP: Limits = ((-20, 100), (-30, 30), (-15, 40))
_KNEE: Limits = ((-140, 0), (-10, 10), (-3, 3))
_ANKLE: Limits = ((-40, 20), (-10, 10), (-15, 15))
_HEAD: Limits = ((-20, 25), (-20, 20), (-15, 15))
_NECK: Limits = ((-10, 15), (-20, 20), (-10, 10))
_DIGIT: Limits = ((-5, 20), (-5, 5), (-5, 5))
_ROOT: Limits = ((-8, 12), (0, 0), (-5, 5))  # lean and roll; the heading is the motion's own

#: per rig: bone -> limits (left and centre bones; right ones are mirrored)
JOINT_LIMITS: dict[str, dict[str, Limits]] = {
    "anny": {
        "root": _ROOT, "spine05": _SPINE, "spine04": _SPINE, "spine03": _SPINE, "spine02": _SPINE,
        "spine01": _SPINE, "neck01": _NECK, "neck02": _NECK, "neck03": ((-5, 10), (-10, 10), (-5, 5)),
        "head": _HEAD, "clavicle.L": _CLAVICLE, "shoulder01.L": ((-10, 10), (-5, 5), (-5, 10)),
        "upperarm01.L": _SHOULDER, "upperarm02.L": ((0, 0), (-30, 30), (0, 0)), "lowerarm01.L": _ELBOW,
        "lowerarm02.L": ((0, 0), (-40, 40), (0, 0)), "wrist.L": _WRIST, "upperleg01.L": _HIP,
        "upperleg02.L": ((0, 0), (-15, 15), (0, 0)), "lowerleg01.L": _KNEE,
        "lowerleg02.L": ((0, 0), (-10, 10), (0, 0)), "foot.L": _ANKLE,
    },
    "cmu_mb": {
        "Hips": _ROOT, "LowerBack": ((-8, 15), (-12, 12), (-8, 8)), "Spine": ((-8, 15), (-12, 12), (-8, 8)),
        "Spine1": ((-6, 12), (-10, 10), (-6, 6)), "Neck": ((-15, 25), (-30, 30), (-15, 15)), "Neck1": _NECK,
        "Head": _HEAD, "LeftShoulder": _CLAVICLE, "LeftArm": ((-40, 110), (-60, 60), (-28, 110)),
        "LeftForeArm": ((0, 125), (-40, 40), (-5, 5)), "LeftHand": _WRIST, "LThumb": _DIGIT,
        "LeftFingerBase": _DIGIT, "LeftHandFinger1": _DIGIT, "LeftUpLeg": ((-20, 100), (-35, 35), (-15, 40)),
        "LeftLeg": ((-140, 0), (-15, 15), (-3, 3)), "LeftFoot": _ANKLE, "LeftToeBase": ((-10, 25), (0, 0), (0, 0)),
    },
    # SMPL's rest pose is a T-pose: the shoulder's abduction range sits 60 degrees lower than Anny's A-pose
    "smpl": {
        "pelvis": _ROOT, "spine1": ((-5, 15), (-10, 10), (-8, 8)), "spine2": ((-5, 15), (-10, 10), (-8, 8)),
        "spine3": ((-5, 12), (-10, 10), (-6, 6)), "neck": ((-15, 25), (-30, 30), (-15, 15)), "head": _HEAD,
        "left_collar": _CLAVICLE, "left_shoulder": ((-40, 100), (-50, 50), (-80, 60)), "left_elbow": _ELBOW,
        "left_wrist": _WRIST, "left_hand": _DIGIT, "left_hip": _HIP, "left_knee": _KNEE, "left_ankle": _ANKLE,
        "left_foot": ((-10, 25), (0, 0), (0, 0)),
    },
}  # fmt: skip

#: neutral angles (the centre of the random motion) where rest is not natural: arms down, limbs a bit bent
NEUTRAL: dict[str, dict[str, tuple[float, float, float]]] = {
    "anny": {"upperarm01.L": (5, 0, -28), "lowerarm01.L": (15, 0, 0), "upperleg01.L": (3, 0, 0),
             "lowerleg01.L": (-5, 0, 0)},
    "cmu_mb": {"LeftArm": (5, 0, -28), "LeftForeArm": (15, 0, 0), "LeftUpLeg": (3, 0, 0), "LeftLeg": (-5, 0, 0)},
    "smpl": {"left_shoulder": (5, 0, -70), "left_elbow": (15, 0, 0), "left_hip": (3, 0, 0), "left_knee": (-5, 0, 0)},
}  # fmt: skip

#: anny's default rig: finger bones curl a little (the hand is a few pixels in a training crop)
_DIGIT_PREFIXES = ("finger", "metacarpal")


def _mirror_limits(limits: Limits) -> Limits:
    (a, b, c) = limits
    return (a, (-b[1], -b[0]), (-c[1], -c[0]))


def limits_table(rig: str, bone_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Limits and neutral angles of every bone of a rig, in radians.

    Returns (limits J x 3 x 2 (low, high), neutral J x 3); bones without an entry are fixed at 0. The
    neutral pose is clipped into the limits.
    """
    table = JOINT_LIMITS[rig]
    neutral_table = NEUTRAL.get(rig, {})
    names = list(bone_names)
    lim = np.zeros((len(names), 3, 2))
    neutral = np.zeros((len(names), 3))
    for j, name in enumerate(names):
        twin = mirror_name(name, names)
        if name in table:
            entry, n = table[name], neutral_table.get(name, (0.0, 0.0, 0.0))
        elif twin in table:
            entry, n = _mirror_limits(table[twin]), neutral_table.get(twin, (0.0, 0.0, 0.0))
            n = (n[0], -n[1], -n[2])
        elif rig == "anny" and name.startswith(_DIGIT_PREFIXES):
            entry, n = _DIGIT, (5.0, 0.0, 0.0)
        else:
            continue
        lim[j] = np.asarray(entry, dtype=np.float64)
        neutral[j] = np.clip(n, lim[j, :, 0], lim[j, :, 1])
    return np.deg2rad(lim), np.deg2rad(neutral)


#: the bones the walking gait drives, per rig: hips, knees, ankles, shoulders, elbows (left, right)
GAIT_BONES: dict[str, dict[str, str]] = {
    "anny": {"lhip": "upperleg01.L", "rhip": "upperleg01.R", "lknee": "lowerleg01.L", "rknee": "lowerleg01.R",
             "lankle": "foot.L", "rankle": "foot.R", "lshoulder": "upperarm01.L", "rshoulder": "upperarm01.R",
             "lelbow": "lowerarm01.L", "relbow": "lowerarm01.R"},
    "cmu_mb": {"lhip": "LeftUpLeg", "rhip": "RightUpLeg", "lknee": "LeftLeg", "rknee": "RightLeg",
               "lankle": "LeftFoot", "rankle": "RightFoot", "lshoulder": "LeftArm", "rshoulder": "RightArm",
               "lelbow": "LeftForeArm", "relbow": "RightForeArm"},
    "smpl": {"lhip": "left_hip", "rhip": "right_hip", "lknee": "left_knee", "rknee": "right_knee",
             "lankle": "left_ankle", "rankle": "right_ankle", "lshoulder": "left_shoulder",
             "rshoulder": "right_shoulder", "lelbow": "left_elbow", "relbow": "right_elbow"},
}  # fmt: skip
