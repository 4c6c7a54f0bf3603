"""One device rule for train, eval and bench (``maed.utils.device``)."""

from __future__ import annotations

import pytest
import torch

from maed.errors import ConfigError
from maed.utils.device import resolve_device


def test_device_names_are_checked():
    assert resolve_device("cpu", explicit=True) == torch.device("cpu")
    for name, explicit, match in (
        ("gpu", True, "--device 'gpu'"),
        ("CUDA", False, "DEVICE 'CUDA'"),
        ("mps", True, "--device mps"),
    ):
        with pytest.raises(ConfigError, match=f"{match}: expected cpu, cuda or cuda:N"):
            resolve_device(name, explicit=explicit)


@pytest.mark.parametrize("name", ["gpu", "CPU", "cuda:x", "mps"])
def test_unknown_device_is_a_clear_error(name):
    with pytest.raises(ConfigError, match="expected cpu, cuda or cuda:N"):
        resolve_device(name)


def test_cuda_without_cuda_is_an_error_when_asked_and_the_cpu_when_configured(monkeypatch):
    """A config asking for CUDA falls back; an explicit --device does not."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_device("cuda:0", explicit=True)
    assert resolve_device("cuda", explicit=False) == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
