"""Architecture candidates: parameters, GFLOP per frame, training-step and inference frames/s of smaller
members of the MAED family, all in one process so that their ratios compare like with like.

Each candidate is a set of config overrides on top of ``--config`` (default ``synth_tiny``). The training
step is the engine's own (``Trainer.train_step``: forward, MAED loss, backward, Adam) on ``--clips`` clips of
``--seqlen`` frames already in memory; inference is one clip of ``--seqlen`` frames in eval mode, body model
included. The body model is the config's (``--body smpl`` uses a random SMPL-sized stand-in).

    python benchmarks/bench_arch.py --out results/bench_arch.json
    python benchmarks/bench_arch.py --only t1,t2 --amp none,bf16
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def _arch(layers: str, width: int, embed: int, blocks: int, hidden: int, mlp: float = 4.0, px: int = 128) -> list[str]:
    return [
        f"DATASET.WIDTH={px}",
        f"DATASET.HEIGHT={px}",
        f"MODEL.ENCODER.BACKBONE_LAYERS={layers}",
        f"MODEL.ENCODER.BACKBONE_WIDTH={width}",
        f"MODEL.ENCODER.EMBED_DIM={embed}",
        f"MODEL.ENCODER.NUM_BLOCKS={blocks}",
        f"MODEL.ENCODER.MLP_RATIO={mlp}",
        "MODEL.ENCODER.NUM_HEADS=4",
        "MODEL.ENCODER.SPA_TEMP_MODE=parallel",
        f"MODEL.DECODER.HIDDEN_DIM={hidden}",
    ]


#: name -> overrides (4 heads and parallel attention throughout)
CANDIDATES: dict[str, list[str]] = {
    "t1": _arch("[1,1,1]", 32, 192, 2, 256),
    "t2": _arch("[1,1,1]", 32, 256, 3, 512),
    "t3": _arch("[2,2,2]", 32, 256, 3, 512),
    "t4": _arch("[1,1,1]", 32, 256, 3, 512, px=112),
    "t5": _arch("[2,2,2]", 32, 256, 3, 512, px=96),
    "t6": _arch("[1,1,1]", 32, 256, 4, 512, mlp=2.0, px=96),
    "t7": _arch("[2,2,2]", 64, 256, 3, 512),
}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="synth_tiny", help="base preset or YAML (default synth_tiny)")
    p.add_argument("--only", default=None, help="comma list of candidate names (default: all)")
    p.add_argument("--body", default=None, help="smpl: random SMPL-sized stand-in instead of the config's body")
    p.add_argument("--clips", type=int, default=4, help="clips per training step (default 4)")
    p.add_argument("--seqlen", type=int, default=16, help="frames per clip (default 16)")
    p.add_argument("--amp", default="none", help="comma list of none,bf16 for the training step (default none)")
    p.add_argument("--iters", type=int, default=3, help="timed steps per setting, best kept (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    p.add_argument("--channels-last", action="store_true", help="run the convolutional backbone channels-last")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument(
        "--cpu-time",
        action="store_true",
        help="time in CPU seconds of this process (robust on a shared machine; use with --threads 1)",
    )
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides applied to every candidate")
    args = p.parse_args(argv)

    import torch

    from maed.bench.common import device_summary, gflop_per_frame, time_alternating
    from maed.bench.train import train_step_fn, training_batch
    from maed.body import build_body_model
    from maed.config import load_config
    from maed.models import build_model
    from maed.testing.smpl import write_random_smpl_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.process_time if args.cpu_time else time.perf_counter
    names = args.only.split(",") if args.only else list(CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        p.error(f"--only: unknown {', '.join(unknown)}; candidates: {', '.join(CANDIDATES)}")
    amps = args.amp.split(",")
    tmp = tempfile.TemporaryDirectory(prefix="maed_bench_arch_")
    if args.body == "smpl":
        body = build_body_model("smpl", model_dir=write_random_smpl_dir(Path(tmp.name) / "smpl", seed=0))
    else:
        body = _config_body_model(load_config(args.config, args.overrides))
    g = torch.Generator().manual_seed(0)
    rows, train_fns, infer_fns = {}, {}, {}
    for name in names:
        cfg = load_config(args.config, [*args.overrides, *CANDIDATES[name]])
        if args.body == "smpl":
            cfg.MODEL.BODY_MODEL = "smpl"
        size = cfg.DATASET.WIDTH
        torch.manual_seed(0)
        model = build_model(cfg, body_model=body)
        if args.channels_last:
            model.encoder.patch_embed.to(memory_format=torch.channels_last)
        n_params = sum(p.numel() for p in model.parameters())
        rows[name] = {
            "name": name,
            "overrides": CANDIDATES[name],
            "img_size": size,
            "params_m": n_params / 1e6,
            "fp32_mb": n_params * 4 / 1e6,
            "gflop_per_frame": gflop_per_frame(model, size, args.seqlen),
        }
        batch = training_batch(body, args.clips, args.seqlen, size, g, encoder=model.encoder)
        for amp in amps:
            step = train_step_fn(model, cfg, amp=amp, run_dir=tmp.name)
            train_fns[(name, amp)] = lambda step=step, batch=batch: step(batch)
        clip = torch.randn(1, args.seqlen, 3, size, size, generator=g)

        def infer(model=model, clip=clip):
            model.eval()
            with torch.inference_mode():
                model(clip)

        infer_fns[name] = infer
    # every setting in turn, so that load drift on a shared machine touches all candidates alike
    train_best = time_alternating(train_fns, iters=args.iters, warmup=args.warmup, clock=clock)
    infer_best = time_alternating(infer_fns, iters=args.iters, warmup=args.warmup, clock=clock)
    for (name, amp), sec in train_best.items():
        rows[name][f"train_{amp}_frames_per_s"] = args.clips * args.seqlen / sec
    for name, sec in infer_best.items():
        rows[name]["infer_fp32_frames_per_s"] = args.seqlen / sec
    for row in rows.values():
        print(_format_row(row, amps))
    result = {
        "machine": device_summary(torch.device("cpu")),
        "config": args.config,
        "clips": args.clips,
        "seqlen": args.seqlen,
        "body_model": type(body).__name__,
        "threads": torch.get_num_threads(),
        "clock": "cpu" if args.cpu_time else "wall",
        "rows": list(rows.values()),
    }
    if args.out:
        from maed.utils.io import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=2))
    tmp.cleanup()
    return result


def _config_body_model(cfg):
    """The config's body model (``MODEL.BODY_MODEL`` with ``MODEL.BODY_RIG``)."""
    from maed.body import body_model_from_config

    return body_model_from_config(cfg)


def _format_row(row: dict, amps: list[str]) -> str:
    train = "  ".join(f"train {a} {row[f'train_{a}_frames_per_s']:7.1f}" for a in amps)
    return (
        f"{row['name']:8s} {row['img_size']:4d}px {row['params_m']:6.2f} M ({row['fp32_mb']:5.1f} MB fp32) "
        f"{row['gflop_per_frame']:6.3f} GFLOP/frame  {train}  infer fp32 {row['infer_fp32_frames_per_s']:7.1f} "
        "frames/s"
    )


if __name__ == "__main__":
    main()
