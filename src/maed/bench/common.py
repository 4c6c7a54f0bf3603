"""What ``maed bench`` and the scripts in ``benchmarks/`` share: the device's description and datasheet peak,
alternating timing, generated inputs of the encoder's kind, and the network's FLOPs per frame."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from maed.models.fast import bf16_matrix_instructions
from maed.models.keypoints import random_keypoints

#: dense (no sparsity) peak TFLOP/s from NVIDIA's datasheets; the first name contained in the device's wins
GPU_PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H100 PCIe": {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0},
    "H100 NVL": {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5},
    "H200 NVL": {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5},
    "H100": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4},
    "H200": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4},
}


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_summary(device) -> dict:
    """``name``, ``bf16_matrix`` (AMX, AVX512-BF16, tensor cores, or ``None``), ``amx`` (bool, CPU) and
    ``threads`` of a device."""

    device = torch.device(device)
    if device.type == "cuda":
        return {"name": torch.cuda.get_device_name(device), "bf16_matrix": bf16_matrix_instructions(device)}
    caps = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    return {
        "name": cpu_name(),
        "bf16_matrix": bf16_matrix_instructions(device),
        "amx": bool(caps.get("amx_bf16")),
        "avx512_bf16": bool(caps.get("avx512_bf16")),
        "threads": torch.get_num_threads(),
    }


def peak_tflops(device_name: str, precision: str) -> float | None:
    """Datasheet peak of a known GPU for ``fp32``/``tf32``/``bf16``, or None."""
    for key, peaks in GPU_PEAK_TFLOPS.items():
        if key in device_name:
            return peaks.get(precision)
    return None


def time_alternating(
    fns: dict, iters: int = 3, warmup: int = 1, cuda: bool = False, clock=time.perf_counter
) -> dict[str, float]:
    """Best seconds of each zero-argument callable, called in turn ``iters`` times after ``warmup`` untimed
    rounds, so that drift in a shared machine's load affects all of them alike.

    ``clock``: wall time by default; ``time.process_time`` (CPU seconds of this process, all threads) gives
    figures that other processes on a busy machine disturb far less, exact with one thread.
    """
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


def reads_landmarks(encoder) -> bool:
    """Whether ``encoder`` takes body landmarks (the keypoint encoder's ``input_kind``) rather than images."""
    return getattr(encoder, "input_kind", "images") == "keypoints"


def random_clips(encoder, clips: int, seqlen: int, img_size: int, generator=None) -> torch.Tensor:
    """Random clips in the input layout of ``encoder`` (its ``input_kind``; None: images), on the CPU:
    crops clips x T x 3 x S x S (S = ``img_size``), or for the keypoint encoder landmarks clips x T x K x C
    (``maed.models.keypoints.random_keypoints``)."""

    if reads_landmarks(encoder):
        return random_keypoints(clips, seqlen, encoder.num_keypoints, encoder.world, generator=generator)
    return torch.randn(clips, seqlen, 3, img_size, img_size, generator=generator)


def input_description(model, img_size: int) -> str:
    """What one frame of the model's input is, for the benchmarks' headers: "224 px" or "33 landmarks"."""
    if reads_landmarks(model.encoder):
        return f"{model.encoder.num_keypoints} landmarks"
    return f"{img_size} px"


def gflop_per_frame(model, img_size: int, seqlen: int = 16) -> float:
    """Forward GFLOP per frame of the network (encoder + decoder; matrix products and convolutions, counted
    as 2 per multiply-add by ``torch.utils.flop_counter``), the body model excluded."""

    p = next(model.parameters())
    x = torch.zeros_like(random_clips(model.encoder, 1, seqlen, img_size))[0].to(p.device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.decoder(model.encoder(x, seqlen=seqlen).float())
    finally:
        model.train(was_training)
    return counter.get_total_flops() / seqlen / 1e9
