"""Video and image datasets: chunking, stride, padding, valid masks, sampling, fields, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maed.data.datasets import (
    ImageDataset,
    VideoDataset,
    reflect_indices,
    sample_frames,
    split_into_chunks,
    stride_from_overlap,
    valid_mask,
)
from maed.data.transforms import apply_affine_2d, build_transforms, crop_affine
from maed.errors import ConfigError, DataError
from maed.testing.datasets import write_synthetic_dataset


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_synthetic_dataset(
        tmp_path_factory.mktemp("synth"), num_videos=2, frames_per_video=12, image_size=(320, 240), seed=0
    )


def test_reflect_indices_match_numpy_pad():
    for n in (1, 2, 3, 5, 9):
        for total in (n, n + 1, 2 * n + 3, 5 * n + 7):
            expected = np.pad(np.arange(n), (0, total - n), mode="reflect") if n > 1 else np.zeros(total)
            np.testing.assert_array_equal(reflect_indices(n, total), expected)


def test_stride_rule():
    assert stride_from_overlap(128, 0.5) == 64
    assert stride_from_overlap(128, 0.0) == 128
    assert stride_from_overlap(128, 8) == 8  # 3DPW-train
    assert stride_from_overlap(128, 0.999) == 1


def test_chunks_against_hand_computed_indices():
    names = np.array(["a"] * 5 + ["b"] * 10)
    chunks, real = split_into_chunks(names, sample_pool=4, stride=2)
    # a (rows 0-4) padded to 8 by reflection: 0 1 2 3 4 3 2 1; windows start at 0, 2, 4
    # b (rows 5-14) padded to 12: 5..14 13 12; windows start at 0, 2, 4, 6, 8
    expected = [
        [0, 1, 2, 3],
        [2, 3, 4, 3],
        [4, 3, 2, 1],
        [5, 6, 7, 8],
        [7, 8, 9, 10],
        [9, 10, 11, 12],
        [11, 12, 13, 14],
        [13, 14, 13, 12],
    ]
    np.testing.assert_array_equal(chunks, expected)
    expected_real = [
        [1, 1, 1, 1],
        [1, 1, 1, 0],
        [1, 0, 0, 0],
        [1, 1, 1, 1],
        [1, 1, 1, 1],
        [1, 1, 1, 1],
        [1, 1, 1, 1],
        [1, 1, 0, 0],
    ]
    np.testing.assert_array_equal(real, np.array(expected_real, bool))
    # without padding, short videos and tails are dropped
    chunks, _ = split_into_chunks(names, sample_pool=6, stride=3, pad=False)
    np.testing.assert_array_equal(chunks, [[5, 6, 7, 8, 9, 10], [8, 9, 10, 11, 12, 13]])


def test_valid_masks_original_and_strict():
    chunks, real = split_into_chunks(np.array(["v"] * 3), sample_pool=8, stride=8)
    np.testing.assert_array_equal(chunks[0], [0, 1, 2, 1, 0, 1, 2, 1])
    # the original counts rows 1 and 2 twice (ORIGINAL.md §9); strict keeps only the real frames
    np.testing.assert_array_equal(valid_mask(chunks[0], real[0], "original"), [1, 1, 1, 0, 0, 1, 1, 0])
    np.testing.assert_array_equal(valid_mask(chunks[0], real[0], "strict"), [1, 1, 1, 0, 0, 0, 0, 0])
    # a long video's last window: the reflected rows are invalid under both rules
    chunks, real = split_into_chunks(np.array(["v"] * 10), sample_pool=8, stride=8)
    np.testing.assert_array_equal(chunks[1], [8, 9, 8, 7, 6, 5, 4, 3])
    for mode in ("original", "strict"):
        np.testing.assert_array_equal(valid_mask(chunks[1], real[1], mode), [1, 1, 0, 0, 0, 0, 0, 0])
    with pytest.raises(ConfigError):
        valid_mask(chunks[1], real[1], "lenient")


def test_frame_sampling_modes():
    chunk = np.arange(100, 228)  # a 128-frame window
    np.testing.assert_array_equal(sample_frames(chunk, 16, rng=np.random.default_rng(0)), np.arange(0, 128, 8))
    starts = set()
    for seed in range(40):
        pos = sample_frames(chunk, 16, random_start=True, rng=np.random.default_rng(seed))
        assert len(pos) == 16 and (np.diff(pos) == 8).all() and 0 <= pos[0] < 8
        starts.add(int(pos[0]))
    assert len(starts) > 4
    for seed in range(10):
        pos = sample_frames(chunk, 16, random_sample=True, rng=np.random.default_rng(seed))
        assert ((pos // 8) == np.arange(16)).all()
    assert len(sample_frames(chunk, 128, rng=np.random.default_rng(0))) == 128


def test_video_dataset_training_sample(synth):
    ds = VideoDataset(
        synth.db_path,
        dataset_root=synth.dataset_root,
        seqlen=4,
        sample_pool=8,
        overlap=0.5,
        random_start=True,
        random_sample=False,
        transforms=build_transforms(
            "video_3d",
            size_jitter=0.0,
            rot_jitter=0.0,
            color_jitter=0.3,
            erase_prob=0.3,
            erase_part=0.5,
            flip_prob=0.5,
            random_crop_p=0.2,
            random_crop_size=0.6,
        ),
    )
    # two videos of 12 frames padded to 16, stride 4: windows at 0, 4, 8 each
    assert len(ds) == 6 and ds.stride == 4
    torch.manual_seed(0)
    s = ds[3]
    assert s["images"].shape == (4, 3, 224, 224) and s["images"].dtype == torch.float32
    assert s["kp_2d"].shape == (4, 49, 3) and s["kp_3d"].shape == (4, 49, 4) and s["theta"].shape == (4, 85)
    assert s["w_smpl"].tolist() == [1.0] * 4 and s["w_3d"].tolist() == [1.0] * 4
    assert s["index"].tolist() == [3]
    np.testing.assert_array_equal(s["theta"][:, :3].numpy(), np.tile([1.0, 0.0, 0.0], (4, 1)))
    assert "valid" not in s and "paths" not in s
    visible = s["kp_2d"][..., 2] > 0
    assert s["kp_2d"][..., :2][visible].abs().max() <= 1.5


def test_video_dataset_eval_fields_and_exact_keypoints(synth):
    ds = VideoDataset(
        synth.db, dataset_root=synth.dataset_root, seqlen=None, sample_pool=8, overlap=0.0, is_train=False
    )
    assert len(ds) == 4  # 12 frames -> 16 -> 2 windows, per video
    s = ds[1]  # rows 8..11 then reflected 10, 9, 8, 7
    rows = np.array([8, 9, 10, 11, 10, 9, 8, 7])
    assert s["images"].shape == (8, 3, 224, 224)
    np.testing.assert_array_equal(s["valid"].numpy(), [1, 1, 1, 1, 0, 0, 0, 0])
    np.testing.assert_allclose(s["bbox"].numpy(), synth.db["bbox"][rows])
    assert s["instance_id"] == [f"synth_vid0/{r}" for r in rows]
    assert s["paths"][0] == str(synth.dataset_root / synth.db["img_name"][8])
    # keypoints: the crop's affine of the database's box, then 2x/224 - 1
    A = crop_affine(synth.db["bbox"][9])
    kp = apply_affine_2d(synth.db["joints2D"][9], A)
    np.testing.assert_allclose(s["kp_2d"][1, :, :2].numpy(), 2 * kp[:, :2] / 224 - 1, atol=1e-5)
    np.testing.assert_allclose(s["theta"][1, 3:75].numpy(), synth.db["pose"][9], atol=1e-6)
    np.testing.assert_allclose(s["theta"][1, 75:].numpy(), synth.db["shape"][9], atol=1e-6)
    strict = VideoDataset(
        synth.db,
        dataset_root=synth.dataset_root,
        seqlen=None,
        sample_pool=8,
        overlap=0.0,
        is_train=False,
        valid_mode="strict",
    )
    assert strict[1]["valid"].tolist() == [True] * 4 + [False] * 4


def test_video_dataset_without_pose_or_3d(tmp_path):
    d = write_synthetic_dataset(
        tmp_path, num_videos=1, frames_per_video=4, image_size=(160, 120), with_pose=False, with_3d=False
    )
    s = VideoDataset(d.db, dataset_root=d.dataset_root, seqlen=2, sample_pool=4, overlap=0.0)[0]
    assert s["w_smpl"].tolist() == [0.0, 0.0] and s["w_3d"].tolist() == [0.0, 0.0]
    assert s["theta"][:, 3:].abs().max() == 0 and s["kp_3d"].abs().max() == 0


def test_missing_image_names_the_file(synth, tmp_path):
    db = dict(synth.db)
    db["img_name"] = db["img_name"].astype(object)
    db["img_name"][0] = "synth_vid0/does_not_exist.jpg"
    ds = VideoDataset(db, dataset_root=synth.dataset_root, seqlen=4, sample_pool=4, overlap=0.0)
    with pytest.raises(DataError, match="does_not_exist.jpg"):
        ds[0]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    db["img_name"][0] = str(bad)
    with pytest.raises(DataError, match="bad.jpg"):
        VideoDataset(db, dataset_root=synth.dataset_root, seqlen=4, sample_pool=4, overlap=0.0)[0]


def test_bad_database_fields(synth):
    db = dict(synth.db)
    db["joints2D"] = db["joints2D"][:, :25]
    with pytest.raises(DataError, match="joints2D"):
        VideoDataset(db, dataset_root=synth.dataset_root)
    with pytest.raises(ConfigError):
        VideoDataset(synth.db, dataset_root=synth.dataset_root, random_start=True, random_sample=True)


def test_image_dataset_rotmat_pose_and_frame_step(synth):
    from maed.body.geometry import axis_angle_to_rotmat

    db = dict(synth.db)
    aa = db["pose"].reshape(-1, 24, 3)
    db["pose"] = axis_angle_to_rotmat(torch.from_numpy(aa).double()).numpy()  # n x 24 x 3 x 3
    ds = ImageDataset(db, dataset_root=synth.dataset_root, is_train=False)
    s = ds[5]
    assert s["images"].shape == (3, 224, 224) and s["kp_2d"].shape == (49, 3) and s["theta"].shape == (85,)
    np.testing.assert_allclose(s["theta"][3:75].numpy(), synth.db["pose"][5], atol=1e-5)
    assert s["w_smpl"].item() == 1.0 and s["bbox"].shape == (4,)
    assert s["instance_id"] == "synth_vid0/5"
    every5 = ImageDataset(synth.db, dataset_root=synth.dataset_root, frame_step=5)
    assert len(every5) == 5  # rows 0, 5, 10, 15, 20 of 24
    assert every5.rows.tolist() == [0, 5, 10, 15, 20]


def test_different_workers_draw_different_clips(synth):
    ds = VideoDataset(
        synth.db,
        dataset_root=synth.dataset_root,
        seqlen=2,
        sample_pool=8,
        random_start=True,
        random_sample=False,
        transforms=build_transforms("video_2d", flip_prob=0.5),
    )
    torch.manual_seed(1)
    a = ds[0]["kp_2d"]
    torch.manual_seed(1)
    b = ds[0]["kp_2d"]
    outs = {tuple(ds[0]["kp_2d"][0, 27, :2].tolist()) for _ in range(12)}
    assert torch.equal(a, b)  # reproducible under torch.manual_seed
    assert len(outs) > 1  # and random otherwise


def test_frame_names_in_instance_ids(synth):
    """MPI-INF-3DHP databases (ours and the authors') name frames ('frame_000001'), not number them."""
    db = dict(synth.db)
    db["frame_id"] = np.array([f"frame_{i + 1:06d}" for i in range(len(db["img_name"]))])
    s = VideoDataset(db, dataset_root=synth.dataset_root, seqlen=None, sample_pool=4, overlap=0.0, is_train=False)[1]
    assert s["instance_id"] == [f"synth_vid0/frame_{r + 1:06d}" for r in range(4, 8)]
    images = ImageDataset(db, dataset_root=synth.dataset_root, is_train=False)
    assert images[2]["instance_id"] == "synth_vid0/frame_000003"
    db["frame_id"] = synth.db["frame_id"].astype(np.float64)  # numbers stay numbers
    assert ImageDataset(db, dataset_root=synth.dataset_root, is_train=False)[2]["instance_id"] == "synth_vid0/2"


@pytest.mark.parametrize("baked", ["data/synth/", "/cluster/user/maed/data/synth/"])
def test_authors_baked_in_image_paths_resolve_under_the_root(synth, baked):
    """The authors' files store 'data/<dataset>/...' (or an absolute path); loading them with a dataset root
    drops that part, once per database."""
    from maed.data.database import find_image_prefix

    db = dict(synth.db)
    db["img_name"] = np.array([baked + n for n in synth.db["img_name"]])
    assert find_image_prefix(db["img_name"], synth.dataset_root) == baked
    assert find_image_prefix(synth.db["img_name"], synth.dataset_root) == ""  # ours: relative already
    ours = VideoDataset(
        synth.db, dataset_root=synth.dataset_root, seqlen=None, sample_pool=8, overlap=0.0, is_train=False
    )
    authors = VideoDataset(db, dataset_root=synth.dataset_root, seqlen=None, sample_pool=8, overlap=0.0, is_train=False)
    a, b = ours[0], authors[0]
    assert b["paths"] == a["paths"] and b["paths"][3] == str(synth.dataset_root / synth.db["img_name"][3])
    torch.testing.assert_close(b["images"], a["images"], atol=0, rtol=0)
    img = ImageDataset(db, dataset_root=synth.dataset_root, is_train=False)[5]
    assert img["paths"] == str(synth.dataset_root / synth.db["img_name"][5])


def test_unresolvable_names_still_name_the_missing_file(synth, tmp_path):
    db = dict(synth.db)
    db["img_name"] = np.array(["data/elsewhere/" + n for n in synth.db["img_name"]])
    ds = VideoDataset(db, dataset_root=tmp_path, seqlen=2, sample_pool=4, overlap=0.0)
    with pytest.raises(DataError, match="image not found: .*data/elsewhere/synth_vid0/0000"):
        ds[0]
