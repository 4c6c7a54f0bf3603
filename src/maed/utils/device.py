"""The one rule for choosing a torch device, used by ``maed train``, ``maed eval`` and ``maed bench``.

- ``cpu``, ``cuda`` and ``cuda:N`` are accepted; any other name is a :class:`~maed.errors.ConfigError`
  naming the option it came from.
- Nothing asked (``None``): CUDA when it is available, else the CPU.
- CUDA asked on the command line (``--device cuda``, ``explicit=True``) on a machine without CUDA: an
  error, since the user asked for something that cannot be done.
- CUDA from a config file (``DEVICE: cuda``, ``explicit=False``): the CPU when CUDA is absent. The
  original MAED's defaults and its YAML files all say ``cuda``, and they should still run on a laptop.
- ``cuda:N`` with fewer than N + 1 visible devices: an error.
"""

from __future__ import annotations

import torch

from maed.errors import ConfigError

DEVICE_TYPES = ("cpu", "cuda")


def resolve_device(name: str | torch.device | None = None, *, explicit: bool = True) -> torch.device:
    """The device ``name`` stands for, by the rule in this module's docstring.

    ``explicit``: the name comes from the command line (``--device``) rather than the config's ``DEVICE``;
    it decides what a missing CUDA means, and which option an error names.
    """
    option = "--device" if explicit else "DEVICE"
    if name is None or name == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):  # torch's own message lists every device type it knows
        raise ConfigError(f"{option} {str(name)!r}: expected cpu, cuda or cuda:N") from None
    if device.type not in DEVICE_TYPES:
        raise ConfigError(f"{option} {name}: expected cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        if explicit:
            raise ConfigError(f"{option} {name}: no CUDA device is available; use --device cpu")
        return torch.device("cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"{option} {name}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return device


def cpu_bf16_matrix() -> str | None:
    """The bf16 matrix instructions of this CPU: ``"AMX"`` (AMX-BF16 tiles), ``"AVX512-BF16"``, or None.

    bf16 autocast pays on a CPU only with one of them; without, PyTorch emulates bf16 matrix products and
    they run slower than float32. Read from PyTorch's own CPU feature detection (``torch.cpu``).
    """
    get = getattr(torch.cpu, "get_capabilities", None)
    caps = get() if get is not None else {}
    if caps.get("amx_bf16"):
        return "AMX"
    if caps.get("avx512_bf16"):
        return "AVX512-BF16"
    return None


def bf16_autocast_supported(device: torch.device) -> bool:
    """Whether bf16 autocast is worth using on ``device``: always on CUDA, on a CPU with bf16 matrix
    instructions (:func:`cpu_bf16_matrix`)."""
    return device.type == "cuda" or (device.type == "cpu" and cpu_bf16_matrix() is not None)
