"""``maed train``: one process, or one per device under ``torchrun`` / ``srun`` (ORIGINAL.md §6)."""

from __future__ import annotations

import argparse

from maed.config import preset_names
from maed.errors import AssetError, ConfigError

EPILOG = """\
examples (RUN_DIR: the run directory a run prints when it ends; STAGE1_RUN_DIR: a stage-1 run's):
  maed train --config stage1                                      # one process, CPU or GPU
  torchrun --nproc_per_node=8 -m maed train --config stage2 --pretrained STAGE1_RUN_DIR/checkpoints/last.pt
  torchrun --nnodes=2 --node_rank=0 --master_addr=HOST --master_port=29500 --nproc_per_node=4 \\
           -m maed train --config configs/config_stage2.yaml TRAIN.BATCH_SIZE_IMG=14
  sbatch scripts/slurm_train.sh 2 4 stage2 --pretrained STAGE1_RUN_DIR/checkpoints/last.pt   # nodes, GPUs per node
  maed train --resume RUN_DIR                                     # continue where it stopped
  maed train --config synth_tiny --max-steps 100                  # on `maed synth --out data/synth` (docs/SYNTH.md)

A run writes OUTPUT_DIR/<timestamp>_<EXP_NAME>/ (or --out): config.yaml, train_log.txt, log.jsonl,
tb/ (with tensorboard installed), best.txt (the best validation PA-MPJPE, mm) and checkpoints/ (last.pt,
best.pt by validation PA-MPJPE, epoch_XXXX.pt every SAVE_FREQ epochs). SIGTERM or SIGUSR1 (Slurm
preemption) saves last.pt and stops with exit status 143, so that `maed train ... && maed eval ...` does
not go on; `maed train --resume RUN_DIR` continues the run.

exit status: 0 finished (or --max-steps reached), 2 a user error (one line), 130 Ctrl-C,
143 stopped by SIGTERM/SIGUSR1 after saving last.pt.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train MAED (stage 1 on images, stage 2 on videos and images; multi-GPU, multi-node)",
        description="Train MAED. Under torchrun or srun each process drives one device (DDP).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        default=None,
        help="YAML file (the original's config_stage1/2.yaml work) or preset: " + ", ".join(preset_names()),
    )
    p.add_argument(
        "--pretrained",
        default=None,
        help="stage-1 checkpoint whose encoder initialises this run (decoder re-initialised); "
        "what was and was not loaded is logged",
    )
    p.add_argument(
        "--init-weights",
        default=None,
        metavar="PATH",
        help="local ImageNet weights for the encoder: timm's vit_base_r50_s16_224 (ImageNet-21k) "
        "for 'ste' (first NUM_BLOCKS blocks), torchvision's ResNet-50 for 'cnn'; "
        "never downloaded (same as MODEL.ENCODER.INIT_WEIGHTS=PATH)",
    )
    p.add_argument(
        "--resume",
        default=None,
        metavar="RUN_DIR",
        help="continue a run from RUN_DIR/checkpoints/last.pt with its config (overrides still apply)",
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="run directory to create (default OUTPUT_DIR/<timestamp>_<EXP_NAME>); never overwritten",
    )
    p.add_argument(
        "--device",
        default=None,
        help="cpu, cuda, cuda:N (default: DEVICE from the config, cpu when CUDA is absent)",
    )
    p.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="stop with a checkpoint once this many steps are done in total (resumable)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, e.g. TRAIN.BATCH_SIZE_IMG=32 TRAIN.AMP=bf16",
    )
    p.set_defaults(func=run)


def _is_rank0() -> bool:
    import os

    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))) == 0


def run(args: argparse.Namespace) -> int:
    import sys

    from maed.train.run import train  # start-up: torch (~2 s) stays out of `maed --help`
    from maed.train.stopping import TrainingStopped  # start-up: torch (~2 s) stays out of `maed --help`

    if args.config is None and args.resume is None:
        raise ConfigError(f"give --config (a YAML file or preset: {', '.join(preset_names())}) or --resume RUN_DIR")
    overrides = list(args.overrides)
    if args.init_weights:
        from pathlib import Path

        if not Path(args.init_weights).is_file():
            raise AssetError(
                f"--init-weights: {args.init_weights} not found (a local timm/torchvision weights file; "
                "nothing is downloaded)"
            )
        overrides.append(f"MODEL.ENCODER.INIT_WEIGHTS={args.init_weights}")
    try:
        run_dir = train(
            args.config,
            overrides=overrides,
            pretrained=args.pretrained,
            resume=args.resume,
            out=args.out,
            device=args.device,
            progress=not args.no_progress,
            max_steps=args.max_steps,
        )
    except TrainingStopped as stop:
        if _is_rank0():
            print(f"maed train: {stop}", file=sys.stderr)
        return stop.exit_code
    if _is_rank0():
        print(f"run directory: {run_dir}")
    return 0
