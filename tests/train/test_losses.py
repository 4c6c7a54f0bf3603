"""Loss terms against hand-computed values, the original's formulas, and the ORIGINAL.md §9 fixes."""

from __future__ import annotations

import math

import pytest
import torch

from maed.body.geometry import axis_angle_to_rotmat, batch_rodrigues, rotmat_to_axis_angle
from maed.train.losses import (
    MAEDLoss,
    acceleration_loss,
    keypoint_2d_loss,
    keypoint_3d_loss,
    norm_loss,
    pose_loss,
    shape_loss,
)

K = 49


def _rot_z(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def test_keypoint_2d_counts_zero_confidence_in_denominator():
    pred = torch.zeros(1, 2, 2)  # 1 frame, 2 joints
    gt = torch.tensor([[[1.0, 2.0, 1.0], [3.0, 4.0, 0.0]]])  # the second joint has no confidence
    # (1^2 + 2^2) * 1 + (9 + 16) * 0 over 4 elements
    assert keypoint_2d_loss(pred, gt).item() == pytest.approx(5.0 / 4.0)


def test_keypoint_3d_is_pelvis_centred_and_hand_computed():
    g = torch.Generator().manual_seed(0)
    gt = torch.zeros(2, K, 4)
    gt[..., :3] = torch.randn(2, K, 3, generator=g)
    gt[:, 25:39, 3] = 1.0
    pred = gt[..., :3] + 0.1 * torch.randn(2, K, 3, generator=g)
    loss = keypoint_3d_loss(pred, gt)
    # a translation of the prediction (or of the ground truth) changes nothing
    assert keypoint_3d_loss(pred + torch.tensor([0.3, -2.0, 5.0]), gt).item() == pytest.approx(loss.item(), rel=1e-5)
    # by hand: centre each on the mean of joints 27 and 28, conf-weighted squared error over 2 x 49 x 3
    pc = pred - 0.5 * (pred[:, 27:28] + pred[:, 28:29])
    gc = gt[..., :3] - 0.5 * (gt[:, 27:28, :3] + gt[:, 28:29, :3])
    expected = (gt[..., 3:] * (pc - gc) ** 2).sum() / (2 * K * 3)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_keypoint_3d_in_the_body_frame_scores_the_articulation_alone():
    g = torch.Generator().manual_seed(1)
    gt = torch.zeros(3, K, 4)
    gt[..., :3] = torch.randn(3, K, 3, generator=g)
    gt[..., 3] = 1.0
    gt_root = axis_angle_to_rotmat(torch.randn(3, 3, generator=g))
    turn = axis_angle_to_rotmat(torch.randn(3, 3, generator=g))  # a different facing, the same articulation
    pred = gt[..., :3] @ turn.transpose(-1, -2) + 0.7
    pred_root = turn @ gt_root
    assert keypoint_3d_loss(pred, gt).item() > 0.1  # in the camera frame the facing counts
    assert keypoint_3d_loss(pred, gt, pred_root=pred_root, gt_root=gt_root).item() < 1e-10
    # a moved joint (not a hip) counts by its displacement, whatever the facing: |v|^2 over K x 3 elements
    bent = pred.clone()
    bent[:, 30] += torch.tensor([0.2, 0.0, 0.0])
    body = keypoint_3d_loss(bent, gt, pred_root=pred_root, gt_root=gt_root).item()
    assert body == pytest.approx(0.2**2 / (K * 3), rel=1e-4)
    with pytest.raises(ValueError, match="both root rotations"):
        keypoint_3d_loss(pred, gt, pred_root=pred_root)


def test_pose_loss_uses_rotation_matrices_directly():
    pred = _rot_z(math.pi / 2).expand(1, 24, 3, 3).clone()  # every joint rotated 90 degrees about z
    gt = torch.zeros(1, 72)  # identity
    # R - I = [[-1, -1, 0], [1, -1, 0], [0, 0, 0]]: squared sum 4 over 9 elements, for every joint
    assert pose_loss(pred, gt).item() == pytest.approx(4.0 / 9.0, abs=1e-6)
    # the original route (rotmat -> axis-angle -> quaternion Rodrigues) agrees away from 180 degrees
    aa = rotmat_to_axis_angle(pred).reshape(1, 72)
    orig = pose_loss(pred, gt, pred_pose=aa, via_axis_angle=True)
    assert orig.item() == pytest.approx(4.0 / 9.0, abs=1e-5)


def test_pose_loss_direct_route_is_exact_near_180_degrees():
    angle = math.pi - 1e-4
    aa_gt = torch.tensor([0.0, 0.0, angle]).repeat(24).reshape(1, 72)
    pred = axis_angle_to_rotmat(aa_gt.reshape(24, 3)).reshape(1, 24, 3, 3)
    assert pose_loss(pred, aa_gt).item() == pytest.approx(0.0, abs=1e-10)


def test_empty_selection_gives_zero_not_nan():
    rot = torch.eye(3).expand(0, 24, 3, 3)
    assert pose_loss(rot, torch.zeros(0, 72)).item() == 0.0
    assert shape_loss(torch.zeros(0, 10), torch.zeros(0, 10)).item() == 0.0


def test_norm_loss_hand_computed():
    theta = torch.zeros(2, 85)
    theta[:, :3] = 100.0  # the camera does not count
    theta[0, 3] = 3.0
    theta[1, 80] = 4.0
    assert norm_loss(theta).item() == pytest.approx(5.0 / 2.0)


def test_acceleration_uses_neighbour_confidences():
    # one joint, 4 frames; the prediction has a kink at frame 2, the ground truth is static
    pred = torch.zeros(1, 4, 1, 3)
    pred[0, 2, 0, 0] = 1.0
    gt = torch.zeros(1, 4, 1, 4)
    gt[..., 3] = 1.0
    # triples (0,1,2) and (1,2,3) have accelerations x = 1 and -2 -> (1 + 4) / (2 triples * 3 coords)
    assert acceleration_loss(pred, gt).item() == pytest.approx(5.0 / 6.0)
    # frame 0 without confidence masks the first triple only; the original (conf[t+2]^4) would keep it
    gt[0, 0, 0, 3] = 0.0
    assert acceleration_loss(pred, gt).item() == pytest.approx(4.0 / 6.0)
    assert acceleration_loss(pred[:, :2], gt[:, :2]).item() == 0.0  # fewer than 3 frames


def _batch(n: int, t: int | None, *, g: torch.Generator, smpl: bool = True, with_3d: bool = True) -> dict:
    lead = (n,) if t is None else (n, t)
    kp_2d = torch.rand(*lead, K, 3, generator=g)
    kp_2d[..., 2] = (kp_2d[..., 2] > 0.3).float()
    kp_3d = torch.randn(*lead, K, 4, generator=g) * 0.3
    kp_3d[..., 3] = float(with_3d)
    theta = torch.cat([torch.ones(*lead, 1), torch.zeros(*lead, 2), 0.3 * torch.randn(*lead, 82, generator=g)], -1)
    return {"kp_2d": kp_2d, "kp_3d": kp_3d, "theta": theta, "w_smpl": torch.full(lead, float(smpl))}


def _pred(n: int, t: int, *, g: torch.Generator) -> dict:
    aa = 0.5 * torch.randn(n, t, 24, 3, generator=g)
    rotmat = axis_angle_to_rotmat(aa)
    theta = torch.cat([torch.rand(n, t, 3, generator=g), aa.reshape(n, t, 72), torch.randn(n, t, 10, generator=g)], -1)
    return {
        "kp_2d": torch.rand(n, t, K, 2, generator=g),
        "kp_3d": torch.randn(n, t, K, 3, generator=g) * 0.3,
        "theta": theta,
        "rotmat": rotmat,
    }


def _original_video_loss(pred: dict, t2d: dict | None, t3d: dict, w: dict) -> dict:
    """The original LossVideo written out (with its batch_rodrigues pose route), for comparison."""
    n2 = t2d["kp_2d"].shape[0] if t2d else 0
    gt2 = torch.cat([t2d["kp_2d"], t3d["kp_2d"]]) if t2d else t3d["kp_2d"]
    p2 = pred["kp_2d"].reshape(-1, K, 2)
    gt2 = gt2.reshape(-1, K, 3)
    out = {"loss_kp_2d": w["kp2d"] * (gt2[..., 2:] * (p2 - gt2[..., :2]) ** 2).mean()}
    p3 = pred["kp_3d"][n2:].reshape(-1, K, 3)
    g3 = t3d["kp_3d"].reshape(-1, K, 4)
    conf, g3 = g3[..., 3:], g3[..., :3]
    g3 = g3 - (g3[:, 27] + g3[:, 28])[:, None] / 2
    p3 = p3 - (p3[:, 27] + p3[:, 28])[:, None] / 2
    out["loss_kp_3d"] = w["kp3d"] * (conf * (p3 - g3) ** 2).mean()
    th = pred["theta"][n2:].reshape(-1, 85)
    gth = t3d["theta"].reshape(-1, 85)
    sel = t3d["w_smpl"].reshape(-1).bool()
    pr = batch_rodrigues(th[sel, 3:75].reshape(-1, 3)).reshape(-1, 24, 3, 3)
    gr = batch_rodrigues(gth[sel, 3:75].reshape(-1, 3)).reshape(-1, 24, 3, 3)
    out["loss_pose"] = w["pose"] * ((pr - gr) ** 2).mean()
    out["loss_shape"] = w["shape"] * ((th[sel, 75:] - gth[sel, 75:]) ** 2).mean()
    out["loss_norm"] = w["norm"] * torch.norm(th[:, 3:], p=2, dim=(0, 1)) / th.shape[0]
    return out


#: the paper's weights (the stage presets); the schema's defaults are the original config.py's
PAPER = dict(kp_2d_weight=300.0, kp_3d_weight=600.0, pose_weight=60.0, shape_weight=0.06, norm_weight=1.0)


def test_video_loss_matches_the_original_formulas():
    g = torch.Generator().manual_seed(1)
    w = {"kp2d": 300.0, "kp3d": 600.0, "pose": 60.0, "shape": 0.06, "norm": 1.0}
    crit = MAEDLoss(**PAPER, pose_via_axis_angle=True)
    t2d, t3d = _batch(2, 3, g=g, smpl=False, with_3d=False), _batch(3, 3, g=g)
    pred = _pred(5, 3, g=g)
    res = crit.video(pred, t2d, t3d)
    ref = _original_video_loss(pred, t2d, t3d, w)
    assert set(res.terms) == set(ref)
    for k, v in ref.items():
        assert res.terms[k].item() == pytest.approx(v.item(), rel=1e-5), k
    assert res.total.item() == pytest.approx(sum(v.item() for v in ref.values()), rel=1e-5)


def test_video_3d_terms_use_only_the_3d_clips():
    g = torch.Generator().manual_seed(2)
    crit = MAEDLoss()
    t2d, t3d = _batch(2, 3, g=g, smpl=False, with_3d=False), _batch(1, 3, g=g)
    pred = _pred(3, 3, g=g)
    base = crit.video(pred, t2d, t3d)
    changed = {k: v.clone() for k, v in pred.items()}
    changed["kp_3d"][:2] += 5.0  # the 2D clips' 3D joints
    changed["theta"][:2] += 5.0
    changed["rotmat"][:2] = torch.eye(3)
    other = crit.video(changed, t2d, t3d)
    for k in ("loss_kp_3d", "loss_pose", "loss_shape", "loss_norm"):
        assert other.terms[k].item() == base.terms[k].item(), k
    changed["kp_2d"][:2] += 1.0  # but the 2D loss sees every clip
    assert crit.video(changed, t2d, t3d).terms["loss_kp_2d"].item() != base.terms["loss_kp_2d"].item()


def test_video_with_only_2d_clips_does_not_crash():
    g = torch.Generator().manual_seed(3)
    res = MAEDLoss().video(_pred(2, 3, g=g), _batch(2, 3, g=g, smpl=False, with_3d=False), None)
    assert set(res.terms) == {"loss_kp_2d"} and torch.isfinite(res.total)


def test_pose_mask_with_no_smpl_frames_gives_zero():
    g = torch.Generator().manual_seed(4)
    res = MAEDLoss().video(_pred(1, 3, g=g), None, _batch(1, 3, g=g, smpl=False))
    assert res.terms["loss_pose"].item() == 0.0 and res.terms["loss_shape"].item() == 0.0


def test_image_loss_masks_smpl_by_default_and_original_does_not():
    g = torch.Generator().manual_seed(5)
    pred = _pred(3, 1, g=g)
    target = _batch(3, None, g=g, smpl=False)
    target["w_smpl"][0] = 1.0
    masked = MAEDLoss(**PAPER).image(pred, target)
    original = MAEDLoss(**PAPER, mask_image_smpl=False).image(pred, target)
    only_first = pose_loss(pred["rotmat"][:1, 0], target["theta"][:1, 3:75])
    assert masked.terms["loss_pose"].item() == pytest.approx(60.0 * only_first.item(), rel=1e-6)
    all_three = pose_loss(pred["rotmat"][:, 0], target["theta"][:, 3:75])
    assert original.terms["loss_pose"].item() == pytest.approx(60.0 * all_three.item(), rel=1e-6)


def test_image_without_kp_3d_skips_the_3d_term():
    g = torch.Generator().manual_seed(6)
    target = _batch(2, None, g=g)
    del target["kp_3d"]
    res = MAEDLoss().image(_pred(2, 1, g=g), target)
    assert "loss_kp_3d" not in res.terms and torch.isfinite(res.total)


def test_combine_weights_by_frame_counts():
    vid = MAEDLoss._total({"loss_kp_2d": torch.tensor(2.0), "loss_kp_3d": torch.tensor(1.0)})
    img = MAEDLoss._total({"loss_kp_2d": torch.tensor(10.0), "loss_norm": torch.tensor(4.0)})
    res, w_vid = MAEDLoss.combine(vid, img, video_frames=112, image_frames=7)
    assert w_vid == pytest.approx(112 / 119)
    assert res.total.item() == pytest.approx(3.0 * 112 / 119 + 14.0 * 7 / 119)
    assert res.terms["loss_kp_2d"].item() == pytest.approx(2.0 * 112 / 119 + 10.0 * 7 / 119)
    assert res.terms["loss_norm"].item() == pytest.approx(4.0 * 7 / 119)
    only_img, w = MAEDLoss.combine(None, img, video_frames=0, image_frames=7)
    assert w == 0.0 and only_img.total.item() == pytest.approx(14.0)


def test_from_config_reads_the_loss_section():
    from maed.config import load_config

    crit = MAEDLoss.from_config(load_config("stage2").LOSS)
    assert (crit.kp_2d_weight, crit.kp_3d_weight, crit.pose_weight, crit.shape_weight, crit.norm_weight) == (
        300.0,
        600.0,
        60.0,
        0.06,
        1.0,
    )
    assert crit.accel_weight == 0.0 and not crit.pose_via_axis_angle and crit.mask_image_smpl


def test_non_finite_weight_is_a_config_error():
    from maed.config import load_config
    from maed.errors import ConfigError

    with pytest.raises(ConfigError, match="LOSS.KP_2D_W=nan"):
        MAEDLoss.from_config(load_config("stage2", ["LOSS.KP_2D_W=nan"]).LOSS)


def test_joint_heatmap_term_scores_the_heatmap_joints_like_kp_2d():
    g = torch.Generator().manual_seed(3)
    pred = _pred(2, 4, g=g)
    pred["kp_2d_heatmap"] = torch.rand(2, 4, K, 2, generator=g)
    t3d = _batch(2, 4, g=g)
    crit = MAEDLoss(joint_heatmap_weight=7.0)
    res = crit.video(pred, target_3d=t3d)
    want = 7.0 * keypoint_2d_loss(pred["kp_2d_heatmap"], t3d["kp_2d"])
    torch.testing.assert_close(res.terms["loss_joint_heatmap"], want)
    assert "loss_joint_heatmap" not in MAEDLoss().video(pred, target_3d=t3d).terms  # off by default
    img = {k: v[:, 0] for k, v in t3d.items()}
    one = {k: v[:, :1] for k, v in pred.items()}
    torch.testing.assert_close(
        crit.image(one, img).terms["loss_joint_heatmap"],
        7.0 * keypoint_2d_loss(one["kp_2d_heatmap"][:, 0], img["kp_2d"]),
    )
    del pred["kp_2d_heatmap"]
    with pytest.raises(ValueError, match="JOINT_HEATMAP"):
        crit.video(pred, target_3d=t3d)
