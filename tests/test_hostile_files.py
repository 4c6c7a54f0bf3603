"""Every command that reads a file, given a hostile pickle, a truncated file, random bytes or an empty file.

Each must end with one error line naming the file (no traceback) and exit code 2, and leave no trace: the
hostile pickle's marker file is never created, and nothing is written to the command's output folder.
Commands run in-process through ``maed.cli.main``; a few also as real processes (exit code, stderr).

Every command that writes a folder or file, given one it cannot write (a read-only place, a path under a
file, a directory for a file), says so in one line before any work starts.
"""

from __future__ import annotations

import io
import os
import pickle
import shlex
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch

from maed.cli import main

KINDS = ("hostile", "truncated", "random", "empty")
SMALL = ["MODEL.ENCODER.BACKBONE=cnn", "MODEL.DECODER.HIDDEN_DIM=64", "DATASET.WIDTH=64", "DATASET.HEIGHT=64"]
REPO = Path(__file__).resolve().parents[1]


class Payload:
    """Pickles as ``os.system("touch <marker>")``: loading it with a plain unpickler creates the marker."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def _hostile_yaml(marker: Path) -> bytes:
    return f"MODEL: !!python/object/apply:os.system [{shlex.quote(f'touch {marker}')!r}]\n".encode()


def _hostile_database(marker: Path) -> bytes:
    buf = io.BytesIO()
    joblib.dump({"img_name": np.array(["a.jpg"]), "pose": Payload(marker)}, buf)
    return buf.getvalue()


def _hostile_checkpoint(marker: Path) -> bytes:
    buf = io.BytesIO()
    torch.save({"format": "maed", "model": {"w": torch.zeros(2)}, "x": Payload(marker)}, buf)
    return buf.getvalue()


def _hostile_sequence(marker: Path) -> bytes:
    return pickle.dumps({"poses": [Payload(marker)], "img_frame_ids": np.arange(3)}, protocol=2)


HOSTILE = {
    "database": _hostile_database,
    "checkpoint": _hostile_checkpoint,
    "safetensors": _hostile_checkpoint,  # a pickle inside, where a safetensors header is expected
    "yaml": _hostile_yaml,
    "sequence": _hostile_sequence,
}


def damaged(kind: str, valid: bytes, hostile: bytes, file_kind: str = "") -> bytes:
    if kind == "hostile":
        return hostile
    if kind == "truncated" and file_kind == "yaml":
        # cut inside a key: a YAML file cut at a line end is a shorter valid config, not a damaged one
        middle = valid.index(b":", len(valid) // 2)
        return valid[: middle - 2]
    if kind == "truncated":
        return valid[: len(valid) // 2]
    if kind == "random":
        return np.random.default_rng(0).bytes(4096)
    return b""


# --------------------------------------------------------------------------------------------- inputs
@pytest.fixture(scope="module")
def world(tmp_path_factory, smpl_dir) -> dict:
    """Valid files of every kind: a 3DPW-format database with its frames, a small checkpoint with the config
    it was built from, a YAML config, a 3DPW sequence pickle, and tiny training data for ``maed train``."""
    from maed.config import load_config
    from maed.models import build_model
    from maed.models.checkpoint import make_checkpoint
    from maed.testing.datasets import write_synthetic_dataset
    from maed.testing.smpl import py2_pickle_bytes

    root = tmp_path_factory.mktemp("hostile_world")
    kw = dict(image_size=(96, 72), num_videos=1)
    test = write_synthetic_dataset(root, name="3dpw", split="test", frames_per_video=8, seed=1, **kw)
    write_synthetic_dataset(root, name="3dpw", split="train", frames_per_video=4, seed=2, **kw)
    write_synthetic_dataset(root, name="3dpw", split="val", frames_per_video=4, seed=3, **kw)
    cfg = load_config("stage2", SMALL)
    torch.manual_seed(0)
    torch.save(make_checkpoint(build_model(cfg, body_model_dir=smpl_dir), config=cfg.to_dict()), root / "ckpt.pt")
    cfg.dump(root / "small.yaml")
    small = io.BytesIO()  # a valid checkpoint to cut short: any torch.save archive will do
    torch.save({"format": "maed", "model": {"w": torch.arange(4096.0)}}, small)
    from safetensors.torch import save as safetensors_bytes

    images = str(root / "images")
    train = {
        "PATHS.DB_DIR": str(root / "database"),
        "PATHS.BODY_MODEL_DIR": str(smpl_dir),
        "PATHS.DATASET_ROOTS": f"{{3dpw: {images}}}",
        "MODEL.ENCODER.BACKBONE": "cnn",
        "TRAIN.DATASETS_2D": "[]",
        "TRAIN.DATASETS_3D": "[3dpw]",
        "TRAIN.DATASETS_IMG": "[]",
        "TRAIN.DATASET_EVAL": "3dpw",
        "TRAIN.BATCH_SIZE_3D": 1,
        "NUM_WORKERS": 0,
        "DATASET.SEQLEN": 2,
        "DATASET.SAMPLE_POOL": 4,
        "EVAL.SEQLEN": 2,
        "EVAL.SAMPLE_POOL": 2,
    }
    return {
        "root": root,
        "smpl": smpl_dir,
        "db": test.db_path,
        "images": images,
        "ckpt": root / "ckpt.pt",
        "small_yaml": root / "small.yaml",
        "valid": {
            "database": test.db_path.read_bytes(),
            "checkpoint": small.getvalue(),
            "safetensors": safetensors_bytes({"w": torch.arange(4096.0)}),
            "yaml": (REPO / "configs" / "config_stage2.yaml").read_bytes(),
            "sequence": py2_pickle_bytes({"poses": [np.zeros((3, 72))], "img_frame_ids": np.arange(3)}),
        },
        "train": [f"{k}={v}" for k, v in train.items()],
    }


def _eval_args(world, *, checkpoint, db_dir, config, out) -> list[str]:
    return [
        "eval", "--checkpoint", str(checkpoint), "--config", str(config), "--dataset", "3dpw", "--split", "test",
        "--db-dir", str(db_dir), "--data-root", world["images"], "--body-model-dir", str(world["smpl"]),
        "--out", str(out), "--device", "cpu", "--no-progress",
    ]  # fmt: skip


def _case(name: str, world, bad: Path, out: Path) -> list[str]:
    """The command line of case ``name`` reading the damaged file ``bad`` and writing into ``out``."""
    if name == "data info":
        return ["data", "info", str(bad)]
    if name == "data show":
        return ["data", "show", str(bad), "--out", str(out / "sample.png"), "--root", world["images"]]
    if name == "prepare 3dpw":
        raw = bad.parent.parent.parent  # <raw>/sequenceFiles/test/<seq>.pkl
        args = ["prepare", "3dpw", "--raw", str(raw), "--out", str(out), "--body-model-dir", str(world["smpl"])]
        return [*args, "--splits", "test", "--no-progress"]
    if name == "eval --checkpoint":
        return _eval_args(world, checkpoint=bad, db_dir=world["db"].parent, config=world["small_yaml"], out=out)
    if name == "eval database":
        return _eval_args(world, checkpoint=world["ckpt"], db_dir=bad.parent, config=world["small_yaml"], out=out)
    if name == "eval --config":
        return _eval_args(world, checkpoint=world["ckpt"], db_dir=world["db"].parent, config=bad, out=out)
    if name == "train --config":
        return ["train", "--config", str(bad), "--device", "cpu", "--out", str(out), "--no-progress"]
    if name == "train --resume":
        return ["train", "--resume", str(bad.parent.parent), "--device", "cpu", "--no-progress"]
    if name == "train --pretrained":
        args = ["train", "--config", "stage2", "--device", "cpu", "--pretrained", str(bad), "--out", str(out)]
        return [*args, "--no-progress", *world["train"]]
    if name in ("train --init-weights", "train --init-weights safetensors"):
        args = ["train", "--config", "stage2", "--device", "cpu", "--init-weights", str(bad), "--out", str(out)]
        return [*args, "--no-progress", *world["train"]]
    if name == "bench --config":
        return ["bench", "--config", str(bad), "--device", "cpu", "--out", str(out / "bench.json")]
    raise AssertionError(name)


#: case -> (kind of file it reads, where the damaged file goes relative to the test folder)
CASES = {
    "data info": ("database", "db/3dpw_test_db.pt"),
    "data show": ("database", "db/3dpw_test_db.pt"),
    "prepare 3dpw": ("sequence", "raw/sequenceFiles/test/courtyard_basketball_00.pkl"),
    "eval --checkpoint": ("checkpoint", "model_best.pth.tar"),
    "eval database": ("database", "db/3dpw_test_db.pt"),
    "eval --config": ("yaml", "config.yaml"),
    "train --config": ("yaml", "config.yaml"),
    "train --resume": ("checkpoint", "run/checkpoints/last.pt"),
    "train --pretrained": ("checkpoint", "stage1.pt"),
    "train --init-weights": ("checkpoint", "imagenet.pth"),
    "train --init-weights safetensors": ("safetensors", "imagenet.safetensors"),
    "bench --config": ("yaml", "config.yaml"),
}


def _prepare(name: str, kind: str, world, tmp_path: Path) -> tuple[list[str], Path, Path, Path]:
    file_kind, rel = CASES[name]
    marker = tmp_path / "PWNED"
    bad = tmp_path / rel
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(damaged(kind, world["valid"][file_kind], HOSTILE[file_kind](marker), file_kind))
    out = tmp_path / "out"
    return _case(name, world, bad, out), bad, out, marker


def _assert_no_trace(out: Path, marker: Path, bad: Path, before: set) -> None:
    assert not marker.exists(), "the hostile pickle ran"
    assert not out.exists() or not any(out.rglob("*")), f"partial output: {sorted(out.rglob('*'))}"
    assert {p for p in bad.parent.parent.rglob("*")} == before, "files appeared beside the input"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(CASES))
def test_damaged_input_is_one_error_line_and_no_side_effect(name, kind, world, tmp_path, capsys):
    argv, bad, out, marker = _prepare(name, kind, world, tmp_path)
    before = {p for p in bad.parent.parent.rglob("*")}
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    command = argv[0]
    assert "Traceback" not in err and "weights_only" not in err
    assert lines and lines[0].startswith(f"maed {command}: error:"), err
    assert len(lines) == 1, err
    assert bad.name in lines[0] or str(bad.parent) in lines[0], lines[0]
    _assert_no_trace(out, marker, bad, before)


@pytest.mark.parametrize(
    "name,kind",
    [("data info", "hostile"), ("eval --checkpoint", "random"), ("train --resume", "empty")],
)
def test_damaged_input_in_a_real_process(name, kind, world, tmp_path):
    argv, bad, out, marker = _prepare(name, kind, world, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-m", "maed", *argv], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"maed {argv[0]}: error:") and bad.name in lines[0], proc.stderr
    assert not marker.exists()


# --------------------------------------------------------------------------------------------- outputs
def _output_case(name: str, world, place: Path) -> list[str]:
    """The command line of case ``name`` writing into ``place``. Every input a later stage reads is missing
    (database folder, --dtypes), so an output check that does not come first fails the test with another error."""
    missing = world["root"] / "no_such_folder"
    train = [
        "train",
        "--config",
        "stage2",
        "--device",
        "cpu",
        "--no-progress",
        *world["train"],
        f"PATHS.DB_DIR={missing}",
    ]
    if name == "train --out":
        return [*train, "--out", str(place / "run")]
    if name == "train OUTPUT_DIR":
        return [*train, f"OUTPUT_DIR={place / 'results'}"]
    if name == "eval --out":
        return _eval_args(
            world, checkpoint=world["ckpt"], db_dir=missing, config=world["small_yaml"], out=place / "res"
        )
    if name == "bench --out":
        return ["bench", "--config", str(world["small_yaml"]), "--dtypes", "fp8", "--out", str(place / "bench.json")]
    raise AssertionError(name)


OUTPUT_CASES = ("train --out", "train OUTPUT_DIR", "eval --out", "bench --out")


@pytest.mark.parametrize("place", ["read-only", "under a file"])
@pytest.mark.parametrize("name", OUTPUT_CASES)
def test_output_that_cannot_be_written_is_one_error_line_before_any_work(name, place, world, tmp_path, request, capsys):
    if place == "read-only":
        where = request.getfixturevalue("unwritable")
    else:
        where = tmp_path / "a_file"
        where.write_text("keep me")
    argv = _output_case(name, world, where)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith(f"maed {argv[0]}: error:"), err
    assert str(where) in lines[0] and "no_such_folder" not in lines[0] and "fp8" not in lines[0], lines[0]
    if place == "under a file":
        assert where.read_text() == "keep me"
    else:
        assert list(where.iterdir()) == []


def test_bench_out_that_is_a_directory_is_refused_before_the_benchmark(world, tmp_path, capsys):
    argv = ["bench", "--config", str(world["small_yaml"]), "--dtypes", "fp8", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    example = tmp_path / "bench.json"
    assert err == f"maed bench: error: --out {tmp_path}: is a directory; give a file name (for example {example})"
