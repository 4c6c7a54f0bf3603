"""``maed bench --train``: frames/s of the training data loader (generated full-size JPEG frames read through
the crop cache, with the stage-2 augmentation) beside the training step (forward, loss, backward, Adam) in
float32 and bfloat16 autocast, with peak memory on CUDA."""

from __future__ import annotations

import contextlib
import copy
import os
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, RandomSampler

from maed.bench.common import random_clips, reads_landmarks, time_alternating
from maed.data.crop_cache import build_crop_cache
from maed.data.datasets import VideoDataset
from maed.data.transforms import ClipAugmentation
from maed.errors import ConfigError
from maed.testing.datasets import write_synthetic_dataset
from maed.train.distributed import DistEnv
from maed.train.engine import Trainer
from maed.train.losses import MAEDLoss
from maed.train.optim import TrainSettings
from maed.train.streams import BatchStream


def training_batch(body_model, clips: int, seqlen: int | None, img_size: int, generator, *, encoder=None) -> dict:
    """A random batch in the training-batch format (``maed.data``), sized for ``body_model``: ``images``
    clips x T x 3 x S x S (or ``image`` without T when ``seqlen`` is None), ``kp_2d`` (..., K, 3),
    ``kp_3d`` (..., K, 4) with full confidence, ``theta`` (..., 3 + 3J + betas), ``w_smpl`` ones.

    For a keypoint ``encoder`` (its ``input_kind``) the clips hold ``keypoints`` clips x T x K x C instead
    (``maed.bench.common.random_clips``: the landmark layout ``maed.synth.keypoint_data`` trains on)."""
    lead = (clips,) if seqlen is None else (clips, seqlen)
    K, J, S = body_model.num_output_joints, body_model.num_joints, body_model.num_betas
    kp_2d = torch.rand(*lead, K, 3, generator=generator) * 2 - 1
    kp_2d[..., 2] = 1.0
    kp_3d = torch.randn(*lead, K, 4, generator=generator) * 0.3
    kp_3d[..., 3] = 1.0
    cam = torch.cat([torch.ones(*lead, 1), torch.zeros(*lead, 2)], -1)
    theta = torch.cat([cam, 0.2 * torch.randn(*lead, 3 * J + S, generator=generator)], -1)
    if seqlen is not None:
        key = "keypoints" if reads_landmarks(encoder) else "images"
        inputs = {key: random_clips(encoder, clips, seqlen, img_size, generator)}
    elif reads_landmarks(encoder):
        raise ValueError("training_batch: a keypoint encoder trains on clips; give seqlen")
    else:
        inputs = {"image": torch.randn(clips, 3, img_size, img_size, generator=generator)}
    return {**inputs, "kp_2d": kp_2d, "kp_3d": kp_3d, "theta": theta, "w_smpl": torch.ones(lead)}


def train_step_fn(model, cfg, *, amp: str = "none", run_dir: str | Path):
    """A callable ``step(batch_3d) -> stats`` running one step of the training engine (``Trainer.train_step``:
    forward, MAED loss, backward, optimiser) on clips with 3D labels already in memory.

    ``amp``: ``none`` or ``bf16`` (autocast on the model's device; the engine autocasts on CUDA itself, on
    CPU the same autocast is put around the step here). ``run_dir`` must outlive the callable.
    """

    device = next(model.parameters()).device
    settings = TrainSettings.from_config(cfg)
    settings.amp = amp
    trainer = Trainer(
        model=model,
        criterion=MAEDLoss.from_config(cfg.LOSS),
        # the trainer needs a stream only to size an epoch; the steps take their batches as arguments
        streams={"3d": BatchStream([0], name="3d", batch_size=1, seed=0)},
        env=DistEnv(device=device),
        settings=settings,
        run_dir=run_dir,
        config={},
        seed=0,
        progress=False,
    )
    cpu_amp = amp == "bf16" and device.type == "cpu"

    def step(batch_3d: dict) -> dict:
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16) if cpu_amp else contextlib.nullcontext():
            return trainer.train_step(None, batch_3d, None)

    return step


