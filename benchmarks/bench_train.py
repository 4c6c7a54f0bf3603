"""Training benchmark: frames/s of one training step (forward + loss + backward + Adam step) through the
engine's own ``Trainer.train_step`` (``maed.bench.train.train_step_fn``).

The batch is generated in the training-batch format (``--clips`` clips of ``--seqlen`` frames with 3D labels,
sized for the config's crop size and body model), already in memory, so data loading is not timed
(``maed bench --train`` times the loader beside the step). Weights are random; the SMPL layer is a random
stand-in of SMPL's size unless ``--body-model-dir`` is given. Every dtype is timed in alternation; TF32 is
off on CUDA so that fp32 means fp32. The original reaches 426 frames/s (fp32) and 719 (bf16 autocast) on
one H100 with 8 clips of 16 frames.

    python benchmarks/bench_train.py --clips 1 --out bench_train.json          # CPU
    python benchmarks/bench_train.py --clips 8 --device cuda --out bench_train_gpu.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="stage2", help="preset or YAML (default stage2)")
    p.add_argument("--clips", type=int, default=1, help="3D clips per step (default 1)")
    p.add_argument("--seqlen", type=int, default=16, help="frames per clip (default 16)")
    p.add_argument("--iters", type=int, default=3, help="timed steps per setting, best kept (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--dtypes", default=None, help="comma list of fp32,bf16 (default: fp32 on CPU, both on GPU)")
    p.add_argument("--body-model-dir", default=None, help="real SMPL files instead of a random stand-in")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    args = p.parse_args(argv)

    import torch

    from maed.bench.common import device_summary, time_alternating
    from maed.bench.train import train_step_fn, training_batch
    from maed.config import load_config
    from maed.models import build_model
    from maed.testing.smpl import write_random_smpl_dir
    from maed.utils.device import resolve_device

    device = resolve_device(args.device)
    dtypes = (args.dtypes or ("fp32,bf16" if device.type == "cuda" else "fp32")).split(",")
    if any(d not in ("fp32", "bf16") for d in dtypes):
        p.error(f"--dtypes {args.dtypes}: expected fp32 and/or bf16")
    if args.clips < 1:
        p.error("--clips: expected at least 1")
    cfg = load_config(args.config, args.overrides)
    frames = args.clips * args.seqlen
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32: no TF32 matmuls or convolutions
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = cfg.CUDNN.BENCHMARK

    with tempfile.TemporaryDirectory() as tmp:
        body_dir = args.body_model_dir or write_random_smpl_dir(Path(tmp) / "smpl_standin", seed=0)
        steps, peak = {}, {}
        for dtype in dtypes:
            torch.manual_seed(0)
            model = build_model(cfg, body_model_dir=body_dir).to(device)
            batch = training_batch(
                model.body_model,
                args.clips,
                args.seqlen,
                cfg.DATASET.WIDTH,
                torch.Generator().manual_seed(0),
                encoder=model.encoder,
            )
            step = train_step_fn(model, cfg, amp="bf16" if dtype == "bf16" else "none", run_dir=tmp)
            steps[dtype] = lambda step=step, batch=batch: step(batch)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        best = time_alternating(steps, iters=args.iters, warmup=args.warmup, cuda=device.type == "cuda")
        if device.type == "cuda":
            peak = {"peak_memory_gb_all_settings": torch.cuda.max_memory_allocated(device) / 2**30}
    rows = [{"dtype": d, "seconds_per_step": s, "frames_per_s": frames / s} for d, s in best.items()]

    result = {
        "config": args.config,
        "overrides": args.overrides,
        "device": str(device),
        **{f"device_{k}": v for k, v in device_summary(device).items()},
        "torch": torch.__version__,
        "clips": args.clips,
        "seqlen": args.seqlen,
        "frames_per_step": frames,
        "iters": args.iters,
        "results": rows,
        **peak,
    }
    info = device_summary(device)
    print(
        f"training step (forward + loss + backward + Adam), {args.config}, {args.clips} clips x {args.seqlen} "
        f"frames, {info['name']} (bf16 matrix: {info['bf16_matrix']}), torch {torch.__version__}"
    )
    print(f"{'dtype':6s} {'s/step':>9s} {'frames/s':>10s}")
    for r in rows:
        print(f"{r['dtype']:6s} {r['seconds_per_step']:9.3f} {r['frames_per_s']:10.2f}")
    if args.out:
        from maed.utils.io import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=2))
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
