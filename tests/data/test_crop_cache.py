"""Crop cache: agreement with full-frame loading, resuming, staleness, coverage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from maed.data.crop_cache import CropCache, build_crop_cache, cache_margin, default_crop_cache_dir
from maed.data.datasets import ImageDataset, VideoDataset
from maed.data.transforms import build_transforms
from maed.errors import DataError
from maed.testing.datasets import write_synthetic_dataset


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_synthetic_dataset(
        tmp_path_factory.mktemp("synth"), num_videos=2, frames_per_video=8, image_size=(640, 360), seed=2
    )


@pytest.fixture(scope="module")
def cache(synth):
    return build_crop_cache(synth.db_path, synth.dataset_root, size=256, progress=False, num_workers=2)


def test_cache_layout(synth, cache):
    assert cache == default_crop_cache_dir(synth.db_path)
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["rows"] == 16 and meta["size"] == 256
    assert meta["margin"] == pytest.approx(1.3 * 1.05)
    assert len(list((cache / "frames").rglob("*.jpg"))) == 16
    assert not list(cache.rglob("*.tmp"))
    c = CropCache(cache)
    assert c.read(3).shape == (256, 256, 3)
    # the cached crop's centre is the box centre
    np.testing.assert_allclose(c.map_bbox(np.array([3]), synth.db["bbox"][3:4])[0, :2], [128, 128])


@pytest.mark.parametrize("kind", ["eval", "video_3d"])
def test_cache_matches_full_frames(synth, cache, kind):
    tf = build_transforms(
        kind,
        size_jitter=0.0,
        rot_jitter=0.0,  # the cache was built for no size or rotation jitter
        color_jitter=0.3,
        erase_prob=0.5,
        erase_part=0.5,
        flip_prob=0.5,
        random_crop_p=0.5,
        random_crop_size=0.6,
    )
    kw = dict(
        dataset_root=synth.dataset_root,
        seqlen=4,
        sample_pool=8,
        overlap=0.5,
        random_start=True,
        random_sample=False,
        transforms=tf,
        is_train=False,
    )
    full = VideoDataset(synth.db_path, **kw)
    cached = VideoDataset(synth.db_path, crop_cache_dir=cache, **kw)
    assert cached.uses_crop_cache and not full.uses_crop_cache
    for index in range(len(full)):
        torch.manual_seed(index)
        a = full[index]
        torch.manual_seed(index)
        b = cached[index]
        torch.testing.assert_close(a["kp_2d"], b["kp_2d"], atol=1e-4, rtol=0)
        torch.testing.assert_close(a["theta"], b["theta"])
        torch.testing.assert_close(a["bbox"], b["bbox"])  # still the frame's box
        assert a["paths"] == b["paths"]
        # pixels differ by one extra resampling and a JPEG round trip (normalised units: one grey level is
        # about 0.017); the full-frame crop of a box moved by 2 px differs about 3 times more
        assert _mean_diff(a["images"], b["images"]) < 0.1
        assert _corr(a["images"], b["images"]) > 0.99


def _mean_diff(x, y):
    return (x - y).abs().mean().item()


def _corr(x, y):
    return torch.corrcoef(torch.stack([x.flatten(), y.flatten()]))[0, 1].item()


def test_agreement_threshold_is_discriminative(synth, cache):
    db_moved = dict(synth.db)
    db_moved["bbox"] = db_moved["bbox"] + np.array([2.0, 0.0, 0.0, 0.0], np.float32)
    kw = dict(dataset_root=synth.dataset_root, seqlen=4, sample_pool=8, random_sample=False)
    full = VideoDataset(synth.db, **kw)[0]["images"]
    cached = VideoDataset(synth.db, crop_cache_dir=cache, **kw)[0]["images"]
    moved = VideoDataset(db_moved, **kw)[0]["images"]
    assert _mean_diff(full, cached) < 0.06 and _corr(full, cached) > 0.995
    assert _mean_diff(full, moved) > 2 * _mean_diff(full, cached) and _corr(full, moved) < 0.99


def test_image_dataset_uses_cache(synth, cache):
    full = ImageDataset(synth.db_path, dataset_root=synth.dataset_root)
    cached = ImageDataset(synth.db_path, dataset_root=None, crop_cache_dir=cache)  # no frames needed
    a, b = full[5], cached[5]
    torch.testing.assert_close(a["kp_2d"], b["kp_2d"], atol=1e-4, rtol=0)
    assert (a["images"] - b["images"]).abs().mean() < 0.06


def test_resume_and_rebuild(synth, tmp_path):
    out = tmp_path / "cache"
    build_crop_cache(synth.db, synth.dataset_root, out, size=64, progress=False, num_workers=1)
    first = (out / "frames" / "0000" / "0000004.jpg").read_bytes()
    # an interrupted run: one crop and the completion marker missing
    (out / "frames" / "0000" / "0000004.jpg").unlink()
    (out / "meta.json").unlink()
    assert not CropCache.is_complete(out)
    with pytest.raises(DataError, match="incomplete"):
        CropCache(out)
    build_crop_cache(synth.db, synth.dataset_root, out, size=64, progress=False, num_workers=1)
    assert CropCache.is_complete(out)
    assert (out / "frames" / "0000" / "0000004.jpg").read_bytes() == first
    # other parameters into the same directory: refused unless overwrite
    with pytest.raises(DataError, match="overwrite"):
        build_crop_cache(synth.db, synth.dataset_root, out, size=96, progress=False)
    build_crop_cache(synth.db, synth.dataset_root, out, size=96, progress=False, overwrite=True)
    assert CropCache(out).size == 96


def test_stale_cache_is_an_error(synth, cache):
    db = dict(synth.db)
    db["bbox"] = db["bbox"] + 1.0
    with pytest.raises(DataError, match="different rows"):
        VideoDataset(db, dataset_root=synth.dataset_root, seqlen=4, sample_pool=8, crop_cache_dir=cache)


def test_absent_cache_falls_back_to_frames(synth, tmp_path):
    ds = VideoDataset(
        synth.db, dataset_root=synth.dataset_root, seqlen=4, sample_pool=8, crop_cache_dir=tmp_path / "nothing_here"
    )
    assert not ds.uses_crop_cache
    assert ds[0]["images"].shape == (4, 3, 224, 224)


def test_margin_and_coverage_warning(synth, cache):
    assert cache_margin(0.0, 0.0, slack=0.0) == pytest.approx(1.3)
    assert cache_margin(0.2, 30.0, slack=0.0) == pytest.approx(1.5 * (np.cos(np.pi / 6) + 0.5))
    with pytest.warns(UserWarning, match="rot_jitter"):
        VideoDataset(
            synth.db,
            dataset_root=synth.dataset_root,
            seqlen=4,
            sample_pool=8,
            crop_cache_dir=cache,
            transforms=build_transforms("video_3d", rot_jitter=30.0),
        )


def test_database_without_boxes_is_refused(synth, tmp_path):
    db = {k: v for k, v in synth.db.items() if k != "bbox"}
    with pytest.raises(DataError, match="bbox"):
        build_crop_cache(db, synth.dataset_root, tmp_path / "c", progress=False)


def test_cache_of_a_database_with_baked_in_paths(synth, tmp_path):
    """The authors' 'data/<dataset>/...' names resolve under the dataset root for the cache too."""
    db = dict(synth.db)
    db["img_name"] = np.array(["data/synth/" + n for n in synth.db["img_name"]])
    out = build_crop_cache(db, synth.dataset_root, tmp_path / "cache", size=64, progress=False, num_workers=1)
    assert (out / "meta.json").is_file() and len(list((out / "frames").rglob("*.jpg"))) == 16
