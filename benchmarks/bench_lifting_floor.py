"""How well 2D landmarks with the detector's errors can tell the 3D pose: the keypoint model's noise floor.

The shipped keypoint model (``maed train --config kp_anny``) learns landmarks -> body from synthetic clips
(``maed.synth.keypoint_data``). This probe asks what any model could reach on the same data: plain MLPs
lift the landmarks to the 14 LSP joints (camera frame, relative to the hips' midpoint; L1 loss, AdamW with a
one-cycle rate), one frame at a time (``frame``) and a whole 16-frame window at once (``window``: what
temporal context adds), trained on a fixed pool of generated clips and scored on the validation clips by
PA-MPJPE. The same numbers for two references: the Procrustes mean of the training skeletons (a mean pose
that no rotation or scale can improve) and the residual pool's temporal correlation (how much of BlazePose's
error persists from frame to frame, which no temporal smoothing removes).

    python benchmarks/bench_lifting_floor.py --db-dir data/kp_anny --steps 12000          # about 15 minutes
    python benchmarks/bench_lifting_floor.py --db-dir data/kp_anny --noise exact           # no detector noise

``--db-dir`` holds the preset's motion banks (built there on first use, a few minutes). Prints a line per
evaluation and a summary; ``--json FILE`` writes it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from maed.body.geometry import similarity_procrustes
from maed.config import load_config
from maed.synth.keypoint_data import clips_from_config
from maed.synth.landmarks import LandmarkMap

#: the 14 LSP joints of the 49-joint layout; their 2 and 3 are the right and left hip
LSP = list(range(25, 39))
HIPS = (2, 3)


def generate(clips, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` clips -> landmark inputs (N, T, K, C) and hip-centred LSP joints (N, T, 14, 3) metres."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    inputs, joints = [], []
    for _ in tqdm(range(count), desc="clips", unit="clip", leave=False):
        sample = clips.sample(rng)
        j = sample["kp_3d"][:, LSP, :3].numpy()
        inputs.append(sample["keypoints"].numpy())
        joints.append(j - 0.5 * (j[:, HIPS[0] : HIPS[0] + 1] + j[:, HIPS[1] : HIPS[1] + 1]))
    return torch.from_numpy(np.stack(inputs)), torch.from_numpy(np.stack(joints))


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> float:
    """Mean per-joint error in mm after similarity alignment (the evaluation's Procrustes), over (..., J, 3)."""
    p, g = pred.reshape(-1, *pred.shape[-2:]).double(), gt.reshape(-1, *gt.shape[-2:]).double()
    return float((similarity_procrustes(p, g) - g).norm(dim=-1).mean() * 1000)


def procrustes_mean(joints: torch.Tensor, iterations: int = 5) -> torch.Tensor:
    """(N, J, 3) -> the (J, 3) generalised Procrustes mean: the skeleton closest to all after alignment."""
    joints = joints.double()
    mean = joints[0]
    for _ in range(iterations):
        mean = similarity_procrustes(joints, mean.expand_as(joints)).mean(0)
    return mean


def residual_correlation(lmap: LandmarkMap, lags=(1, 4, 8, 15)) -> dict:
    """How BlazePose's errors (the residual pool, box sides) persist along a track: the correlation of a
    landmark's residual with its own ``lag`` frames later, and the share of the error that is each landmark's
    constant offset over its whole track."""
    r, seen, track = lmap.residuals.astype(np.float64), lmap.residual_seen > 0, lmap.residual_track
    out = {}
    for lag in lags:
        i = np.flatnonzero(track[:-lag] == track[lag:])
        both = seen[i] & seen[i + lag]
        x, y = r[i][both], r[i + lag][both]
        out[f"lag_{lag}"] = round(float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum())), 3)
    total = constant = 0.0
    for t in np.unique(track):
        rows = track == t
        for k in range(r.shape[1]):
            v = r[rows][seen[rows][:, k], k]
            if len(v) >= 4:
                total += float((v**2).sum())
                constant += len(v) * float((v.mean(0) ** 2).sum())
    out["track_constant_share"] = round(constant / total, 3) if total else float("nan")
    return out


