"""MAED's training losses (ORIGINAL.md §6): the original's terms and weights, its loss bugs fixed (§9).

Terms, each multiplied by its weight (``LOSS.*``):

- ``loss_kp_2d``: mean over all frames x K x 2 elements of conf * (pred - gt)^2; zero-confidence joints
  count in the denominator, as in the original. Video: every clip (2D and 3D); images: every image.
- ``loss_kp_3d``: the same on 3D joints after centring prediction and ground truth on the mean of joints
  27 and 28 (the hips of the 49-joint format). Video: only the 3D clips.
- ``loss_pose``: MSE between rotation matrices, only on frames with ``w_smpl = 1``. The prediction's
  rotation matrices are used directly (the original converted them to axis-angles and back, which adds
  error near 180 degrees); ``pose_via_axis_angle=True`` restores the original route.
- ``loss_shape``: MSE on the betas, only where ``w_smpl = 1``.
- ``loss_norm``: Frobenius norm of the predicted pose and shape (theta[..., 3:]) over the frames,
  divided by the number of frames. Video: only the 3D clips, as the original.
- ``loss_accl``: MSE of joint accelerations, masked by the confidence of all three frames involved (the
  original multiplied each frame's confidence by itself). Video only, off by default (weight 0).
- ``loss_joint_heatmap`` (a project addition, off by default): ``loss_kp_2d``'s formula on the encoder's
  auxiliary heatmap joints (``kp_2d_heatmap``, ``MODEL.ENCODER.JOINT_HEATMAP``) instead of the projected
  body joints, on every clip or image: a dense signal for a backbone trained from scratch.

Fixes besides the two above: 2D clips without 3D clips no longer crash (the 3D-part terms are then
omitted), images without ``kp_3d`` skip the 3D term, an empty ``w_smpl`` selection gives 0 instead of
NaN, and image pose/shape losses are masked by ``w_smpl`` (the original masked only videos, so images
without SMPL annotations were pulled towards the zero pose and zero shape; ``mask_image_smpl=False``
restores that).

Predictions are any mapping with ``kp_2d`` (N, T, K, 2), ``kp_3d`` (N, T, K, 3), ``theta``
(N, T, 3 + 3J + S) and ``rotmat`` (N, T, J, 3, 3) (a ``MAEDOutput``); targets are the batches of
``maed.data`` (video: ``kp_2d`` N x T x K x 3, ``kp_3d`` N x T x K x 4, ``theta`` N x T x 85,
``w_smpl`` N x T; images: the same without T). Losses are computed in float32.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import torch

from maed.body.geometry import axis_angle_to_rotmat, batch_rodrigues, rotmat_to_axis_angle
from maed.config import LossConfig

#: the hips of the 49-joint format (SPIN order 25 + 2, 25 + 3): the centre of the 3D keypoint loss
PELVIS_JOINTS = (27, 28)

LOSS_NAMES = ("loss_kp_2d", "loss_kp_3d", "loss_pose", "loss_shape", "loss_norm", "loss_accl", "loss_joint_heatmap")


@dataclass
class LossResult:
    """A weighted total and its weighted terms (scalar tensors, keys from ``LOSS_NAMES``)."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ terms
def keypoint_2d_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """pred ... x K x 2, gt ... x K x 3 (x, y, confidence) -> mean of conf * squared error over all
    ... x K x 2 elements (zero-confidence entries count in the denominator, as the original)."""
    conf = gt[..., 2:3]
    return (conf * (pred - gt[..., :2]) ** 2).mean()


def centre_on_pelvis(joints: torch.Tensor, pelvis: tuple[int, int] = PELVIS_JOINTS) -> torch.Tensor:
    """... x K x 3 -> the same, minus the mean of the two ``pelvis`` joints (metres)."""
    centre = 0.5 * (joints[..., pelvis[0], :] + joints[..., pelvis[1], :])
    return joints - centre[..., None, :]


def keypoint_3d_loss(
    pred: torch.Tensor,
    gt: torch.Tensor,
    *,
    pred_root: torch.Tensor | None = None,
    gt_root: torch.Tensor | None = None,
) -> torch.Tensor:
    """pred ... x K x 3, gt ... x K x 4 (metres, confidence) -> mean of conf * squared error of the
    pelvis-centred joints over all ... x K x 3 elements.

    With ``pred_root`` and ``gt_root`` (... x 3 x 3, the root rotations), each body's centred joints are
    first turned into its own frame (its root's rotation undone): the loss then scores the articulation
    alone, whatever the facing (``LOSS.KP_3D_BODY_FRAME``)."""
    conf = gt[..., 3:4]
    p, g = centre_on_pelvis(pred), centre_on_pelvis(gt[..., :3])
    if (pred_root is None) != (gt_root is None):
        raise ValueError("keypoint_3d_loss: give both root rotations or neither")
    if pred_root is not None:
        p, g = p @ pred_root, g @ gt_root  # rows: R^T x for each joint x
    return (conf * (p - g) ** 2).mean()


