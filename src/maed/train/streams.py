"""Endless, resumable batch streams over the training datasets; the one place where training data is
shuffled and sharded between ranks.

Every batch is a pure function of (seed, stream, pass, rank, world size, position), so a run resumed at
global step ``g`` reads exactly the batches an uninterrupted run would have read, with the same
augmentations, whatever the number of loader workers:

- the order of pass ``p`` is a permutation drawn from ``(seed, stream, p)`` and sharded like
  ``DistributedSampler`` (padded to a multiple of the world size, then ``rank::world_size``), so every
  rank reads its own samples without a sampler or ``set_epoch``;
- each sample's augmentation randomness is seeded from ``(seed, stream, p, index)`` inside the worker
  (the datasets draw their per-sample generator from torch's RNG), in an isolated RNG context, so the
  training process's own RNG (dropout) is never touched by data loading.

This replaces the original's loader re-creation on exhaustion (which re-used the current epoch's
permutation, so a short loader could repeat an order within an epoch).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from maed.data.loaders import ignore_stop_signals, usable_cpus
from maed.errors import DataError

#: stream ids mixed into the seeds, so equal-sized datasets are not shuffled identically
STREAM_IDS = {"2d": 1, "3d": 2, "img": 3}


def mix_seed(*values: int) -> int:
    """A 63-bit seed from several non-negative integers (NumPy's SeedSequence hashing)."""
    return int(np.random.SeedSequence([int(v) for v in values]).generate_state(1, np.uint64)[0] >> 1)


class _SeededDataset(Dataset):
    """Reads ``(index, seed)`` pairs: seeds torch's RNG for this one sample, then restores it."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


class _EndlessBatchSampler(Sampler):
    """Batches of ``(index, seed)`` pairs for one rank, pass after pass, starting at batch ``start``."""

    def __init__(self, stream: BatchStream, start: int):
        self.stream = stream
        self.start = int(start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        s = self.stream
        p, b = divmod(self.start, s.batches_per_pass)
        while True:
            order = s.pass_indices(p)
            for i in range(b, s.batches_per_pass):
                idx = order[i * s.batch_size : (i + 1) * s.batch_size]
                yield [(int(j), mix_seed(s.seed, s.stream_id, p, int(j))) for j in idx]
            p, b = p + 1, 0


class BatchStream:
    """An endless sequence of collated batches from one training dataset.

    Args:
        dataset: a training set (``maed.data.loaders.build_train_datasets``).
        name: ``2d`` | ``3d`` | ``img``.
        batch_size: samples per batch on this process.
        seed: the run's seed. rank, world_size: this process's shard.
        num_workers: loader worker processes (at most the CPUs this process may use).
        pin_memory: pin batches for a fast copy to the GPU.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        name: str,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
    ):
        self.dataset = dataset
        self.name = name
        self.stream_id = STREAM_IDS.get(name, 0)
        self.seed = int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.batch_size = int(batch_size)
        # NUM_WORKERS is written for 8-GPU nodes; never start more workers than this process may use
        self.num_workers = min(int(num_workers), usable_cpus())
        self.pin_memory = bool(pin_memory)
        n = len(self.dataset)
        if n == 0:
            raise DataError(f"training stream {name}: the dataset is empty")
        self.samples_per_rank = math.ceil(n / self.world_size)
        self.batches_per_pass = math.ceil(self.samples_per_rank / self.batch_size)

    def pass_indices(self, p: int) -> list[int]:
        """Dataset indices this rank reads in pass ``p`` (a permutation shard, padded as DistributedSampler)."""
        n = len(self.dataset)
        g = torch.Generator().manual_seed(mix_seed(self.seed, self.stream_id, p))
        perm = torch.randperm(n, generator=g).tolist()
        total = self.samples_per_rank * self.world_size
        while len(perm) < total:
            perm += perm[: total - len(perm)]
        return perm[self.rank : total : self.world_size]

    def iterate(self, start: int = 0) -> Iterator[dict]:
        """Batches from position ``start`` (counted in batches since the beginning of training) onwards."""
        loader = DataLoader(
            _SeededDataset(self.dataset),
            batch_sampler=_EndlessBatchSampler(self, start),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            generator=torch.Generator().manual_seed(mix_seed(self.seed, self.stream_id, start)),
            worker_init_fn=ignore_stop_signals if self.num_workers > 0 else None,
        )
        return iter(loader)
