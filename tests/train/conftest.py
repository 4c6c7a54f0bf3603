"""Generated training data and a tiny training config (ResNet-50 ``cnn`` encoder, 2-frame clips)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

IMAGE_SIZE = (160, 120)  # generated frames; crops are always 224 x 224


def write_training_data(root: Path) -> dict:
    """2D videos (posetrack), 3D videos (3dpw train), images (mpii3d) and a 3dpw val split, plus a random
    SMPL-format body-model directory. Returns the config overrides that point at them."""
    from maed.testing.datasets import write_synthetic_dataset
    from maed.testing.smpl import write_random_smpl_dir

    kw = dict(image_size=IMAGE_SIZE)
    write_synthetic_dataset(
        root,
        name="posetrack",
        split="train",
        num_videos=1,
        frames_per_video=4,
        with_pose=False,
        with_3d=False,
        seed=1,
        **kw,
    )
    write_synthetic_dataset(root, name="3dpw", split="train", num_videos=1, frames_per_video=4, seed=2, **kw)
    write_synthetic_dataset(
        root, name="mpii3d", split="train", num_videos=1, frames_per_video=10, seed=3, with_pose=False, **kw
    )
    write_synthetic_dataset(root, name="3dpw", split="val", num_videos=1, frames_per_video=4, seed=4, **kw)
    smpl = write_random_smpl_dir(root / "smpl", seed=0)
    images = str(root / "images")
    return {
        "PATHS.DB_DIR": str(root / "database"),
        "PATHS.BODY_MODEL_DIR": str(smpl),
        "PATHS.DATASET_ROOTS": "{" + ", ".join(f"{n}: {images}" for n in ("posetrack", "3dpw", "mpii3d")) + "}",
    }


def tiny_overrides(data: dict, **extra) -> list[str]:
    """A stage-2 recipe shrunk to seconds per step on a CPU: cnn encoder, 1 clip of 2 frames per video
    stream, 1 image, no augmentation, 2 steps per epoch, validation on 2-frame windows."""
    values = {
        **data,
        "MODEL.ENCODER.BACKBONE": "cnn",
        "TRAIN.DATASETS_2D": "[posetrack]",
        "TRAIN.DATASETS_3D": "[3dpw]",
        "TRAIN.DATASETS_IMG": "[mpii3d]",
        "TRAIN.DATASET_EVAL": "3dpw",
        "TRAIN.BATCH_SIZE_2D": 1,
        "TRAIN.BATCH_SIZE_3D": 1,
        "TRAIN.BATCH_SIZE_IMG": 1,
        "TRAIN.END_EPOCH": 2,
        "TRAIN.NUM_ITERS_PER_EPOCH": 2,
        "TRAIN.LOG_FREQ": 1,
        "TRAIN.OPTIM.LR": 1e-4,
        "SAVE_FREQ": 1,
        "SEED_VALUE": 7,
        "NUM_WORKERS": 0,
        "DEVICE": "cpu",
        "DATASET.SEQLEN": 2,
        "DATASET.SAMPLE_POOL": 4,
        "DATASET.RANDOM_START": False,
        "DATASET.RANDOM_FLIP": 0.0,
        "DATASET.COLOR_JITTER": 0.0,
        "DATASET.ERASE_PROB": 0.0,
        "DATASET.RANDOM_CROP_P": 0.0,
        "EVAL.SEQLEN": 2,
        "EVAL.SAMPLE_POOL": 2,
        "EVAL.BATCH_SIZE": 2,
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


@pytest.fixture(scope="session")
def train_data(tmp_path_factory) -> dict:
    return write_training_data(tmp_path_factory.mktemp("train_data"))


@pytest.fixture(scope="session")
def tiny(train_data):
    """``tiny(**extra)``: :func:`tiny_overrides` over the generated data."""
    return lambda **extra: tiny_overrides(train_data, **extra)


class NoisyDataset(Dataset):
    """Like the real datasets: each sample draws its augmentation from torch's global RNG."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        return {"index": torch.tensor(index), "noise": torch.rand(3)}


@pytest.fixture
def noisy_dataset():
    return NoisyDataset