def pose_loss(
    pred_rotmat: torch.Tensor,
    gt_pose: torch.Tensor,
    *,
    pred_pose: torch.Tensor | None = None,
    via_axis_angle: bool = False,
) -> torch.Tensor:
    """MSE between predicted and ground-truth rotation matrices of the selected frames.

    pred_rotmat: M x J x 3 x 3; gt_pose: M x 3J axis-angles (radians). With ``via_axis_angle`` the
    original's route is used: the prediction's axis-angles ``pred_pose`` (M x 3J, from theta) and the
    ground truth both go through the original's quaternion Rodrigues (``batch_rodrigues``).
    Returns 0 when M is 0.
    """
    if gt_pose.shape[0] == 0:
        return pred_rotmat.sum() * 0.0
    J = gt_pose.shape[-1] // 3
    if via_axis_angle:
        if pred_pose is None:
            pred_pose = rotmat_to_axis_angle(pred_rotmat).reshape(-1, 3 * J)
        pred = batch_rodrigues(pred_pose.reshape(-1, 3)).reshape(-1, J, 3, 3)
        gt = batch_rodrigues(gt_pose.reshape(-1, 3)).reshape(-1, J, 3, 3)
    else:
        pred = pred_rotmat
        gt = axis_angle_to_rotmat(gt_pose.reshape(-1, J, 3))
    return ((pred - gt) ** 2).mean()


def shape_loss(pred_betas: torch.Tensor, gt_betas: torch.Tensor) -> torch.Tensor:
    """M x S predicted and ground-truth betas -> MSE; 0 when M is 0."""
    if gt_betas.shape[0] == 0:
        return pred_betas.sum() * 0.0
    return ((pred_betas - gt_betas) ** 2).mean()


def norm_loss(pred_theta: torch.Tensor) -> torch.Tensor:
    """M x 85 predicted theta -> ||theta[:, 3:]||_F / M (pose and shape of all frames together)."""
    return torch.linalg.matrix_norm(pred_theta[:, 3:]) / max(pred_theta.shape[0], 1)


def acceleration_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """pred N x T x K x 3, gt N x T x K x 4 (metres, confidence) -> MSE of the second differences
    (x[t] - 2 x[t+1] + x[t+2]) over N x (T-2) x K x 3, each masked by the confidence of all three
    frames. 0 when T < 3."""
    if pred.shape[1] < 3:
        return pred.sum() * 0.0
    conf = gt[..., 3:4]
    conf_accl = conf[:, :-2] * conf[:, 1:-1] * conf[:, 2:]  # (N, T-2, K, 1)
    pred_accl = pred[:, 2:] - 2 * pred[:, 1:-1] + pred[:, :-2]
    gt_xyz = gt[..., :3]
    gt_accl = gt_xyz[:, 2:] - 2 * gt_xyz[:, 1:-1] + gt_xyz[:, :-2]
    return ((conf_accl * (pred_accl - gt_accl)) ** 2).mean()


