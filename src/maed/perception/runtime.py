"""The one place a perception network runs: ONNX Runtime on the CPU, or CUDA where asked and available.

Callers see :class:`Network`: ``network(**inputs) -> dict of outputs``, numpy in and out. A GPU runtime
replaces this module's session, not the callers.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from maed.errors import AssetError, ConfigError
from maed.perception.weights import verified_path

DEVICES = ("cpu", "cuda")


def _onnxruntime():
    try:  # optional dependency: the [perception] extra
        import onnxruntime
    except ImportError as e:
        raise AssetError("the person and keypoint networks need onnxruntime: pip install 'maed[perception]'") from e
    return onnxruntime


class Network:
    """An ONNX network from the shipped weights, run on numpy arrays.

    ``name`` is a key of :data:`maed.perception.weights.WEIGHTS`; ``device`` ``cpu`` or ``cuda``
    (CUDA falls back to the CPU with a warning in the session when the CUDA provider is missing);
    ``threads`` 0 lets ONNX Runtime choose (one per core).
    """

    def __init__(self, name: str, *, device: str = "cpu", threads: int = 0, folder: Path | None = None):
        if device not in DEVICES and not device.startswith("cuda:"):
            raise ConfigError(f"device {device!r}: expected cpu, cuda or cuda:N")
        ort = _onnxruntime()
        self.name = name
        self.path = verified_path(name, folder)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads) or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # batch sizes other than the converter's example are fine: no warnings
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            index = int(device.split(":")[1]) if ":" in device else 0
            if "CUDAExecutionProvider" in ort.get_available_providers():
                providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        self.device = "cuda" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        missing = set(self.input_names) - set(inputs)
        if missing:
            raise ValueError(f"{self.name}: missing inputs {sorted(missing)}")
        outputs = self.session.run(None, {k: inputs[k] for k in self.input_names})
        return dict(zip(self.output_names, outputs))

    def describe(self) -> dict:
        return {"network": self.name, "file": self.path.name, "device": self.device}