def saved_activation_bytes(model, images, amp: str = "none") -> int:
    """Bytes of the tensors autograd keeps for backward during one forward of ``model`` on ``images``
    (N x T x 3 x S x S): the activation memory of a training step, on any device (counted once per
    storage; parameters excluded)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    was_training = model.training
    model.train()
    dtype = torch.bfloat16 if amp == "bf16" else None
    hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)
    try:
        with hooks, torch.autocast(images.device.type, dtype=dtype, enabled=dtype is not None):
            out = model(images)
        del out
    finally:
        model.train(was_training)
    return sum(seen.values())


def time_loader(loader, *, batches: int, device, warmup: int = 2) -> dict:
    """Frames/s of a training loader, each batch moved to ``device`` (non-blocking from pinned memory on
    CUDA, as the engine does); the first ``warmup`` batches (worker start-up) are not timed."""
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    frames = 0
    t0 = time.perf_counter()
    for _ in range(batches):
        batch = next(it)
        images = batch["images"].to(device, non_blocking=True)
        frames += images.shape[0] * images.shape[1]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    return {"batches": batches, "frames": frames, "seconds": seconds, "frames_per_s": frames / seconds}


def build_bench_loader(
    cfg,
    *,
    data_dir: Path,
    frames: int,
    frame_size: tuple[int, int],
    clips: int,
    workers: int,
    pin_memory: bool,
    seed: int = 0,
):
    """A training loader of 3D clips over generated full-size JPEG frames read through their crop cache, with
    the config's augmentation and crop size; the frames and cache are reused from ``data_dir`` when there."""

    width, height = frame_size
    root = data_dir / f"{width}x{height}_{frames}f"
    n_videos = max(1, round(frames / 128))
    per_video = max(frames // n_videos, 1)
    synth = write_synthetic_dataset(
        root, name="bench", num_videos=n_videos, frames_per_video=per_video, image_size=(width, height), seed=seed
    )
    cache_size = -(-cfg.DATASET.WIDTH * 8 // 7)  # 256 px for 224 px crops: room for the augmentation's shifts
    cache = build_crop_cache(
        synth.db_path,
        synth.dataset_root,
        root / "crop_cache" / f"{cache_size}px",
        size=cache_size,
        size_jitter=cfg.DATASET.SIZE_JITTER,
        rot_jitter=cfg.DATASET.ROT_JITTER,
        progress=False,
        num_workers=max(workers, 1),
    )
    seqlen = min(cfg.DATASET.SEQLEN, per_video)
    dataset = VideoDataset(
        synth.db_path,
        dataset_root=synth.dataset_root,
        seqlen=seqlen,
        sample_pool=max(seqlen, min(cfg.DATASET.SAMPLE_POOL, per_video)),
        overlap=cfg.DATASET.OVERLAP,
        random_start=cfg.DATASET.RANDOM_START,
        random_sample=cfg.DATASET.RANDOM_SAMPLE,
        transforms=ClipAugmentation.from_config(cfg.DATASET),  # the 3D-video pipeline
        is_train=True,
        crop_cache_dir=cache,
    )
    sampler = RandomSampler(dataset, replacement=True, num_samples=10**6, generator=torch.Generator().manual_seed(seed))
    return DataLoader(
        dataset,
        batch_size=clips,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=2 if workers else None,
        drop_last=True,
    )


def run_training(args, cfg, model, device, precisions, clock, tmp: Path) -> dict:
    clips = args.batch or (8 if device.type == "cuda" else 4)
    amps = ["none"] + (["bf16"] if "bf16" in precisions else [])
    try:
        width, height = (int(v) for v in args.frame_size.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--frame-size {args.frame_size!r}: expected WIDTHxHEIGHT, e.g. 1920x1080") from None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = min(args.workers if args.workers is not None else cfg.NUM_WORKERS, cpus)
    cfg.DATASET.SEQLEN = args.seqlen
    load = None
    if args.loader_batches > 0 and reads_landmarks(model.encoder):
        # its clips are generated in the loader's worker (maed.synth.keypoint_data), no frames are read
        print("loader: not timed for a keypoint model (its clips are generated, not read from frames)")
    elif args.loader_batches > 0:
        loader = build_bench_loader(
            cfg,
            data_dir=Path(args.data) if args.data else tmp / "loader_data",
            frames=args.loader_frames,
            frame_size=(width, height),
            clips=clips,
            workers=workers,
            pin_memory=device.type == "cuda",
        )
        load = time_loader(loader, batches=args.loader_batches, device=device)
        del loader
    where = f"{workers} worker(s), {width}x{height} JPEGs through the crop cache" if load else "not timed"
    print(f"training, {clips} clips x {args.seqlen} frames per step; loader: {where}")

    batch = training_batch(
        model.body_model, clips, args.seqlen, cfg.DATASET.WIDTH, torch.Generator().manual_seed(0), encoder=model.encoder
    )
    frames = clips * args.seqlen
    steps, rows, peaks = {}, [], {}
    for amp in amps:
        # peak memory of one setting: what its first step allocates on top of what was there before its
        # model copy (the other settings' models and optimiser states are not counted)
        before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        step = train_step_fn(copy.deepcopy(model), cfg, amp=amp, run_dir=tmp)
        steps[amp] = lambda step=step: step(batch)
        if device.type == "cuda":
            steps[amp]()
            torch.cuda.synchronize(device)
            peaks[amp] = (torch.cuda.max_memory_allocated(device) - before) / 2**30
    best = time_alternating(steps, iters=args.iters, warmup=args.warmup, cuda=device.type == "cuda", clock=clock)
    for amp in amps:
        row = {"amp": amp, "seconds_per_step": best[amp], "frames_per_s": frames / best[amp]}
        if amp in peaks:
            row["peak_memory_gib"] = peaks[amp]
        rows.append(row)
    print(f"\n{'':24s} {'frames/s':>9s}")
    if load:
        print(f"{'loader (crop cache)':24s} {load['frames_per_s']:9.1f}")
    for r in rows:
        mem = f"   peak memory {r['peak_memory_gib']:.2f} GiB" if "peak_memory_gib" in r else ""
        name = "step fp32" if r["amp"] == "none" else f"step {r['amp']} autocast"
        print(f"{name:24s} {r['frames_per_s']:9.1f}{mem}")
    keeps_up = None
    if load:
        keeps_up = load["frames_per_s"] >= max(r["frames_per_s"] for r in rows)
        print(f"the loader {'keeps up with' if keeps_up else 'is slower than'} the fastest step")
    return {
        "clips": clips,
        "grad_checkpoint": cfg.MODEL.ENCODER.GRAD_CHECKPOINT,
        "loader": {"workers": workers, "frame_size": [width, height], **load} if load else None,
        "results": rows,
        "loader_keeps_up": keeps_up,
    }
