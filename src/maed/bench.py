"""``maed bench``: speed of MAED on generated inputs, each path against the reference in the same process.

Inference (default): the paths ``load_model`` can return (``maed.models.fast``: float32, TF32 on CUDA,
bfloat16, optionally channels-last or compiled) against the reference path, which computes as the original
code does (float32, explicit softmax attention, weight standardisation on every forward, channels-first
pooling). Each row prints frames/s, the ratio to the reference, GFLOP/s of the network, the fraction of the
device's peak where it is known (H100, H200), and how far its vertices are from the reference's.

Training (``--train``): frames/s of the training data loader (generated full-size JPEG frames read through
the crop cache, with the stage-2 augmentation, worker processes, pinned memory on CUDA) beside frames/s
of the training step (forward, loss, backward, Adam) in float32 and bfloat16 autocast, with peak memory on
CUDA; ``--grad-checkpoint`` turns on activation checkpointing (``MODEL.ENCODER.GRAD_CHECKPOINT``).

Runs without any licence-gated file: unless ``--body-model-dir`` is given, the SMPL layer is a random
stand-in (same sizes as SMPL: 6890 vertices, 24 joints), and the weights are random. On a machine shared
with other jobs, ``--threads 1 --cpu-time`` gives steadier figures (CPU seconds of this process).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from maed.body.synthetic import write_random_smpl_dir
from maed.config import load_config
from maed.errors import ConfigError
from maed.utils.io import atomic_write_text, check_output_file

#: dense (no sparsity) peak TFLOP/s from NVIDIA's datasheets; the first name contained in the device's wins
GPU_PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H100 PCIe": {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0},
    "H100 NVL": {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5},
    "H200 NVL": {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5},
    "H100": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4},
    "H200": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4},
}
REFERENCE = "reference"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="frames/s of each inference path against the reference (--train: loader and training step)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", default="stage2", help="preset name or YAML file (default: stage2)")
    p.add_argument("--train", action="store_true", help="time the training loader and step instead")
    p.add_argument("--batch", type=int, default=None, help="clips per forward/step (default 1; --train: 4 CPU, 8 GPU)")
    p.add_argument("--seqlen", type=int, default=16, help="frames per clip (default 16)")
    p.add_argument("--iters", type=int, default=3, help="timed runs per setting, best kept (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    p.add_argument(
        "--precisions",
        "--dtypes",
        default=None,
        help="comma list of fp32,tf32,bf16 (default: fp32 and bf16 where the device has bf16 matrix "
        "instructions; tf32 too on CUDA)",
    )
    p.add_argument("--channels-last", action="store_true", help="also time bf16 with channels-last convolutions")
    p.add_argument("--compile", action="store_true", help="also time the default path with torch.compile")
    p.add_argument("--no-reference", action="store_true", help="skip the reference row")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--cpu-time", action="store_true", help="time in CPU seconds of this process (shared machines)")
    p.add_argument("--body-model-dir", default=None, help="use real SMPL files instead of a random stand-in")
    t = p.add_argument_group("--train options")
    t.add_argument("--grad-checkpoint", action="store_true", help="activation checkpointing in the encoder")
    t.add_argument("--workers", type=int, default=None, help="loader worker processes (default: NUM_WORKERS, <= CPUs)")
    t.add_argument("--loader-frames", type=int, default=256, help="generated frames for the loader (default 256)")
    t.add_argument("--frame-size", default="1920x1080", help="generated frame size WxH (default 1920x1080)")
    t.add_argument("--loader-batches", type=int, default=8, help="timed loader batches (default 8; 0: no loader)")
    t.add_argument("--data", default=None, help="keep the generated frames here and reuse them (default: temporary)")
    p.add_argument("--json", default="results/bench.json", help="results file (default %(default)s)")
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)  # the earlier name of --json
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.set_defaults(func=run)


# ---------------------------------------------------------------------------------------------- device
def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_summary(device) -> dict:
    """``name``, ``bf16_matrix`` (AMX, AVX512-BF16, tensor cores, or ``None``), ``amx`` (bool, CPU) and
    ``threads`` of a device."""
    import torch

    from maed.models.fast import bf16_matrix_instructions  # start-up: torch (~2 s) stays out of `maed --help`

    device = torch.device(device)
    if device.type == "cuda":
        return {"name": torch.cuda.get_device_name(device), "bf16_matrix": bf16_matrix_instructions(device)}
    caps = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    return {
        "name": cpu_name(),
        "bf16_matrix": bf16_matrix_instructions(device),
        "amx": bool(caps.get("amx_bf16")),
        "avx512_bf16": bool(caps.get("avx512_bf16")),
        "threads": torch.get_num_threads(),
    }


def peak_tflops(device_name: str, precision: str) -> float | None:
    """Datasheet peak of a known GPU for ``fp32``/``tf32``/``bf16``, or None."""
    for key, peaks in GPU_PEAK_TFLOPS.items():
        if key in device_name:
            return peaks.get(precision)
    return None


# ---------------------------------------------------------------------------------------------- timing
def time_alternating(
    fns: dict, iters: int = 3, warmup: int = 1, cuda: bool = False, clock=time.perf_counter
) -> dict[str, float]:
    """Best seconds of each zero-argument callable, called in turn ``iters`` times after ``warmup`` untimed
    rounds, so that drift in a shared machine's load affects all of them alike.

    ``clock``: wall time by default; ``time.process_time`` (CPU seconds of this process, all threads) gives
    figures that other processes on a busy machine disturb far less, exact with one thread.
    """
    import torch

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    best = {name: float("inf") for name in fns}
    for _ in range(iters):
        for name, fn in fns.items():
            sync()
            t0 = clock()
            fn()
            sync()
            best[name] = min(best[name], clock() - t0)
    return best


def gflop_per_frame(model, img_size: int, seqlen: int = 16) -> float:
    """Forward GFLOP per frame of the network (encoder + decoder; matrix products and convolutions, counted
    as 2 per multiply-add by ``torch.utils.flop_counter``), the body model excluded."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    p = next(model.parameters())
    x = torch.zeros(seqlen, 3, img_size, img_size, device=p.device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.decoder(model.encoder(x, seqlen=seqlen).float())
    finally:
        model.train(was_training)
    return counter.get_total_flops() / seqlen / 1e9


# ---------------------------------------------------------------------------------------------- inference
@contextmanager
def _eager_attention():
    """Swap SDPA for the original's explicit attention inside ``maed.models.attention``."""
    import torch.nn.functional as F

    from maed.models import attention  # start-up: torch (~2 s) stays out of `maed --help`

    def eager(q, k, v):
        attn = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
        return attn.softmax(dim=-1) @ v

    class _F:
        def __getattr__(self, name):
            return eager if name == "scaled_dot_product_attention" else getattr(F, name)

    saved = attention.F
    attention.F = _F()
    try:
        yield
    finally:
        attention.F = saved


@contextmanager
def reference_mode(model):
    """Run ``model`` as the original code computes: explicit softmax attention, the weight standardisation
    recomputed on every forward, channels-first stem pooling (same numbers, the original's speed)."""
    from maed.models.ste import MaxPool2dSame, StdConv2dSame  # start-up: torch (~2 s) stays out of `maed --help`

    switched = [(m, "cache_standardized") for m in model.modules() if isinstance(m, StdConv2dSame)]
    switched += [(m, "channels_last_on_cpu") for m in model.modules() if isinstance(m, MaxPool2dSame)]
    for m, attr in switched:
        setattr(m, attr, False)
    try:
        with _eager_attention():
            yield
    finally:
        for m, attr in switched:
            delattr(m, attr)  # back to the class default


@contextmanager
def _tf32(enabled: bool):
    """TF32 matrix products on or off for the duration (torch keeps them as global flags)."""
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def inference_paths(reference, precisions: list[str], *, channels_last: bool = False, compile: bool = False) -> dict:
    """name -> (model, context factory, precision) for each path; the fast paths are optimised copies of
    ``reference`` (a float32 model in eval mode), which itself runs in :func:`reference_mode`."""
    from maed.models.fast import (  # start-up: torch (~2 s) stays out of `maed --help`
        optimize_for_inference,
        resolve_precision,
    )

    device = next(reference.parameters()).device
    default = resolve_precision("auto", device)
    paths = {REFERENCE: (reference, lambda: _both(reference_mode(reference), _tf32(False)), "fp32")}
    for precision in precisions:
        if precision == "tf32":  # the float32 model with TF32 switched on around each call
            model = optimize_for_inference(copy.deepcopy(reference), precision="fp32")
            paths["tf32"] = (model, lambda: _tf32(True), "tf32")
            continue
        model = optimize_for_inference(copy.deepcopy(reference), precision=precision)
        name = precision + (" (load_model default)" if precision == default else "")
        paths[name] = (model, lambda: _tf32(False), precision)
        if precision == "bf16" and channels_last:
            model = optimize_for_inference(copy.deepcopy(reference), precision="bf16", channels_last=True)
            paths["bf16 channels-last"] = (model, lambda: _tf32(False), "bf16")
    if compile:
        model = optimize_for_inference(copy.deepcopy(reference), precision=default, compile=True)
        paths[f"{default} compiled"] = (model, lambda: _tf32(False), default)
    return paths


@contextmanager
def _both(a, b):
    with a, b:
        yield


def _infer_rows(paths: dict, images, *, iters: int, warmup: int, clock, gflop: float, device_name: str) -> list:
    import torch

    cuda = images.is_cuda
    frames = images.shape[0] * images.shape[1]
    outputs, first_call = {}, {}
    with torch.inference_mode():
        for name, (model, ctx, _) in paths.items():
            t0 = time.perf_counter()
            with ctx():
                outputs[name] = model(images)["verts"].float()
            if cuda:
                torch.cuda.synchronize()
            first_call[name] = time.perf_counter() - t0

        def call(model, ctx):
            def fn():
                with ctx():
                    model(images)

            return fn

        fns = {name: call(model, ctx) for name, (model, ctx, _) in paths.items()}
        best = time_alternating(fns, iters=iters, warmup=warmup, cuda=cuda, clock=clock)
    ref_verts = outputs.get(REFERENCE)
    ref_fps = frames / best[REFERENCE] if REFERENCE in best else None
    rows = []
    for name, (_, _, precision) in paths.items():
        fps = frames / best[name]
        peak = peak_tflops(device_name, precision) if cuda else None
        row = {
            "path": name,
            "precision": precision,
            "seconds_per_forward": best[name],
            "frames_per_s": fps,
            "ratio_vs_reference": fps / ref_fps if ref_fps else None,
            "gflop_per_s": gflop * fps,
            "fraction_of_peak": gflop * fps / (peak * 1e3) if peak else None,
            "first_call_s": first_call[name],
            "max_vertex_diff_mm": float((outputs[name] - ref_verts).abs().max()) * 1e3
            if ref_verts is not None
            else None,
        }
        rows.append(row)
    return rows


def _print_infer(rows: list, variation_mm: float | None) -> None:
    print(f"\n{'path':28s} {'frames/s':>9s} {'vs ref':>7s} {'GFLOP/s':>9s} {'of peak':>8s} {'verts vs ref':>13s}")
    for r in rows:
        ratio = f"{r['ratio_vs_reference']:.2f}x" if r["ratio_vs_reference"] else "-"
        peak = f"{100 * r['fraction_of_peak']:.1f}%" if r["fraction_of_peak"] else "-"
        diff = f"{r['max_vertex_diff_mm']:.2f} mm" if r["max_vertex_diff_mm"] is not None else "-"
        print(f"{r['path']:28s} {r['frames_per_s']:9.2f} {ratio:>7s} {r['gflop_per_s']:9.1f} {peak:>8s} {diff:>13s}")
    if variation_mm is not None:
        print(
            f"(vertex differences are max |v - v_ref| over the clip; the reference's vertices move by up to "
            f"{variation_mm:.1f} mm between its first and last frame, random weights)"
        )


# ---------------------------------------------------------------------------------------------- training
def training_batch(body_model, clips: int, seqlen: int | None, img_size: int, generator) -> dict:
    """A random batch in the training-batch format (``maed.data``), sized for ``body_model``: ``images``
    clips x T x 3 x S x S (or ``image`` without T when ``seqlen`` is None), ``kp_2d`` (..., K, 3),
    ``kp_3d`` (..., K, 4) with full confidence, ``theta`` (..., 3 + 3J + betas), ``w_smpl`` ones."""
    import torch

    lead = (clips,) if seqlen is None else (clips, seqlen)
    K, J, S = body_model.num_output_joints, body_model.num_joints, body_model.num_betas
    kp_2d = torch.rand(*lead, K, 3, generator=generator) * 2 - 1
    kp_2d[..., 2] = 1.0
    kp_3d = torch.randn(*lead, K, 4, generator=generator) * 0.3
    kp_3d[..., 3] = 1.0
    cam = torch.cat([torch.ones(*lead, 1), torch.zeros(*lead, 2)], -1)
    theta = torch.cat([cam, 0.2 * torch.randn(*lead, 3 * J + S, generator=generator)], -1)
    images = torch.randn(*lead, 3, img_size, img_size, generator=generator)
    return {
        "images" if seqlen is not None else "image": images,
        "kp_2d": kp_2d,
        "kp_3d": kp_3d,
        "theta": theta,
        "w_smpl": torch.ones(lead),
    }


def train_step_fn(model, cfg, *, amp: str = "none", run_dir: str | Path):
    """A callable ``step(batch_3d) -> stats`` running one step of the training engine (``Trainer.train_step``:
    forward, MAED loss, backward, optimiser) on clips with 3D labels already in memory.

    ``amp``: ``none`` or ``bf16`` (autocast on the model's device; the engine autocasts on CUDA itself, on
    CPU the same autocast is put around the step here). ``run_dir`` must outlive the callable.
    """
    import contextlib

    import torch

    from maed.train.distributed import DistEnv  # start-up: torch (~2 s) stays out of `maed --help`
    from maed.train.engine import Trainer, TrainSettings  # start-up: torch (~2 s) stays out of `maed --help`
    from maed.train.losses import MAEDLoss  # start-up: torch (~2 s) stays out of `maed --help`
    from maed.train.streams import BatchStream  # start-up: torch (~2 s) stays out of `maed --help`

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
    import torch

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
    import torch

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
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    from maed.data.crop_cache import build_crop_cache  # start-up: torch (~2 s) stays out of `maed --help`
    from maed.data.datasets import VideoDataset  # start-up: torch (~2 s) stays out of `maed --help`
    from maed.data.synthetic import write_synthetic_dataset  # start-up: torch (~2 s) stays out of `maed --help`
    from maed.data.transforms import ClipAugmentation  # start-up: torch (~2 s) stays out of `maed --help`

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


# ---------------------------------------------------------------------------------------------- CLI
def _parse_precisions(text: str | None, device) -> list[str]:
    from maed.models.fast import bf16_matrix_instructions  # start-up: torch (~2 s) stays out of `maed --help`

    if text is None:
        out = ["fp32"] + (["tf32"] if device.type == "cuda" else [])
        return out + (["bf16"] if bf16_matrix_instructions(device) else [])
    out = [p.strip().lower() for p in text.split(",") if p.strip()]
    bad = [p for p in out if p not in ("fp32", "tf32", "bf16")]
    if bad or not out:
        raise ConfigError(f"--precisions {text!r}: expected a comma list of fp32, tf32, bf16")
    if "tf32" in out and device.type != "cuda":
        raise ConfigError("--precisions: tf32 needs a CUDA device")
    return out


def run(args: argparse.Namespace) -> int:
    if args.out:
        args.json = args.out
    # a directory or an unwritable place is refused before any work
    check_output_file(args.json, option="--out" if args.out else "--json", example="bench.json")
    import torch

    from maed.models import build_model  # start-up: torch (~2 s) stays out of `maed --help`
    from maed.utils.device import resolve_device  # start-up: torch (~2 s) stays out of `maed --help`

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    for opt in ("seqlen", "iters"):
        if getattr(args, opt) < 1:
            raise ConfigError(f"--{opt}: expected an integer >= 1")
    precisions = _parse_precisions(args.precisions, device)
    overrides = list(args.overrides) + (["MODEL.ENCODER.GRAD_CHECKPOINT=True"] if args.grad_checkpoint else [])
    cfg = load_config(args.config, overrides)
    clock = time.process_time if args.cpu_time else time.perf_counter
    info = device_summary(device)
    result = {
        "mode": "train" if args.train else "inference",
        "config": args.config,
        "overrides": overrides,
        "device": str(device),
        "device_name": info["name"],
        "device_info": info,
        "torch": torch.__version__,
        "seqlen": args.seqlen,
        "iters": args.iters,
        "clock": "cpu" if args.cpu_time else "wall",
    }
    with tempfile.TemporaryDirectory(prefix="maed_bench_") as tmp:
        body_dir = args.body_model_dir or write_random_smpl_dir(Path(tmp) / "smpl_standin", seed=0)
        torch.manual_seed(0)
        model = build_model(cfg, body_model_dir=body_dir).to(device)
        n_params = sum(p.numel() for p in model.parameters())
        side = cfg.DATASET.WIDTH
        gflop = gflop_per_frame(model, side, args.seqlen)
        print(
            f"model: {args.config} ({n_params / 1e6:.1f} M parameters, {gflop:.2f} GFLOP/frame, {side} px), "
            f"{info['name']} (bf16 matrix instructions: {info['bf16_matrix'] or 'none'}"
            + (f"; AMX {_yes(info['amx'])}, AVX512-BF16 {_yes(info['avx512_bf16'])}" if "amx" in info else "")
            + (f"; {info['threads']} threads" if "threads" in info else "")
            + f"), torch {torch.__version__}"
        )
        result.update(params=n_params, gflop_per_frame=gflop, img_size=side)
        if args.train:
            result.update(_run_train(args, cfg, model, device, precisions, clock, Path(tmp)))
        else:
            result.update(_run_inference(args, model, device, precisions, clock, gflop, info["name"]))
    atomic_write_text(args.json, json.dumps(result, indent=2))
    print(f"\nwrote {args.json}")
    return 0


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _run_inference(args, model, device, precisions, clock, gflop, device_name) -> dict:
    import torch

    batch = args.batch or 1
    model.eval()
    paths = inference_paths(model, precisions, channels_last=args.channels_last, compile=args.compile)
    if args.no_reference:
        paths.pop(REFERENCE)
    side = model.encoder.img_size if hasattr(model.encoder, "img_size") else 224
    images = torch.randn(batch, args.seqlen, 3, side, side, generator=torch.Generator().manual_seed(0)).to(device)
    print(f"inference, {batch} clip(s) x {args.seqlen} frames, body model included")
    rows = _infer_rows(
        paths, images, iters=args.iters, warmup=args.warmup, clock=clock, gflop=gflop, device_name=device_name
    )
    variation = None
    if REFERENCE in paths:
        with torch.inference_mode(), reference_mode(model):
            verts = model(images[:1])["verts"][0]
        variation = float((verts[-1] - verts[0]).abs().max()) * 1e3
    _print_infer(rows, variation)
    return {"batch": batch, "results": rows, "reference_vertex_motion_mm": variation}


def _run_train(args, cfg, model, device, precisions, clock, tmp: Path) -> dict:
    import os

    import torch

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
    if args.loader_batches > 0:
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

    batch = training_batch(model.body_model, clips, args.seqlen, cfg.DATASET.WIDTH, torch.Generator().manual_seed(0))
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
