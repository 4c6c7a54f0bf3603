"""Resumable batch streams: the batches from any position equal an uninterrupted stream's, whatever the
number of workers, and data loading never touches the training process's RNG."""

from __future__ import annotations

import pytest
import torch

from maed.train.streams import BatchStream


@pytest.fixture
def make_stream(noisy_dataset):
    def make(n=7, batch_size=2, workers=0, rank=0, world_size=1, seed=3) -> BatchStream:
        return BatchStream(
            noisy_dataset(n),
            name="3d",
            batch_size=batch_size,
            num_workers=workers,
            seed=seed,
            rank=rank,
            world_size=world_size,
        )

    return make


def _take(it, k):
    return [next(it) for _ in range(k)]


def _same(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x["index"], y["index"]) and torch.equal(x["noise"], y["noise"]) for x, y in zip(a, b)
    )


def test_resuming_at_any_position_gives_the_same_batches(make_stream):
    s = make_stream()
    assert s.batches_per_pass == 4  # 7 samples, batches of 2 (the last one has 1)
    full = _take(s.iterate(0), 10)  # crosses two pass boundaries
    for start in (1, 3, 4, 6):
        assert _same(_take(s.iterate(start), 10 - start), full[start:]), start
    # passes are different permutations with different augmentations
    assert not torch.equal(torch.cat([b["index"] for b in full[:4]]), torch.cat([b["index"] for b in full[4:8]]))
    assert sorted(torch.cat([b["index"] for b in full[:4]]).tolist()) == list(range(7))


def test_workers_do_not_change_the_batches(make_stream):
    assert _same(_take(make_stream(workers=0).iterate(2), 4), _take(make_stream(workers=1).iterate(2), 4))


def test_data_loading_leaves_the_global_rng_alone(make_stream):
    torch.manual_seed(0)
    before = torch.get_rng_state()
    _take(make_stream().iterate(0), 5)
    assert torch.equal(before, torch.get_rng_state())


def test_ranks_shard_each_pass_like_distributed_sampler(make_stream):
    a, b = make_stream(rank=0, world_size=2), make_stream(rank=1, world_size=2)
    assert a.batches_per_pass == b.batches_per_pass == 2  # ceil(7 / 2) = 4 samples per rank
    ia, ib = a.pass_indices(0), b.pass_indices(0)
    assert len(ia) == len(ib) == 4 and set(ia) | set(ib) == set(range(7))  # one sample padded twice
    assert a.pass_indices(1) != ia  # a new permutation each pass
    assert make_stream(seed=4).pass_indices(0) != make_stream(seed=3).pass_indices(0)
