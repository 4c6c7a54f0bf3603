"""``maed export``: write a trained model in another form. One subcommand per format:

maed export checkpoint RUN/checkpoints/best.pt --out checkpoints/maed_tiny_synth.pt   (the shipped form)
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a trained model in another form (a shipped checkpoint)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    formats = p.add_subparsers(dest="format", metavar="FORMAT")
    register_checkpoint(formats)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def register_checkpoint(formats: argparse._SubParsersAction) -> None:
    """``maed export checkpoint``."""
    c = formats.add_parser(
        "checkpoint",
        help="a training checkpoint without its training state, with provenance (the shipped model's form)",
        description="Keep the weights and config of a `maed train` checkpoint (no optimizer state), optionally "
        "in float16, and record where they come from: the training command, seed, data (database checksums, "
        "maed synth arguments) and metrics. The result loads with load_model / --checkpoint like any "
        "checkpoint. Before writing, the exported model is run beside the original on a probe clip; vertices "
        "further apart than --tolerance-mm are an error and nothing is written.",
    )
    c.add_argument("source", help="a training checkpoint, e.g. results/<run>/checkpoints/best.pt")
    c.add_argument("--out", required=True, help="the file to write, e.g. checkpoints/maed_tiny_synth.pt")
    c.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "float16", "float32"),
        help="parameters: float16, float32, or auto (default): float16 if within --tolerance-mm, else float32",
    )
    c.add_argument(
        "--train-command",
        default=None,
        help="the command that trains this model, recorded as given (default: maed train --config <run>/config.yaml)",
    )
    c.add_argument(
        "--metrics",
        action="append",
        default=[],
        metavar="METRICS_JSON",
        help="a `maed eval` metrics.json to record (repeatable)",
    )
    c.add_argument("--body-model-dir", default=None, help="SMPL files, for an SMPL model (Anny needs none)")
    c.add_argument("--tolerance-mm", type=float, default=1.0, help="largest vertex difference accepted (default 1 mm)")
    c.set_defaults(func=run_checkpoint)


def run_checkpoint(args: argparse.Namespace) -> int:
    import shlex
    from pathlib import Path

    from maed.export.checkpoint import export_checkpoint

    provenance = export_checkpoint(
        args.source,
        args.out,
        dtype=args.dtype,
        train_command=args.train_command,
        metrics=args.metrics,
        tolerance_mm=args.tolerance_mm,
        body_model_dir=args.body_model_dir,
        export_command=shlex.join(_command(args)),
    )
    size = Path(args.out).stat().st_size / 1e6
    print(
        f"wrote {args.out} ({size:.1f} MB, {provenance['weights_dtype']} weights; vertices within "
        f"{provenance['max_vertex_difference_mm']:.4f} mm of {args.source} on a probe clip; tried: "
        + ", ".join(f"{k} {v:.4f} mm" for k, v in provenance["vertex_difference_mm"].items())
        + ")"
    )
    return 0


def _command(args: argparse.Namespace) -> list[str]:
    """This export as a command line, every option spelled out (what the provenance records)."""
    argv = ["maed", "export", "checkpoint", args.source, "--out", args.out, "--dtype", args.dtype]
    argv += ["--tolerance-mm", str(args.tolerance_mm)]
    if args.train_command is not None:
        argv += ["--train-command", args.train_command]
    for path in args.metrics:
        argv += ["--metrics", path]
    if args.body_model_dir is not None:
        argv += ["--body-model-dir", args.body_model_dir]
    return argv