# ------------------------------------------------------------------------------------------ criterion
@dataclass(frozen=True)
class MAEDLoss:
    """The weighted MAED objective for video batches, image batches and their mix (ORIGINAL.md §6).

    Args:
        kp_2d_weight, kp_3d_weight, pose_weight, shape_weight, norm_weight, accel_weight, joint_heatmap_weight:
            term weights (``LOSS.KP_2D_W``, ``KP_3D_W``, ``POSE_W``, ``SHAPE_W``, ``SMPL_NORM``, ``ACCL_W``,
            ``JOINT_HEATMAP_W``); a term with weight 0 is not computed. A positive ``joint_heatmap_weight``
            needs predictions with ``kp_2d_heatmap``.
        pose_via_axis_angle: the original's rotation-matrix -> axis-angle -> rotation-matrix pose loss.
        mask_image_smpl: mask image pose/shape losses by ``w_smpl`` (False: the original, unmasked).
        kp_3d_body_frame: the 3D-joint term in each body's own frame (``keypoint_3d_loss`` with the roots).

    The defaults are the config schema's (the original MAED's config.py; the paper's recipe, as in the
    stage presets, is 300 / 600 / 60 / 0.06 / 1 / 0), so ``MAEDLoss()`` equals
    ``MAEDLoss.from_config(Config().LOSS)``.
    """

    kp_2d_weight: float = LossConfig.KP_2D_W
    kp_3d_weight: float = LossConfig.KP_3D_W
    pose_weight: float = LossConfig.POSE_W
    shape_weight: float = LossConfig.SHAPE_W
    norm_weight: float = LossConfig.SMPL_NORM
    accel_weight: float = LossConfig.ACCL_W
    joint_heatmap_weight: float = LossConfig.JOINT_HEATMAP_W
    pose_via_axis_angle: bool = LossConfig.POSE_VIA_AXIS_ANGLE
    mask_image_smpl: bool = LossConfig.MASK_IMAGE_SMPL
    kp_3d_body_frame: bool = LossConfig.KP_3D_BODY_FRAME

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_weight"):
                if not (math.isfinite(float(value)) and float(value) >= 0):
                    raise ValueError(f"{f.name}={value}: expected a finite weight >= 0")
                object.__setattr__(self, f.name, float(value))
            else:
                object.__setattr__(self, f.name, bool(value))

    @classmethod
    def from_config(cls, loss_cfg) -> MAEDLoss:
        """From the ``LOSS`` section of a :class:`maed.config.Config` (its weights checked by the schema)."""
        return cls(
            kp_2d_weight=loss_cfg.KP_2D_W,
            kp_3d_weight=loss_cfg.KP_3D_W,
            pose_weight=loss_cfg.POSE_W,
            shape_weight=loss_cfg.SHAPE_W,
            norm_weight=loss_cfg.SMPL_NORM,
            accel_weight=loss_cfg.ACCL_W,
            joint_heatmap_weight=loss_cfg.JOINT_HEATMAP_W,
            pose_via_axis_angle=loss_cfg.POSE_VIA_AXIS_ANGLE,
            mask_image_smpl=loss_cfg.MASK_IMAGE_SMPL,
            kp_3d_body_frame=loss_cfg.KP_3D_BODY_FRAME,
        )

    # ---------------------------------------------------------------------------------- pieces
    def _smpl_terms(self, rotmat, theta, gt_theta, w_smpl, terms: dict) -> None:
        """rotmat M x J x 3 x 3, theta / gt_theta M x 85, w_smpl M (bool) -> pose and shape terms."""
        J = rotmat.shape[-3]
        sel = w_smpl
        if self.pose_weight > 0:
            terms["loss_pose"] = self.pose_weight * pose_loss(
                rotmat[sel],
                gt_theta[sel, 3 : 3 + 3 * J],
                pred_pose=theta[sel, 3 : 3 + 3 * J],
                via_axis_angle=self.pose_via_axis_angle,
            )
        if self.shape_weight > 0:
            terms["loss_shape"] = self.shape_weight * shape_loss(theta[sel, 3 + 3 * J :], gt_theta[sel, 3 + 3 * J :])

    def _heatmap_term(self, pred: Mapping[str, torch.Tensor], gt_2d: torch.Tensor, terms: dict) -> None:
        if self.joint_heatmap_weight <= 0:
            return
        kp = pred.get("kp_2d_heatmap")
        if kp is None:
            raise ValueError(
                "joint heatmap loss: the predictions have no kp_2d_heatmap (the encoder needs "
                "MODEL.ENCODER.JOINT_HEATMAP and the model must be in training mode)"
            )
        terms["loss_joint_heatmap"] = self.joint_heatmap_weight * keypoint_2d_loss(
            kp.float().reshape(gt_2d.shape[:-1] + (2,)), gt_2d.float()
        )

    @staticmethod
    def _total(terms: dict[str, torch.Tensor]) -> LossResult:
        return LossResult(total=torch.stack(list(terms.values())).sum(), terms=terms)

    # ---------------------------------------------------------------------------------- public
    def video(
        self, pred: Mapping[str, torch.Tensor], target_2d: Mapping | None = None, target_3d: Mapping | None = None
    ) -> LossResult:
        """Loss of a video forward over ``concat(2D clips, 3D clips)`` along the batch axis.

        pred: predictions for N2 + N3 clips (N2 = target_2d's clips, first). 2D keypoints are fitted on
        all clips; 3D, pose, shape, norm and acceleration only on the N3 3D clips.
        """
        if target_2d is None and target_3d is None:
            raise ValueError("video loss: expected target_2d, target_3d or both")
        n_2d = target_2d["kp_2d"].shape[0] if target_2d is not None else 0
        gt_2d = [t["kp_2d"] for t in (target_2d, target_3d) if t is not None]
        gt_2d = gt_2d[0] if len(gt_2d) == 1 else torch.cat(gt_2d, dim=0)
        kp_2d = pred["kp_2d"].float()
        if kp_2d.shape[0] != gt_2d.shape[0]:
            raise ValueError(f"video loss: {kp_2d.shape[0]} predicted clips for {gt_2d.shape[0]} target clips")
        terms: dict[str, torch.Tensor] = {}
        if self.kp_2d_weight > 0:
            terms["loss_kp_2d"] = self.kp_2d_weight * keypoint_2d_loss(kp_2d, gt_2d.float())
        self._heatmap_term(pred, gt_2d, terms)
        if target_3d is not None:
            kp_3d = pred["kp_3d"][n_2d:].float()  # (N3, T, K, 3)
            gt_3d = target_3d["kp_3d"].float()
            theta = pred["theta"][n_2d:].float()
            N3, T = theta.shape[:2]
            if self.kp_3d_weight > 0:
                roots = {}
                if self.kp_3d_body_frame:
                    roots = {
                        "pred_root": pred["rotmat"][n_2d:, :, 0].float(),
                        "gt_root": axis_angle_to_rotmat(target_3d["theta"][..., 3:6].float()),
                    }
                terms["loss_kp_3d"] = self.kp_3d_weight * keypoint_3d_loss(kp_3d, gt_3d, **roots)
            if self.pose_weight > 0 or self.shape_weight > 0:
                rotmat = pred["rotmat"][n_2d:].float()
                self._smpl_terms(
                    rotmat.reshape(N3 * T, *rotmat.shape[2:]),
                    theta.reshape(N3 * T, -1),
                    target_3d["theta"].float().reshape(N3 * T, -1),
                    target_3d["w_smpl"].reshape(-1).bool(),
                    terms,
                )
            if self.norm_weight > 0:
                terms["loss_norm"] = self.norm_weight * norm_loss(theta.reshape(N3 * T, -1))
            if self.accel_weight > 0:
                terms["loss_accl"] = self.accel_weight * acceleration_loss(kp_3d, gt_3d)
        if not terms:
            terms["loss_kp_2d"] = kp_2d.sum() * 0.0
        return self._total(terms)

    def image(self, pred: Mapping[str, torch.Tensor], target: Mapping) -> LossResult:
        """Loss of an image forward (T = 1): pred N x 1 x ..., target without the T axis."""
        kp_2d = pred["kp_2d"].float().squeeze(1)
        theta = pred["theta"].float().squeeze(1)
        terms: dict[str, torch.Tensor] = {}
        if self.kp_2d_weight > 0:
            terms["loss_kp_2d"] = self.kp_2d_weight * keypoint_2d_loss(kp_2d, target["kp_2d"].float())
        self._heatmap_term(pred, target["kp_2d"], terms)
        if self.kp_3d_weight > 0 and target.get("kp_3d") is not None:
            terms["loss_kp_3d"] = self.kp_3d_weight * keypoint_3d_loss(
                pred["kp_3d"].float().squeeze(1), target["kp_3d"].float()
            )
        if self.pose_weight > 0 or self.shape_weight > 0:
            w_smpl = target["w_smpl"].reshape(-1).bool()
            if not self.mask_image_smpl:
                w_smpl = torch.ones_like(w_smpl)
            self._smpl_terms(pred["rotmat"].float().squeeze(1), theta, target["theta"].float(), w_smpl, terms)
        if self.norm_weight > 0:
            terms["loss_norm"] = self.norm_weight * norm_loss(theta)
        if not terms:
            terms["loss_kp_2d"] = kp_2d.sum() * 0.0
        return self._total(terms)

    @staticmethod
    def combine(
        video: LossResult | None, image: LossResult | None, *, video_frames: int, image_frames: int
    ) -> tuple[LossResult, float]:
        """``w_vid * video + w_img * image`` with ``w_vid = video_frames / (video_frames + image_frames)``
        and ``w_img = 1 - w_vid`` (the original's weighting). Returns (weighted result, w_vid)."""
        total_frames = video_frames + image_frames
        if total_frames <= 0 or (video is None and image is None):
            raise ValueError("combine: no video and no image loss")
        w_vid = video_frames / total_frames if video is not None else 0.0
        w_img = 1.0 - w_vid if image is not None else 0.0
        terms: dict[str, torch.Tensor] = {}
        total = None
        for part, w in ((video, w_vid), (image, w_img)):
            if part is None:
                continue
            total = part.total * w if total is None else total + part.total * w
            for k, v in part.terms.items():
                terms[k] = terms[k] + v * w if k in terms else v * w
        return LossResult(total=total, terms=terms), w_vid
