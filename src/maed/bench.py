"""``maed bench``: inference speed of a MAED model on a generated clip.

Runs without any licence-gated file: unless ``--body-model-dir`` is given, the SMPL layer is a random
stand-in written to a temporary directory (same sizes as SMPL: 6890 vertices, 24 joints), and the
weights are random. The reference row runs the same network with the original's eager attention
(explicit ``softmax(q k^T / sqrt(d)) v``) in the same process, so the reported ratio compares like
with like on the same machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="inference frames/s of the stage-2 model on a generated clip",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", default="stage2", help="preset name or YAML file (default: stage2)")
    p.add_argument("--batch", type=int, default=1, help="clips per forward (default 1)")
    p.add_argument("--seqlen", type=int, default=16, help="frames per clip (default 16)")
    p.add_argument("--iters", type=int, default=3, help="timed forwards per setting, best kept (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed forwards first (default 1)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    p.add_argument("--dtypes", default=None, help="comma list of fp32,bf16 (default: fp32 on CPU, fp32,bf16 on GPU)")
    p.add_argument("--no-reference", action="store_true", help="skip the eager-attention reference row")
    p.add_argument("--body-model-dir", default=None, help="use real SMPL files instead of a random stand-in")
    p.add_argument("--out", default="results/bench.json", help="JSON results file (default results/bench.json)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.set_defaults(func=run)


@contextmanager
def _eager_attention():
    """Swap SDPA for the original's explicit attention inside ``maed.models.attention``."""
    import torch.nn.functional as F

    from maed.models import attention

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


def _time_forwards(model, images, settings, iters: int, warmup: int, autocast) -> dict[str, float]:
    """Best seconds per forward of each setting, timed in alternation so that drift in the machine's load
    affects all settings alike."""
    import torch

    sync = torch.cuda.synchronize if images.is_cuda else (lambda: None)
    best = {name: float("inf") for name, _ in settings}
    with torch.inference_mode(), autocast:
        for _name, ctx in settings:
            with ctx():
                for _ in range(warmup):
                    model(images)
        for _ in range(iters):
            for name, ctx in settings:
                with ctx():
                    sync()
                    t0 = time.perf_counter()
                    model(images)
                    sync()
                    best[name] = min(best[name], time.perf_counter() - t0)
    return best


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(args: argparse.Namespace) -> int:
    import torch

    from maed.body.synthetic import write_random_smpl_dir
    from maed.errors import ConfigError
    from maed.models import build_model
    from maed.utils.device import resolve_device
    from maed.utils.io import atomic_write_text

    device = resolve_device(args.device)
    dtypes = (args.dtypes or ("fp32,bf16" if device.type == "cuda" else "fp32")).split(",")
    unknown = [d for d in dtypes if d not in ("fp32", "bf16")]
    if unknown:
        raise ConfigError(f"--dtypes: unknown {', '.join(unknown)}; expected fp32 and/or bf16")
    with tempfile.TemporaryDirectory() as tmp:
        body_dir = args.body_model_dir or write_random_smpl_dir(Path(tmp) / "smpl_standin", seed=0)
        torch.manual_seed(0)
        model = build_model(args.config, body_model_dir=body_dir, overrides=args.overrides).to(device).eval()
    images = torch.randn(args.batch, args.seqlen, 3, 224, 224, device=device)
    frames = args.batch * args.seqlen

    with torch.inference_mode():
        out = model(images)
    print(
        f"model: {args.config} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters), "
        f"device {device}, clip {args.batch} x {args.seqlen} frames, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    for k, v in out.items():
        print(f"  {k:7s} {tuple(v.shape)}")

    rows = []
    for dtype in dtypes:
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if dtype == "bf16" else nullcontext()
        settings = [("maed", nullcontext)]
        if not args.no_reference:
            settings.append(("reference (eager attention)", _eager_attention))
        for name, sec in _time_forwards(model, images, settings, args.iters, args.warmup, autocast).items():
            rows.append({"impl": name, "dtype": dtype, "seconds_per_forward": sec, "frames_per_s": frames / sec})
    ref = {r["dtype"]: r["frames_per_s"] for r in rows if r["impl"].startswith("reference")}
    print(f"\n{'implementation':30s} {'dtype':6s} {'frames/s':>10s} {'vs reference':>13s}")
    for r in rows:
        ratio = r["frames_per_s"] / ref[r["dtype"]] if r["dtype"] in ref else None
        r["ratio_vs_reference"] = ratio
        ratio_s = f"{ratio:.2f}x" if ratio else "-"
        print(f"{r['impl']:30s} {r['dtype']:6s} {r['frames_per_s']:10.2f} {ratio_s:>13s}")

    result = {
        "config": args.config,
        "overrides": args.overrides,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "seqlen": args.seqlen,
        "iters": args.iters,
        "torch": torch.__version__,
        "output_shapes": {k: list(v.shape) for k, v in out.items()},
        "results": rows,
    }
    atomic_write_text(args.out, json.dumps(result, indent=2))
    print(f"\nwrote {args.out}")
    return 0
