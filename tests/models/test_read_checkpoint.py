"""``read_checkpoint``: files that are no checkpoint are called that, hostile ones are refused by name, and
PyTorch's advice to load with ``weights_only=False`` is never passed on."""

from __future__ import annotations

import os
import pickle
import shlex
import zipfile

import numpy as np
import pytest
import torch

from maed.errors import CheckpointError
from maed.models.checkpoint import read_checkpoint


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def _checked(path, pattern: str) -> str:
    with pytest.raises(CheckpointError, match=pattern) as e:
        read_checkpoint(path)
    message = str(e.value)
    assert str(path) in message and "weights_only" not in message and "\n" not in message
    return message


@pytest.mark.parametrize(
    "name,content,what",
    [
        ("empty.pt", b"", "it is empty"),
        ("random.pt", np.random.default_rng(0).bytes(2048), "starts with bytes of no known format"),
        ("config.yaml", b"MODEL:\n  ENCODER:\n    BACKBONE: cnn\n", "is a text file"),
        ("plain.pkl", pickle.dumps({"model": {"w": np.zeros(3)}}), "plain Python pickle"),
    ],
    ids=["empty", "random bytes", "yaml", "plain pickle"],
)
def test_a_file_that_is_no_checkpoint_is_called_that(tmp_path, name, content, what):
    path = tmp_path / name
    path.write_bytes(content)
    message = _checked(path, "is not a checkpoint")
    assert what in message and "expected a PyTorch checkpoint written by torch.save" in message


def test_a_hostile_checkpoint_is_refused_by_name_and_never_runs(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "model_best.pth.tar"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "x": Payload(marker)}, path)
    _checked(path, r"refused to load, it asks for 'posix\.system'")
    assert not marker.exists()


def test_truncated_and_foreign_archives(tmp_path):
    path = tmp_path / "last.pt"
    torch.save({"format": "maed", "model": {"w": torch.arange(1000.0)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _checked(path, "truncated or damaged")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("notes.txt", "not a checkpoint")
    assert "file in archive is not in a subdirectory" in _checked(path, "a zip archive torch.save did not write")


def test_valid_checkpoints_still_load(tmp_path):
    state = {"state_dict": {"w": torch.ones(3)}, "performance": np.float64(51.2), "epoch": 3}
    torch.save(state, tmp_path / "new.pt")
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    for name in ("new.pt", "legacy.pt"):
        loaded = read_checkpoint(tmp_path / name)
        assert torch.equal(loaded["state_dict"]["w"], torch.ones(3)) and float(loaded["performance"]) == 51.2
