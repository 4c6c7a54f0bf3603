"""``maed bench`` (inference): the paths ``load_model`` can return against the reference path, which computes
as the original code does (float32, explicit softmax attention, weight standardisation on every forward,
channels-first pooling)."""

from __future__ import annotations

import copy
import time
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from maed.bench.common import peak_tflops, random_clips, time_alternating
from maed.models import attention
from maed.models.fast import DEFAULT_PRECISION, optimize_for_inference, resolve_precision
from maed.models.ste import MaxPool2dSame, StdConv2dSame

REFERENCE = "reference"


@contextmanager
def _eager_attention():
    """Swap SDPA for the original's explicit attention inside ``maed.models.attention``."""

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
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def inference_paths(reference, precisions: list[str], *, channels_last: bool = False, compile: bool = False) -> dict:
    """name -> (model, context factory, precision) for each path; the fast paths are optimised copies of
    ``reference`` (a float32 model in eval mode), which itself runs in :func:`reference_mode`."""
    device = next(reference.parameters()).device
    default, native = DEFAULT_PRECISION, resolve_precision("auto", device)
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
    if compile:  # the fastest precision the hardware has natively
        model = optimize_for_inference(copy.deepcopy(reference), precision=native, compile=True)
        paths[f"{native} compiled"] = (model, lambda: _tf32(False), native)
    return paths


@contextmanager
def _both(a, b):
    with a, b:
        yield


def _infer_rows(paths: dict, images, *, iters: int, warmup: int, clock, gflop: float, device_name: str) -> list:
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


def run_inference(args, model, device, precisions, clock, gflop, device_name) -> dict:
    batch = args.batch or 1
    model.eval()
    paths = inference_paths(model, precisions, channels_last=args.channels_last, compile=args.compile)
    if args.no_reference:
        paths.pop(REFERENCE)
    side = model.encoder.img_size if hasattr(model.encoder, "img_size") else 224
    images = random_clips(model.encoder, batch, args.seqlen, side, torch.Generator().manual_seed(0)).to(device)
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
