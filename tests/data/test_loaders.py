"""Training datasets and evaluation loaders: fields, shapes, strides, sharding, missing databases, from_config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maed.config import load_config
from maed.data.loaders import (
    ShardSampler,
    TrainDataSettings,
    build_eval_loader,
    build_train_datasets,
    eval_loader_from_config,
)
from maed.data.transforms import ClipAugmentation
from maed.errors import ConfigError, DataError
from maed.testing.datasets import write_synthetic_dataset
from maed.train.streams import BatchStream


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    size = (200, 150)
    write_synthetic_dataset(out, name="3dpw", split="train", num_videos=1, frames_per_video=20, image_size=size)
    write_synthetic_dataset(out, name="3dpw", split="val", num_videos=2, frames_per_video=10, image_size=size)
    write_synthetic_dataset(
        out,
        name="posetrack",
        split="train",
        num_videos=2,
        frames_per_video=8,
        image_size=size,
        with_pose=False,
        with_3d=False,
    )
    write_synthetic_dataset(
        out, name="mpii3d", split="train", num_videos=1, frames_per_video=11, image_size=size, with_pose=False
    )
    roots = {n: str(out / "images") for n in ("3dpw", "posetrack", "mpii3d")}
    return out, roots


def _train(data, **kw):
    out, roots = data
    args = dict(
        datasets_2d=["posetrack"],
        datasets_3d=["3dpw"],
        datasets_img=["mpii3d"],
        batch_size_2d=2,
        batch_size_3d=2,
        batch_size_img=3,
        seqlen=4,
        sample_pool=16,
        overlap=0.5,
        random_start=True,
        random_sample=False,
        num_workers=0,
        augmentation=ClipAugmentation(
            size_jitter=0.0,
            rot_jitter=0.0,
            color_jitter=0.3,
            erase_prob=0.3,
            erase_part=0.7,
            flip_prob=0.5,
            random_crop_p=0.2,
            random_crop_size=0.6,
        ),
    )
    args.update(kw)
    return build_train_datasets(TrainDataSettings(**args), db_dir=out / "database", dataset_roots=roots)


def _first_batch(dataset, batch_size: int, **kw) -> dict:
    return next(BatchStream(dataset, name="x", batch_size=batch_size, seed=0, **kw).iterate())


def test_train_datasets_fields_and_shapes(data):
    sets = _train(data)
    b2 = _first_batch(sets.video_2d, 2)
    assert b2["images"].shape == (2, 4, 3, 224, 224) and b2["kp_2d"].shape == (2, 4, 49, 3)
    assert b2["w_smpl"].sum() == 0 and b2["w_3d"].sum() == 0  # 2D-only dataset
    b3 = _first_batch(sets.video_3d, 2)
    assert b3["images"].shape == (2, 4, 3, 224, 224) and b3["kp_3d"].shape == (2, 4, 49, 4)
    assert b3["theta"].shape == (2, 4, 85) and b3["w_smpl"].shape == (2, 4) and (b3["w_smpl"] == 1).all()
    assert "valid" not in b3
    bi = _first_batch(sets.images, 3)
    assert bi["images"].shape == (3, 3, 224, 224) and bi["theta"].shape == (3, 85) and bi["w_smpl"].shape == (3,)
    assert bi["kp_2d"].shape == (3, 49, 3) and bi["bbox"].shape == (3, 4)
    # 3DPW-train keeps the original's stride 8: 20 frames -> 32 -> windows at 0, 8, 16
    assert sets.video_3d.datasets[0].stride == 8 and len(sets.video_3d) == 3
    assert sets.video_2d.datasets[0].stride == 8  # 0.5 of 16
    assert len(sets.images) == 3  # mpii3d images: every 5th of 11 rows
    # the 3D pipeline has colour jitter, the 2D one does not
    assert sets.video_3d.datasets[0].transforms.color_jitter == 0.3
    assert sets.video_2d.datasets[0].transforms.color_jitter == 0.0


def test_empty_lists_and_zero_batch_give_none(data):
    sets = _train(data, datasets_2d=[], batch_size_img=0)
    assert sets.video_2d is None and sets.images is None and sets.video_3d is not None
    assert sets.by_stream() == {"2d": None, "3d": sets.video_3d, "img": None}


def test_ranks_read_their_own_shard_with_workers(data):
    """Sharding happens in the stream (no DistributedSampler): two ranks split each pass between them."""
    sets = _train(data)
    rank0, rank1 = (
        BatchStream(sets.video_3d, name="3d", batch_size=2, seed=0, rank=r, world_size=2, num_workers=1) for r in (0, 1)
    )
    assert set(rank0.pass_indices(0)) | set(rank1.pass_indices(0)) == set(range(len(sets.video_3d)))
    assert rank1.rank == 1 and rank1.num_workers == 1
    batch = next(rank1.iterate())
    assert batch["images"].shape[1:] == (4, 3, 224, 224)


def test_missing_database_names_file_and_command(data, tmp_path):
    out, roots = data
    with pytest.raises(DataError) as e:
        _train(data, datasets_3d=["3dpw", "h36m"])
    msg = str(e.value)
    assert str(out / "database" / "h36m_train_db.pt") in msg and "maed prepare h36m" in msg
    with pytest.raises(DataError, match="maed prepare coco2014"):
        _train(data, datasets_img=["coco2014-all"])
    with pytest.raises(ConfigError, match="unknown dataset"):
        _train(data, datasets_img=["coco"])


def test_eval_loader_whole_windows_in_order(data):
    out, roots = data
    loader = build_eval_loader(
        "3dpw",
        "val",
        db_dir=out / "database",
        dataset_root=roots["3dpw"],
        sample_pool=8,
        batch_size=2,
        num_workers=0,
        pin_memory=False,
    )
    batches = list(loader)
    # two videos of 10 frames -> 16 -> two windows each, in order
    assert [b["index"].flatten().tolist() for b in batches] == [[0, 1], [2, 3]]
    b = batches[0]
    assert b["images"].shape == (2, 8, 3, 224, 224) and b["valid"].shape == (2, 8) and b["bbox"].shape == (2, 8, 4)
    assert b["valid"][1].tolist() == [True, True] + [False] * 6
    assert len(b["paths"]) == 8 and len(b["instance_id"]) == 8  # collated per frame
    assert b["instance_id"][0] == ("3dpw_vid0/0", "3dpw_vid0/8")
    # sharded evaluation: disjoint, complete, no padding
    shards = [ShardSampler(loader.dataset, rank=r, world_size=3) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(len(loader.dataset)))


def test_from_config(data, monkeypatch):
    out, roots = data
    cfg = load_config(
        "stage2",
        [
            f"PATHS.DATA_DIR={out}",
            f"PATHS.DATASET_ROOTS={{3dpw: {roots['3dpw']}, posetrack: {roots['posetrack']}, "
            f"mpii3d: {roots['mpii3d']}}}",
            "TRAIN.DATASETS_2D=[posetrack]",
            "TRAIN.DATASETS_3D=[3dpw]",
            "TRAIN.DATASETS_IMG=[mpii3d]",
            "DATASET.SEQLEN=4",
            "DATASET.SAMPLE_POOL=16",
            "NUM_WORKERS=0",
            "EVAL.SAMPLE_POOL=8",
            "EVAL.SEQLEN=4",
            "EVAL.BATCH_SIZE=1",
            "EVAL.PROTOCOL=strict",
            "DEVICE=cpu",
        ],
    )
    settings = TrainDataSettings.from_config(cfg)
    sets = build_train_datasets(settings, db_dir=out / "database", dataset_roots=cfg.PATHS.DATASET_ROOTS)
    ds3 = sets.video_3d.datasets[0]
    assert ds3.random_start and not ds3.random_sample and ds3.seqlen == 4
    assert settings.batch_size_3d == cfg.TRAIN.BATCH_SIZE_3D
    assert ds3.transforms.random_crop_p == pytest.approx(0.2) and ds3.transforms.flip_prob == 0.5
    ev = eval_loader_from_config(cfg)
    assert ev.dataset.valid_mode == "strict" and ev.dataset.seqlen == 8 and ev.batch_size == 1
    batch = next(iter(ev))
    assert batch["images"].shape == (1, 8, 3, 224, 224)
    assert torch.is_tensor(batch["valid"]) and np.asarray(batch["valid"]).dtype == bool


def test_eval_loader_from_config_with_both_protocols(data):
    """EVAL.PROTOCOL=both is valid: the evaluator derives the strict frames from the original mask."""
    out, roots = data
    cfg = load_config(
        "stage2",
        [
            f"PATHS.DATA_DIR={out}",
            f"PATHS.DATASET_ROOTS={{3dpw: {roots['3dpw']}}}",
            "NUM_WORKERS=0",
            "EVAL.SAMPLE_POOL=8",
            "EVAL.SEQLEN=4",
            "EVAL.BATCH_SIZE=2",
            "EVAL.PROTOCOL=both",
            "DEVICE=cpu",
        ],
    )
    ev = eval_loader_from_config(cfg)
    assert ev.dataset.valid_mode == "original"
    assert next(iter(ev))["valid"][1].tolist() == [True, True] + [False] * 6


def test_negative_batch_sizes_and_workers_are_config_errors():
    with pytest.raises(ConfigError, match="TRAIN.BATCH_SIZE_3D=-1"):
        TrainDataSettings.from_config(load_config("stage2", ["TRAIN.BATCH_SIZE_3D=-1"]))
    with pytest.raises(ConfigError, match="NUM_WORKERS=-2"):
        TrainDataSettings.from_config(load_config("stage2", ["NUM_WORKERS=-2"]))
