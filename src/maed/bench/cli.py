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
import json
import tempfile
import time
from pathlib import Path

from maed.config import load_config
from maed.errors import ConfigError
from maed.testing.smpl import write_random_smpl_dir
from maed.utils.io import atomic_write_text, check_output_file


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
    p.add_argument("--compile", action="store_true", help="also time the fastest native path with torch.compile")
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

    # start-up: torch (~2 s) stays out of `maed --help`
    from maed.bench.common import device_summary, gflop_per_frame, input_description
    from maed.bench.infer import run_inference  # start-up: torch (~2 s) stays out of `maed --help`
    from maed.bench.train import run_training  # start-up: torch (~2 s) stays out of `maed --help`
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
            f"model: {args.config} ({n_params / 1e6:.1f} M parameters, {gflop:.2f} GFLOP/frame, "
            f"{input_description(model, side)}), "
            f"{info['name']} (bf16 matrix instructions: {info['bf16_matrix'] or 'none'}"
            + (f"; AMX {_yes(info['amx'])}, AVX512-BF16 {_yes(info['avx512_bf16'])}" if "amx" in info else "")
            + (f"; {info['threads']} threads" if "threads" in info else "")
            + f"), torch {torch.__version__}"
        )
        result.update(params=n_params, gflop_per_frame=gflop, img_size=side)
        if args.train:
            result.update(run_training(args, cfg, model, device, precisions, clock, Path(tmp)))
        else:
            result.update(run_inference(args, model, device, precisions, clock, gflop, info["name"]))
    atomic_write_text(args.json, json.dumps(result, indent=2))
    print(f"\nwrote {args.json}")
    return 0


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
