"""The annotations agree with the body model, the camera and the rendered pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from maed.body.geometry import axis_angle_to_rotmat
from maed.data.database import load_database


def _posed(body, db: dict, rows) -> tuple[np.ndarray, np.ndarray]:
    """(vertices, joints) in the camera frame from the stored pose, shape and trans."""
    n = len(rows)
    rot = axis_angle_to_rotmat(torch.from_numpy(db["pose"][rows]).reshape(n, -1, 3))
    with torch.no_grad():
        out = body(rot, torch.from_numpy(db["shape"][rows]))
    trans = db["trans"][rows][:, None]
    return out["verts"].numpy() + trans, out["joints"].numpy() + trans


def _project(points: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    fx, fy, cx, cy = np.moveaxis(intrinsics, -1, 0)
    return np.stack(
        [fx[..., None] * points[..., 0] / points[..., 2] + cx[..., None],
         fy[..., None] * points[..., 1] / points[..., 2] + cy[..., None]], axis=-1,
    )  # fmt: skip


def _raster(uv: np.ndarray, faces: np.ndarray, shape: tuple[int, int], scale: int = 16) -> np.ndarray:
    """The pixels whose centre (integer coordinates) a projected triangle covers, from triangles drawn
    one by one at ``scale`` x the resolution (so the fill's inclusive edges err by 1/scale pixel)."""
    hi = np.zeros((shape[0] * scale, shape[1] * scale), np.uint8)
    for tri in np.rint(uv[faces] * scale * 16).astype(np.int32):  # 4 fractional bits
        cv2.fillConvexPoly(hi, tri, 1, shift=4)
    return hi[::scale, ::scale].astype(bool)


@pytest.mark.parametrize("split", ["train", "test"])
def test_pose_shape_trans_reproduce_joints3d_and_projection_gives_joints2d(synth_run, cmu_kit, split):
    out, _ = synth_run
    db = load_database(out / f"synth_{split}_db.pt")
    rows = np.arange(len(db["img_name"]))
    _, joints = _posed(cmu_kit.body, db, rows)
    np.testing.assert_allclose(joints, db["joints3D"][..., :3], atol=1e-4)  # metres
    assert np.array_equal(db["joints3D"][..., 3], np.broadcast_to(cmu_kit.joint_mask, (len(rows), 49)))
    uv = _project(db["joints3D"][..., :3].astype(np.float64), db["intrinsics"].astype(np.float64))
    np.testing.assert_allclose(db["joints2D"][..., :2], uv, atol=1e-3)  # sub-pixel: the same pinhole camera
    W, H = 256, 192
    inside = (uv[..., 0] >= -0.5) & (uv[..., 0] < W - 0.5) & (uv[..., 1] >= -0.5) & (uv[..., 1] < H - 0.5)
    assert not (db["joints2D"][..., 2] > 0)[~inside].any()  # never visible outside the frame
    assert not (db["joints2D"][..., 2] > 0)[:, 42].any()  # nor where Anny has no joint
    root = db["joints3D"][:, 8, :3]  # the pelvis in front of the camera, y down: the head is above it
    assert (root[:, 2] > 1.0).all() and (db["joints3D"][:, 38, 1] < root[:, 1] - 0.3).all()


def test_boxes_joints_and_meshes_match_the_rendered_people(cmu_kit, tmp_path):
    """Render a sequence with a recording renderer: each person's rendered silhouette lies in its box and
    is the projection of the mesh the database describes; hidden joints are behind another person."""
    from maed.synth.render import FrameRenderer
    from maed.synth.sequence import FIELDS, PEOPLE_PROBS, Settings, render_sequence, sequence_rng

    # a sequence with several people, so that they can hide each other
    index = next(i for i in range(50) if sequence_rng(0, i).choice(len(PEOPLE_PROBS), p=PEOPLE_PROBS) == 2)
    settings = Settings(width=256, height=192, frames=2)
    renderer = FrameRenderer(settings.width, settings.height, cmu_kit.faces, cmu_kit.num_vertices)
    frames = []
    real = renderer.render
    renderer.render = lambda **kwargs: frames.append(real(**kwargs)) or frames[-1]
    try:
        rows, meta = render_sequence(cmu_kit, renderer, settings, seed=0, index=index, split="train", out_dir=tmp_path)
    finally:
        renderer.close()
    people, T = len(meta["people"]), settings.frames
    assert people == 3 and set(rows) == set(FIELDS)
    faces = cmu_kit.faces
    for t, frame in enumerate(frames):
        sel = [k * T + t for k in range(people)]
        verts, joints = _posed(cmu_kit.body, rows, sel)
        covered = frame.person >= 0
        fills = []
        for k, row in enumerate(sel):
            uv = _project(verts[k], rows["intrinsics"][row].astype(np.float64))
            fills.append(_raster(uv, faces, covered.shape))
            silhouette = frame.person == k
            ys, xs = np.nonzero(silhouette)
            cx, cy, w, h = rows["bbox"][row]
            assert w == h and len(xs) > 50
            assert (
                xs.min() >= cx - w / 2 and xs.max() <= cx + w / 2 and ys.min() >= cy - h / 2 and ys.max() <= cy + h / 2
            )
            assert not (silhouette & ~fills[k]).any()  # every rendered pixel of k projects from k's mesh
            vis = rows["joints2D"][row, :, 2] > 0
            px = np.clip(np.rint(rows["joints2D"][row, :, :2]).astype(int), 0, [255, 191])
            cover, depth = frame.person[px[:, 1], px[:, 0]], frame.depth[px[:, 1], px[:, 0]]
            in_front = (cover >= 0) & (cover != k) & (depth < rows["joints3D"][row, :, 2])
            assert not (vis & in_front).any()  # a visible joint has no one in front of it
            in_frame = (rows["joints2D"][row, :, :2] >= -0.5).all(1) & (rows["joints2D"][row, :, 0] < 255.5)
            in_frame &= rows["joints2D"][row, :, 1] < 191.5
            hidden = ~vis & in_frame & cmu_kit.joint_mask
            assert (in_front[hidden]).all()  # and a hidden one has
        union = np.any(fills, axis=0)
        assert (union & ~covered).sum() <= 0.03 * union.sum()  # and the meshes' projection is rendered
        c_fill, c_render = np.argwhere(union).mean(0), np.argwhere(covered).mean(0)
        assert np.abs(c_fill - c_render).max() < 0.15  # on the same pixel grid (no half-pixel shift)
        on_disk = cv2.imread(str(tmp_path / rows["img_name"][sel[0]]))[..., ::-1]
        assert np.abs(on_disk.astype(float) - frame.image).mean() < 4.0  # the JPEG is that frame
