"""Every file ``maed demo`` reads, given a hostile pickle, a truncated file, random bytes or an empty file:
one error line naming the file, exit code 2, no code run, nothing written."""

from __future__ import annotations

import io
import json
import os
import shlex

import numpy as np
import pytest
import torch

from maed.cli import main

KINDS = ("hostile", "truncated", "random", "empty")


class _Payload:
    """Unpickling it runs ``touch <marker>``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def _damaged(kind: str, valid: bytes, marker) -> bytes:
    if kind == "hostile":
        buf = io.BytesIO()
        torch.save({"format": "maed", "model": {"w": torch.zeros(2)}, "x": _Payload(marker)}, buf)
        return buf.getvalue()
    if kind == "truncated":
        return valid[: len(valid) // 2]
    if kind == "random":
        return np.random.default_rng(0).bytes(4096)
    return b""


@pytest.fixture(scope="module")
def valid(tmp_path_factory, person_clip):
    from torchvision.models import detection

    root = tmp_path_factory.mktemp("hostile_demo")
    buf = io.BytesIO()
    torch.save(detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None).state_dict(), buf)
    boxes = {"box_format": "xyxy", "frames": [{"frame": f, "boxes": [[10, 10, 60, 150]]} for f in range(24)]}
    return {
        "checkpoint": buf.getvalue(),  # any torch.save archive to cut short
        "weights": buf.getvalue(),
        "boxes": json.dumps(boxes).encode(),
        "input": person_clip.path.read_bytes(),
        "root": root,
    }


CASES = {
    "--checkpoint": "model.pt",
    "--detector-weights": "fasterrcnn.pth",
    "--boxes": "boxes.json",
    "INPUT": "clip.mp4",
}


# a JSON file holds no code to run: its damaged forms are the three others
PAIRS = [(case, kind) for case in CASES for kind in KINDS if (case, kind) != ("--boxes", "hostile")]


@pytest.mark.parametrize("case, kind", PAIRS)
def test_damaged_file_is_one_error_line_and_no_side_effect(case, kind, valid, person_clip, tiny_checkpoint, tmp_path,
                                                           capsys):  # fmt: skip
    marker = tmp_path / "PWNED"
    bad = tmp_path / "in" / CASES[case]
    bad.parent.mkdir()
    key = {"--checkpoint": "checkpoint", "--detector-weights": "weights", "--boxes": "boxes", "INPUT": "input"}[case]
    bad.write_bytes(_damaged(kind, valid[key], marker))
    out = tmp_path / "out"
    args = ["demo", str(bad if case == "INPUT" else person_clip.path), "--out", str(out), "--no-progress"]
    args += ["--checkpoint", str(bad if case == "--checkpoint" else tiny_checkpoint), "--device", "cpu"]
    if case in ("--detector-weights", "--boxes"):
        args += [case, str(bad)]
    before = set(bad.parent.iterdir())
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("maed demo: error: ") and "Traceback" not in err, err
    assert bad.name in lines[0] and "weights_only" not in err, lines[0]
    assert not marker.exists(), "the hostile pickle ran"
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))
    assert set(bad.parent.iterdir()) == before
