"""Loader benchmark: clips/s and frames/s per worker of the 3D video loader with full augmentation.

Generates a database of full-size frames (default 1920 x 1080 JPEGs, as 3DPW) and its crop cache, then
times the stage-2 3D-video pipeline (16-frame clips from 128-frame windows, random start, random crop,
colour jitter, random erase, flip, normalisation) reading (a) the full frames and (b) the crop cache.
Each setting runs in a DataLoader with ``--workers`` worker processes (0: in the main process, which
counts as one worker); the rates are divided by the number of workers.

    python benchmarks/bench_loader.py --out bench_loader.json
    python benchmarks/bench_loader.py --frames 256 --workers 2 --clips 64 --data /tmp/maed_bench_data

Generated data is kept in ``--data`` (default: a temporary directory), in a subdirectory per frame size
and count (and a crop cache per cache size and margin), and reused by later runs with the same settings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def _time_loader(dataset, *, workers: int, clips: int, warmup: int) -> dict:
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    from maed.bench.train import time_loader

    torch.manual_seed(0)
    sampler = RandomSampler(dataset, replacement=True, num_samples=clips + warmup * max(workers, 1))
    loader = DataLoader(
        dataset, batch_size=1, sampler=sampler, num_workers=workers, prefetch_factor=2 if workers > 0 else None
    )
    # the first batches per worker start the workers and warm caches
    row = time_loader(loader, batches=clips, device=torch.device("cpu"), warmup=warmup * max(workers, 1))
    elapsed, frames, per_worker = row["seconds"], row["frames"], max(workers, 1)
    return {
        "clips": clips,
        "seconds": elapsed,
        "clips_per_s": clips / elapsed,
        "frames_per_s": frames / elapsed,
        "clips_per_s_per_worker": clips / elapsed / per_worker,
        "frames_per_s_per_worker": frames / elapsed / per_worker,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="directory for the generated frames (default: temporary)")
    p.add_argument("--frames", type=int, default=256, help="generated frames, in videos of 128 (default 256)")
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--cache-size", type=int, default=256, help="side of the cached crops in pixels (256)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers (0: main process)")
    p.add_argument("--clips", type=int, default=24, help="timed clips per setting (default 24)")
    p.add_argument("--warmup", type=int, default=2, help="untimed clips per worker first (default 2)")
    p.add_argument("--config", default="stage2", help="preset or YAML whose DATASET section is used")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)

    from maed.config import load_config
    from maed.data.crop_cache import build_crop_cache, cache_margin
    from maed.data.datasets import VideoDataset
    from maed.data.transforms import ClipAugmentation
    from maed.testing.datasets import write_synthetic_dataset

    cfg = load_config(args.config)
    tmp = None
    if args.data is None:
        tmp = tempfile.TemporaryDirectory(prefix="maed_bench_loader_")
        data_dir = Path(tmp.name)
    else:
        # generated frames are kept and reused, so other sizes or counts must not land in the same tree
        data_dir = Path(args.data) / f"{args.width}x{args.height}_{args.frames}f"
    n_videos = max(1, round(args.frames / 128))
    t0 = time.perf_counter()
    synth = write_synthetic_dataset(
        data_dir,
        name="bench",
        num_videos=n_videos,
        frames_per_video=max(args.frames // n_videos, 1),
        image_size=(args.width, args.height),
        seed=0,
    )
    t_gen = time.perf_counter() - t0
    from maed.data.crop_cache import CropCache

    margin = cache_margin(cfg.DATASET.SIZE_JITTER, cfg.DATASET.ROT_JITTER)
    cache_dir = data_dir / "crop_cache" / f"{args.cache_size}px_margin{margin:.4f}"
    reused = CropCache.is_complete(cache_dir)
    t0 = time.perf_counter()
    build_crop_cache(
        synth.db_path,
        synth.dataset_root,
        cache_dir,
        size=args.cache_size,
        progress=False,
        size_jitter=cfg.DATASET.SIZE_JITTER,
        rot_jitter=cfg.DATASET.ROT_JITTER,
    )
    t_cache = time.perf_counter() - t0

    transforms = ClipAugmentation.from_config(cfg.DATASET)  # the 3D-video pipeline
    common = dict(
        dataset_root=synth.dataset_root,
        seqlen=cfg.DATASET.SEQLEN,
        sample_pool=cfg.DATASET.SAMPLE_POOL,
        overlap=cfg.DATASET.OVERLAP,
        random_start=cfg.DATASET.RANDOM_START,
        random_sample=cfg.DATASET.RANDOM_SAMPLE,
        transforms=transforms,
        is_train=True,
    )
    results = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "setup": {
            "frames": len(synth.db["img_name"]),
            "frame_size": [args.width, args.height],
            "cache_size": args.cache_size,
            "workers": args.workers,
            "clips": args.clips,
            "seqlen": cfg.DATASET.SEQLEN,
            "sample_pool": cfg.DATASET.SAMPLE_POOL,
            "config": args.config,
            "generate_s": t_gen,
            "build_cache_s": t_cache,
            "mean_jpeg_kb": sum(f.stat().st_size for f in synth.dataset_root.rglob("*.jpg"))
            / 1024
            / len(synth.db["img_name"]),
        },
        "rows": {},
    }
    for label, cache in (("full frames", None), ("crop cache", cache_dir)):
        ds = VideoDataset(synth.db_path, crop_cache_dir=cache, **common)
        assert ds.uses_crop_cache == (cache is not None)
        results["rows"][label] = _time_loader(ds, workers=args.workers, clips=args.clips, warmup=args.warmup)
    full, cached = results["rows"]["full frames"], results["rows"]["crop cache"]
    results["speedup"] = cached["clips_per_s"] / full["clips_per_s"]

    where = "main process" if args.workers == 0 else "processes"
    print(
        f"3D video loader, {cfg.DATASET.SEQLEN}-frame clips, full stage-2 augmentation, "
        f"{args.width}x{args.height} JPEGs, {max(args.workers, 1)} worker(s) ({where})"
    )
    print(f"{'source':<14}{'clips/s/worker':>16}{'frames/s/worker':>17}")
    for label, row in results["rows"].items():
        print(f"{label:<14}{row['clips_per_s_per_worker']:>16.2f}{row['frames_per_s_per_worker']:>17.1f}")
    built = "reused" if reused else f"built in {t_cache:.1f} s"
    print(f"crop cache speed-up: {results['speedup']:.1f}x  (cache {built} for {results['setup']['frames']} frames)")
    if args.out:
        from maed.utils.io import atomic_write_text

        atomic_write_text(args.out, json.dumps(results, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return results


if __name__ == "__main__":
    main()