def mlp(inputs: int, outputs: int, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, width), nn.GELU(), nn.Linear(width, width), nn.GELU(),
        nn.Linear(width, width), nn.GELU(), nn.Linear(width, outputs),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db-dir", required=True, help="motion banks of the kp_anny preset (built there if absent)")
    ap.add_argument("--steps", type=int, default=12000, help="training steps of each MLP (default 12000)")
    ap.add_argument("--batch", type=int, default=32, help="clips a step (default 32, of 16 frames)")
    ap.add_argument("--pool", type=int, default=60000, help="generated training clips (default 60000)")
    ap.add_argument("--val", type=int, default=400, help="validation clips (default 400)")
    ap.add_argument("--width", type=int, default=1024, help="hidden width of the MLPs (default 1024)")
    ap.add_argument("--evals", type=int, default=8, help="evaluations along the run (default 8)")
    ap.add_argument("--noise", choices=("detector", "exact"), default="detector",
                    help="detector: the residual pool's errors (as the preset trains); exact: none")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the summary here")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides of the kp_anny preset")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.batch < 1 or args.pool < 1 or args.val < 1 or args.evals < 1:
        ap.error("--steps, --batch, --pool, --val and --evals must be positive")

    torch.manual_seed(args.seed)
    noise = "true" if args.noise == "detector" else "false"
    cfg = load_config("kp_anny", [f"PATHS.DB_DIR={args.db_dir}", f"KEYPOINTS.NOISE={noise}", *args.overrides])
    start = time.perf_counter()
    train_clips = clips_from_config(cfg, "train")
    val_clips = clips_from_config(cfg, "val")
    x_val, y_val = generate(val_clips, args.val, args.seed + 1)
    x, y = generate(train_clips, args.pool, args.seed)
    print(f"data: {args.pool} training and {args.val} validation clips in {time.perf_counter() - start:.0f} s")
    N, T, K, C = x.shape

    mean_pose = procrustes_mean(y.reshape(-1, 14, 3)[:32768])  # 2,048 clips' frames are plenty
    summary: dict = {
        "setup": {k: getattr(args, k) for k in ("steps", "batch", "pool", "val", "width", "noise", "seed")},
        "procrustes_mean_pose": round(pa_mpjpe(mean_pose.expand(*y_val.shape[:2], 14, 3), y_val), 1),
        "evals": [],
    }
    if train_clips.lmap.residuals is not None:
        summary["residual_correlation"] = residual_correlation(train_clips.lmap)
    print(f"Procrustes mean pose: PA-MPJPE {summary['procrustes_mean_pose']} mm")
    if "residual_correlation" in summary:
        print(f"residual pool: {summary['residual_correlation']}")

    models = {"frame": mlp(K * C, 14 * 3, args.width), "window": mlp(T * K * C, T * 14 * 3, args.width)}
    optims = {k: torch.optim.AdamW(m.parameters(), 1e-3, weight_decay=1e-4) for k, m in models.items()}
    scheds = {k: torch.optim.lr_scheduler.OneCycleLR(o, 1e-3, total_steps=args.steps, pct_start=0.1)
              for k, o in optims.items()}  # fmt: skip

    def predict(name: str, inputs: torch.Tensor) -> torch.Tensor:
        n = inputs.shape[0]
        flat = inputs.reshape(n * T, K * C) if name == "frame" else inputs.reshape(n, T * K * C)
        return models[name](flat).reshape(n, T, 14, 3)

    every = max(1, args.steps // args.evals)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        rows = torch.randint(N, (args.batch,))
        for name in models:
            loss = (predict(name, x[rows]) - y[rows]).abs().mean()
            optims[name].zero_grad()
            loss.backward()
            optims[name].step()
            scheds[name].step()
        if step % every == 0 or step == args.steps:
            with torch.no_grad():
                scores = {name: round(pa_mpjpe(predict(name, x_val), y_val), 1) for name in models}
            summary["evals"].append({"step": step, "seconds": round(time.perf_counter() - start), **scores})
            print(f"step {step} ({time.perf_counter() - start:.0f} s): PA-MPJPE frame {scores['frame']}, "
                  f"window {scores['window']} mm", flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
