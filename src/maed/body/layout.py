"""Pose layouts: what the pose and shape parameters of a body model and rig look like (joint names in pose
order, number of shape values), known from tables without building the model."""

from __future__ import annotations

from dataclasses import dataclass

from maed.body.anny_joints import ANNY_NUM_BETAS, anny_bone_names, check_anny_rig
from maed.body.joints import SMPL_JOINT_NAMES, mirror_permutation
from maed.errors import ConfigError


@dataclass(frozen=True)
class PoseLayout:
    """What the pose and shape parameters of a body model look like, known without building the model.

    ``joint_names``: the kinematic joints (bones) in pose order, root first; ``num_betas``: shape values.
    Databases store ``pose`` as N x 3J axis-angle and ``shape`` as N x S; a model's ``theta`` is
    cam (3) + pose (3J) + shape (S).
    """

    body_model: str
    rig: str
    joint_names: tuple[str, ...]
    num_betas: int

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def pose_dim(self) -> int:
        return 3 * self.num_joints

    @property
    def theta_dim(self) -> int:
        return 3 + self.pose_dim + self.num_betas

    @property
    def flip_permutation(self) -> list[int]:
        """The left/right joint permutation of the pose (see :func:`mirror_permutation`)."""
        return mirror_permutation(list(self.joint_names))


def pose_layout(body_model: str = "smpl", rig: str = "") -> PoseLayout:
    """The :class:`PoseLayout` of a body model and rig (``""``: the model's default rig), from tables.

    ``smpl``: 24 joints, 10 betas. ``anny``: rig ``anny`` (104 bones, the default) or ``cmu_mb`` (31
    bones), 6 phenotype values.
    """
    key = str(body_model).lower()
    if key == "smpl":
        if rig not in ("", "smpl"):
            raise ConfigError(f"MODEL.BODY_RIG={rig!r}: SMPL has one rig; leave it empty")
        return PoseLayout(body_model="smpl", rig="smpl", joint_names=tuple(SMPL_JOINT_NAMES), num_betas=10)
    if key == "anny":
        rig = check_anny_rig(rig or "anny")
        return PoseLayout(body_model="anny", rig=rig, joint_names=anny_bone_names(rig), num_betas=ANNY_NUM_BETAS)
    raise ConfigError(f"MODEL.BODY_MODEL: unknown body model {body_model!r}; expected smpl or anny")


def pose_layout_from_config(cfg) -> PoseLayout:
    """``MODEL.BODY_MODEL`` and ``MODEL.BODY_RIG`` as a :class:`PoseLayout`."""
    return pose_layout(cfg.MODEL.BODY_MODEL, cfg.MODEL.BODY_RIG)
