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
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
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


def time_forwards(model, images, settings, iters: int = 3, warmup: int = 1, autocast=None) -> dict[str, float]:
    """Best seconds per forward of each ``(name, context factory or None)`` setting, timed in alternation so
    that drift in the machine's load affects all settings alike. ``autocast``: a context around all of it."""
    import torch

    sync = torch.cuda.synchronize if images.is_cuda else (lambda: None)
    settings = [(name, ctx or nullcontext) for name, ctx in settings]
    best = {name: float("inf") for name, _ in settings}
    with torch.inference_mode(), autocast or nullcontext():
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


def device_summary(device) -> dict:
    """Name and matrix-instruction capabilities of a device: ``name``, ``bf16_matrix`` (AMX, AVX512-BF16,
    or the GPU's tensor cores), ``threads``."""
    import torch

    if device.type == "cuda":
        return {"name": torch.cuda.get_device_name(device), "bf16_matrix": "tensor cores", "threads": None}
    caps = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    if caps.get("amx_bf16"):
        matrix = "AMX"
    elif caps.get("avx512_bf16"):
        matrix = "AVX512-BF16"
    else:
        matrix = "none"
    return {"name": _cpu_name(), "bf16_matrix": matrix, "threads": torch.get_num_threads()}


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
            model.decoder(model.encoder(x, seqlen=seqlen))
    finally:
        model.train(was_training)
    return counter.get_total_flops() / seqlen / 1e9


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
    from torch.utils.data import DataLoader

    from maed.train.distributed import DistEnv
    from maed.train.engine import Trainer, TrainSettings
    from maed.train.losses import MAEDLoss
    from maed.train.streams import BatchStream

    device = next(model.parameters()).device
    settings = TrainSettings.from_config(cfg)
    settings.amp = amp
    trainer = Trainer(
        model=model,
        criterion=MAEDLoss.from_config(cfg.LOSS),
        # the trainer needs a stream only to size an epoch; the steps take their batches as arguments
        streams={"3d": BatchStream(DataLoader([0], batch_size=1), name="3d", seed=0)},
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
    from maed.utils.io import atomic_write_text

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
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
        for name, sec in time_forwards(model, images, settings, args.iters, args.warmup, autocast).items():
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
