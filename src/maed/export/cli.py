"""``maed export``: write a trained model in a format other tools read.

maed export onnx --checkpoint CK [--config CFG] [--body-model-dir DIR] --out model.onnx
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a trained model for other runtimes (ONNX)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    formats = p.add_subparsers(dest="format", metavar="FORMAT")
    o = formats.add_parser(
        "onnx",
        help="the model with its body model as one ONNX graph (onnxruntime, TensorRT, ...)",
        description="Export a checkpoint (the authors' release or ours) to ONNX: input `images` N x T x 3 x S x S, "
        "outputs `theta`, `kp_3d`, `kp_2d`, `verts`; N and T dynamic (T up to MODEL.ENCODER.MAX_SEQLEN for "
        "attention with a temporal embedding). After writing, the graph is run in onnxruntime on a random "
        "clip and compared with PyTorch (float32). See docs/SPEED.md.",
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
    p.set_defaults(func=lambda args: p.print_help() or 2)


def run_onnx(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from maed.errors import ConfigError, OutputError
    from maed.export.onnx import ExportError, compare_with_pytorch, export_onnx
    from maed.models import load_model

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
    side = getattr(model.encoder, "img_size", 224)
    max_t = model.encoder.max_seqlen if getattr(model.encoder, "has_temp_embed", False) else args.seqlen
    images = torch.randn(1, min(args.seqlen + 1, max_t), 3, side, side, generator=torch.Generator().manual_seed(1))
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
