"""``maed export``: write a trained model in another form. One subcommand per format:

maed export checkpoint RUN_DIR/checkpoints/best.pt --out checkpoints/maed_kp_anny.pt  # the shipped form
maed export onnx --checkpoint RUN_DIR/checkpoints/best.pt --out model.onnx                # other runtimes
maed export onnx --checkpoint model_best.pth.tar --config configs/config_stage2.yaml \\
                 --body-model-dir data/smpl_data --out model.onnx                          # the authors' model

(RUN_DIR: the directory of a `maed train` run)
"""

from __future__ import annotations

import argparse

from maed.errors import ConfigError, OutputError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a trained model in another form (a shipped checkpoint, ONNX)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    formats = p.add_subparsers(dest="format", metavar="FORMAT")
    register_checkpoint(formats)
    register_onnx(formats)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def register_onnx(formats: argparse._SubParsersAction) -> None:
    """``maed export onnx``."""
    o = formats.add_parser(
        "onnx",
        help="the model with its body model as one ONNX graph (onnxruntime, TensorRT, ...)",
        description="Export a checkpoint (the authors' release or ours) to ONNX: input `images` N x T x 3 x S x S "
        "(or `keypoints` N x T x K x C for the keypoints encoder), outputs `theta`, `kp_3d`, `kp_2d`, `verts`; "
        "N and T dynamic (T up to MODEL.ENCODER.MAX_SEQLEN for attention with a temporal embedding). After "
        "writing, the graph is run in onnxruntime on a random clip and compared with PyTorch (float32). "
        "See docs/SPEED.md.",
    )
    o.add_argument("--checkpoint", required=True, help="checkpoint file (authors' model_best.pth.tar or ours)")
    o.add_argument("--config", default=None, help="config for checkpoints without one (the authors'): preset or YAML")
    o.add_argument("--body-model-dir", default=None, help="SMPL files (default: the config's PATHS.BODY_MODEL_DIR)")
    o.add_argument("--out", required=True, help="the .onnx file to write")
    o.add_argument("--seqlen", type=int, default=4, help="frames of the clip traced and checked (default 4)")
    o.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    o.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    o.add_argument(
        "--tolerance-mm", type=float, default=1.0, help="largest vertex difference accepted by the check (default 1)"
    )
    o.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    o.set_defaults(func=run_onnx)


def run_onnx(args: argparse.Namespace) -> int:
    from pathlib import Path

    from maed.export.onnx import (  # start-up: torch (~2 s) stays out of `maed --help`
        ExportError,
        compare_with_pytorch,
        example_clip,
        export_onnx,
    )
    from maed.models import load_model  # start-up: torch (~2 s) stays out of `maed --help`

    out = Path(args.out)
    if out.is_dir():
        raise OutputError(f"--out {out} is a directory; give the .onnx file to write")
    if args.seqlen < 1:
        raise ConfigError("--seqlen: expected an integer >= 1")
    model = load_model(
        args.checkpoint,
        body_model_dir=args.body_model_dir,
        config=args.config,
        overrides=args.overrides,
        optimize=False,
    )
    print(f"exporting {args.checkpoint} to {out} (torch.onnx dynamo exporter, opset {args.opset}) ...")
    export_onnx(model, out, example_shape=(2, args.seqlen), opset=args.opset)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    if args.no_check:
        return 0
    max_t = model.encoder.max_seqlen if getattr(model.encoder, "has_temp_embed", False) else args.seqlen
    images = example_clip(model, 1, min(args.seqlen + 1, max_t), seed=1)
    diffs = compare_with_pytorch(out, model, images)
    verts_mm, kp_mm = diffs["verts"] * 1e3, diffs["kp_3d"] * 1e3
    print(
        f"onnxruntime vs PyTorch float32 on a random {tuple(images.shape[:2])} clip: vertices {verts_mm:.4f} mm, "
        f"3D joints {kp_mm:.4f} mm, theta {diffs['theta']:.2e}, 2D joints {diffs['kp_2d']:.2e} (max abs)"
    )
    if not verts_mm <= args.tolerance_mm:
        raise ExportError(
            f"the exported graph's vertices differ from PyTorch's by {verts_mm:.3f} mm (> {args.tolerance_mm} mm); "
            f"{out} was written but should not be trusted"
        )
    return 0


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
    c.add_argument("source", help="a training checkpoint, e.g. RUN_DIR/checkpoints/best.pt")
    c.add_argument("--out", required=True, help="the file to write, e.g. checkpoints/maed_kp_anny.pt")
    c.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "float16", "float32"),
        help="parameters: float16, float32, or auto (default): float16 if within --tolerance-mm, else float32",
    )
    c.add_argument(
        "--train-command",
        default=None,
        help="the command that trains this model, recorded as given (default: maed train --config RUN_DIR/config.yaml)",
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

    from maed.export.checkpoint import export_checkpoint  # start-up: torch (~2 s) stays out of `maed --help`

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
