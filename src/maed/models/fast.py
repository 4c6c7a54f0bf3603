"""The fast inference path: the same MAED modules, set up for speed on the device at hand.

``load_model`` applies :func:`optimize_for_inference` by default (``optimize=False`` gives the plain float32
model). What it does, and why each step is safe:

- **Weight standardisation once.** ``StdConv2dSame`` reuses its standardised weight while autograd is off
  and the weight unchanged (always on; bit-identical to recomputing it).
- **float32 by default** (:data:`DEFAULT_PRECISION`), so that a model gives the same numbers on every
  machine. bfloat16 is a choice: ``precision="bf16"``, or ``"auto"`` for bfloat16 where the hardware
  multiplies it natively (Intel AMX or AVX512-BF16 on CPU, tensor cores, compute capability 8.0+, on
  CUDA). The encoder's activations and weights then become bfloat16; the standardised convolutions keep
  float32 master weights (standardised in float32, then cast), and the decoder, the body model and the
  projection stay float32 (``MAED.forward``). Without such instructions bfloat16 is emulated and slower,
  so ``auto`` keeps float32 there.
- **Channels-last convolutions** are an option (``channels_last=True``), off by default: on CPU oneDNN's
  convolutions gain from it, but PyTorch's channels-last GroupNorm kernel loses more than that (measured
  on an AVX512-BF16 CPU); ``benchmarks/gpu.sh`` measures it on CUDA.
- **Attention** in bfloat16 on CPU is computed explicitly rather than by the fused kernel, which is slower
  there for these shapes (``maed.models.attention.attention``).
- ``precision="tf32"`` (CUDA only) keeps float32 weights and lets matrix products use TF32 tensor cores; this
  sets torch's global ``allow_tf32`` flags, as TF32 has no per-module switch.
- ``compile=True`` wraps the encoder's forward in ``torch.compile``. Off by default: on a 2-core CPU compiling
  the stage-2 encoder took about four minutes for a 1.3x gain.

The ``keypoints`` encoder has no convolutions: bfloat16, TF32 and ``compile`` apply to it as to the others;
weight standardisation and channels-last have nothing to act on there.

Nothing here changes parameter names or the state dict; attention always runs through
``F.scaled_dot_product_attention``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from maed.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "tf32")
#: what ``load_model`` and :func:`optimize_for_inference` use unless told: float32, faithful on any machine
#: (bf16 moves an untrained stage-2 model's vertices by centimetres; docs/SPEED.md)
DEFAULT_PRECISION = "fp32"


@dataclass(frozen=True)
class InferenceSetup:
    """What :func:`optimize_for_inference` chose: ``precision`` (fp32, bf16 or tf32), ``channels_last``,
    ``compiled``, and ``bf16_matrix`` (the device's bfloat16 matrix instructions, or ``None``)."""

    precision: str
    channels_last: bool
    compiled: bool
    bf16_matrix: str | None

    def describe(self) -> str:
        hw = self.bf16_matrix or "no bf16 matrix instructions"
        extras = [x for x, on in (("channels-last", self.channels_last), ("compiled", self.compiled)) if on]
        return f"{self.precision} ({hw})" + (f", {', '.join(extras)}" if extras else "")


def bf16_matrix_instructions(device: torch.device | str) -> str | None:
    """The device's native bfloat16 matrix instructions: ``"AMX"`` or ``"AVX512-BF16"`` on x86 CPUs,
    ``"tensor cores"`` on CUDA devices of compute capability 8.0 or newer; ``None`` without."""
    device = torch.device(device)
    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return "tensor cores" if major >= 8 else None
    if device.type != "cpu":
        return None
    caps = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    if caps.get("amx_bf16"):
        return "AMX"
    if caps.get("avx512_bf16"):
        return "AVX512-BF16"
    return None


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``auto`` -> ``bf16`` where the device multiplies bfloat16 natively, else ``fp32``; others checked."""
    device = torch.device(device)
    key = str(precision).lower()
    if key not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if key == "tf32" and device.type != "cuda":
        raise ConfigError("precision 'tf32' needs a CUDA device; use fp32 or bf16 on CPU")
    if key == "auto":
        return "bf16" if bf16_matrix_instructions(device) else "fp32"
    return key


def _encoder_to_bf16(encoder: nn.Module) -> None:
    """Parameters and buffers of the encoder to bfloat16, except the standardised convolutions' weights,
    which stay float32 masters (standardised in float32, then cast; see ``StdConv2dSame``)."""
    from maed.models.ste import StdConv2dSame  # start-up: timm, only when a model is optimised

    for module in encoder.modules():
        keep = ("weight",) if isinstance(module, StdConv2dSame) else ()
        for name, param in module.named_parameters(recurse=False):
            if name not in keep and param.is_floating_point():
                param.data = param.data.to(torch.bfloat16)
        for name, buf in module.named_buffers(recurse=False):
            if buf.is_floating_point():
                setattr(module, name, buf.to(torch.bfloat16))


def optimize_for_inference(
    model: nn.Module,
    *,
    precision: str = DEFAULT_PRECISION,
    channels_last: bool = False,
    compile: bool = False,
) -> nn.Module:
    """Set up a MAED model (already on its device) for fast inference, in place; returns it in eval mode.

    Args:
        precision: ``fp32`` (the default), ``auto`` (bf16 where native, else fp32), ``bf16``, or ``tf32``
            (CUDA).
        channels_last: run the convolutional backbone channels-last (default off, see above).
        compile: ``torch.compile`` the encoder (minutes of compilation on a small CPU).

    The setup chosen is stored as ``model.inference_setup`` (an :class:`InferenceSetup`). Training such a
    model is not supported: build or load it with ``optimize=False`` for that.
    """
    device = next(model.parameters()).device
    resolved = resolve_precision(precision, device)
    model.eval()
    encoder = model.encoder
    if resolved == "bf16":
        _encoder_to_bf16(encoder)
    elif resolved == "tf32":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    backbone = getattr(getattr(encoder, "patch_embed", None), "backbone", None)
    if channels_last:
        (backbone if backbone is not None else encoder).to(memory_format=torch.channels_last)
    if compile:
        encoder.compile()
    model.inference_setup = InferenceSetup(
        precision=resolved,
        channels_last=bool(channels_last),
        compiled=bool(compile),
        bf16_matrix=bf16_matrix_instructions(device),
    )
    return model
