"""`maed bench` end to end through the CLI, and `benchmarks/gpu.sh --device cpu --quick`, on tiny models."""

import json
import os
import subprocess
import sys
from pathlib import Path

from maed.cli import main
from maed.models.fast import bf16_matrix_instructions

TINY = [
    "DATASET.WIDTH=64",
    "DATASET.HEIGHT=64",
    "MODEL.ENCODER.NUM_BLOCKS=1",
    "MODEL.ENCODER.EMBED_DIM=64",
    "MODEL.ENCODER.NUM_HEADS=4",
    "MODEL.ENCODER.BACKBONE_LAYERS=[1,1,1]",
    "MODEL.ENCODER.BACKBONE_WIDTH=32",
]
REPO = Path(__file__).resolve().parents[1]


def test_bench_times_each_path_against_the_reference(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", "--seqlen", "2", "--iters", "1", "--warmup", "0", "--json", str(out), *TINY])
    assert rc == 0
    res = json.loads(out.read_text())
    paths = {r["path"]: r for r in res["results"]}
    assert "reference" in paths and "fp32 (load_model default)" in paths  # on any machine
    assert paths["reference"]["ratio_vs_reference"] == 1.0 and paths["reference"]["max_vertex_diff_mm"] == 0.0
    for r in res["results"]:
        assert r["frames_per_s"] > 0 and r["gflop_per_s"] > 0 and r["fraction_of_peak"] is None  # no known peak
        assert r["max_vertex_diff_mm"] < 5.0
    assert res["device_info"]["bf16_matrix"] == bf16_matrix_instructions("cpu")
    assert res["img_size"] == 64 and 0 < res["gflop_per_frame"] < 1
    printed = capsys.readouterr().out
    assert "frames/s" in printed and "bf16 matrix instructions" in printed


def test_bench_rejects_unknown_precision(tmp_path, capsys):
    rc = main(["bench", "--precisions", "fp8", "--json", str(tmp_path / "b.json"), *TINY])
    assert rc == 2 and "fp8" in capsys.readouterr().err
    rc = main(["bench", "--precisions", "tf32", "--device", "cpu", "--json", str(tmp_path / "b.json"), *TINY])
    assert rc == 2 and "tf32 needs a CUDA device" in capsys.readouterr().err


def test_peaks_are_known_for_the_lent_gpus():
    from maed.bench.common import peak_tflops

    assert peak_tflops("NVIDIA H100 80GB HBM3", "bf16") == 989.4
    assert peak_tflops("NVIDIA H100 PCIe", "bf16") == 756.0
    assert peak_tflops("NVIDIA H200", "tf32") == 494.7
    assert peak_tflops("AMD EPYC", "bf16") is None


def test_gpu_script_dry_run_on_cpu(tmp_path):
    """The GPU script's code paths at tiny sizes: inference rows, training loader beside the step, and
    activation checkpointing, each writing its JSON."""
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = str(REPO / "src")
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu.sh"), "--device", "cpu", "--quick"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    infer = json.loads((tmp_path / "inference.json").read_text())
    assert {r["path"] for r in infer["results"]} >= {"reference", "fp32 (load_model default)"}
    train = json.loads((tmp_path / "train.json").read_text())
    assert train["loader"]["frames_per_s"] > 0 and train["loader"]["frames"] > 0
    assert train["results"][0]["amp"] == "none" and all(r["frames_per_s"] > 0 for r in train["results"])
    ckpt = json.loads((tmp_path / "train_grad_checkpoint.json").read_text())
    assert ckpt["grad_checkpoint"] is True and ckpt["loader"] is None
    assert "done in" in (tmp_path / "gpu_sh.log").read_text()


def test_training_step_bench_feeds_a_keypoint_model_landmarks(tmp_path):
    """The training benchmarks time the keypoint model too: its batch holds landmark clips, not images."""
    import math

    import pytest
    import torch

    from maed.bench.train import train_step_fn, training_batch
    from maed.config import load_config
    from maed.models import build_model

    cfg = load_config("kp_anny", ["MODEL.ENCODER.NUM_BLOCKS=1", "MODEL.DECODER.HIDDEN_DIM=64"])
    model = build_model(cfg)
    g = torch.Generator().manual_seed(0)
    batch = training_batch(model.body_model, 2, 4, cfg.DATASET.WIDTH, g, encoder=model.encoder)
    assert "images" not in batch and batch["keypoints"].shape == (2, 4, 33, 3)
    assert batch["kp_3d"].shape[:2] == (2, 4) and batch["theta"].shape[:2] == (2, 4)
    stats = train_step_fn(model, cfg, run_dir=tmp_path)(batch)
    assert math.isfinite(stats["loss"]) and stats["loss"] > 0
    with pytest.raises(ValueError, match="give seqlen"):
        training_batch(model.body_model, 2, None, cfg.DATASET.WIDTH, g, encoder=model.encoder)


def test_bench_cli_times_the_keypoint_model_on_landmarks(tmp_path, capsys):
    small = ["--config", "kp_anny", "--seqlen", "4", "--iters", "1", "--warmup", "0"]
    small_model = ["MODEL.ENCODER.NUM_BLOCKS=1", "MODEL.DECODER.HIDDEN_DIM=64"]
    out = tmp_path / "infer.json"
    assert main(["bench", *small, "--json", str(out), *small_model]) == 0
    res = json.loads(out.read_text())
    assert {r["path"] for r in res["results"]} >= {"reference", "fp32 (load_model default)"}
    assert all(r["frames_per_s"] > 0 for r in res["results"]) and 0 < res["gflop_per_frame"] < 0.1
    out = tmp_path / "train.json"
    assert main(["bench", "--train", "--batch", "2", *small, "--json", str(out), *small_model]) == 0
    res = json.loads(out.read_text())
    assert res["loader"] is None and res["results"][0]["frames_per_s"] > 0
    printed = capsys.readouterr().out
    assert "33 landmarks" in printed and "not timed for a keypoint model" in printed
