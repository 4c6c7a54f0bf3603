"""BlazePose's landmarks as points of the body model, fitted to what the real network reports on renders.

Training a model on keypoints needs keypoints of synthetic bodies that mean what the detector means: its
"hip" is not the rig's hip joint, and its errors have a shape of their own. :func:`fit_landmark_map` runs
the shipped BlazePose network on ``maed synth`` renders, whose bodies are known, and fits each of the 33
landmarks as a fixed convex combination of a few mesh vertices (non-negative least squares on the
projections, weights summing to one), then measures the network's noise around the fitted points: the
per-landmark spread (in units of the person's box side), how often a landmark it should see is reported
invisible, and how often left and right come out swapped. It also keeps the network's actual errors, frame
by frame along each person's track (the *residual pool*): synthetic training draws whole windows of them,
so its landmarks err as the network does (mostly within 2 % of the box, sometimes a limb far off, a side
swapped, a hand missed for a few frames), not with an invented distribution. :class:`LandmarkMap` holds the
result; :meth:`LandmarkMap.landmarks` places the landmarks on any posed body of the same body model.

    python -m maed.synth.landmarks --data SYNTH_DIR --split train --out src/maed/synth/data/blazepose_anny_cmu_mb.npz
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maed.body import build_body_model
from maed.perception.blazepose import BlazePose, Roi
from maed.perception.skeletons import BLAZEPOSE33, mirror_permutation
from maed.synth.sequence import load_rows
from maed.utils.io import atomic_path

CANDIDATES = 64  # vertices considered per landmark: those whose projections lie nearest the detections
SEEN = 0.5  # BlazePose visibility above which a landmark counts as reported


@dataclass
class LandmarkMap:
    """33 landmarks as convex combinations of vertices, and the detector's noise around them.

    vertex_ids (33, M) int64 and weights (33, M) float32 (rows sum to 1); spread (33,) standard deviation of
    the detector's landmark around the fitted point, as a fraction of the person's box side; miss (33,)
    fraction of frames where a landmark inside the frame was reported invisible; swap: fraction of frames
    with left and right exchanged; info: how it was fitted (files, counts, residuals).

    The residual pool (optional): residuals (N, 33, 2) float32, the network's landmark minus the fitted
    point, in box sides; residual_seen (N, 33) bool, whether it reported the landmark; residual_track (N,)
    int32, the person track of each row (a track's rows are consecutive frames, in order).
    """

    vertex_ids: np.ndarray
    weights: np.ndarray
    spread: np.ndarray
    miss: np.ndarray
    swap: float
    info: dict
    residuals: np.ndarray | None = None
    residual_seen: np.ndarray | None = None
    residual_track: np.ndarray | None = None

    def geometry_key(self) -> str:
        """A hash of what places the landmarks (vertex ids and weights), not of the noise: what posed landmarks
        depend on (``maed.synth.keypoint_data`` names its cached banks by it)."""
        import hashlib

        h = hashlib.sha256(np.ascontiguousarray(self.vertex_ids, np.int64).tobytes())
        h.update(np.ascontiguousarray(self.weights, np.float32).tobytes())
        return h.hexdigest()

    def landmarks(self, verts: np.ndarray) -> np.ndarray:
        """verts (..., V, 3) -> landmarks (..., 33, 3), in the same units and frame."""
        picked = verts[..., self.vertex_ids, :]  # (..., 33, M, 3)
        return (picked * self.weights[..., None]).sum(axis=-2)

    def save(self, path: Path) -> None:

        with atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                vertex_ids=self.vertex_ids,
                weights=self.weights,
                spread=self.spread,
                miss=self.miss,
                swap=np.float64(self.swap),
                info=np.array(json.dumps(self.info, sort_keys=True)),
                **(
                    {
                        "residuals": self.residuals.astype(np.float16),
                        "residual_seen": self.residual_seen.astype(bool),
                        "residual_track": self.residual_track.astype(np.int32),
                    }
                    if self.residuals is not None
                    else {}
                ),
            )

    @classmethod
    def load(cls, path: Path) -> LandmarkMap:
        with np.load(path, allow_pickle=False) as z:
            return cls(
                z["vertex_ids"].astype(np.int64),
                z["weights"].astype(np.float32),
                z["spread"].astype(np.float32),
                z["miss"].astype(np.float32),
                float(z["swap"]),
                json.loads(str(z["info"])),
                *(
                    (
                        z["residuals"].astype(np.float32),
                        z["residual_seen"].astype(bool),
                        z["residual_track"].astype(np.int32),
                    )
                    if "residuals" in z
                    else ()
                ),
            )


def shipped_map_path(body_model: str = "anny", rig: str = "cmu_mb") -> Path:
    """The fitted map that ships for a body model and rig (``maed/synth/data/``)."""
    return Path(__file__).resolve().parent / "data" / f"blazepose_{body_model}_{rig or 'default'}.npz"


# ------------------------------------------------------------------------------------------- fitting
def _project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    fx, fy, cx, cy = K
    return np.stack([fx * points[..., 0] / points[..., 2] + cx, fy * points[..., 1] / points[..., 2] + cy], -1)


def collect(
    data: Path, *, variant: str = "full", split: str | None = None, max_rows: int | None = None, progress: bool = True
) -> dict:
    """Run BlazePose on the people of ``maed synth`` renders in ``data`` (their boxes as regions, as ``maed
    eval`` does) and pair each detection with the body's projected vertices. ``split``: only the sequences
    of that split (``synth.json``), e.g. ``train``, so that validation and test frames stay unseen.

    Returns arrays over N person frames: ``uv`` (N, V, 2) projected vertices, ``det`` (N, 33, 4) BlazePose
    landmarks (pixels, visibility), ``side`` (N,) box sides, ``track`` (N,) int person track (a track's rows
    consecutive frames, in order), ``size`` (2,) frame width and height.
    """
    import cv2
    import torch
    from scipy.spatial.transform import Rotation
    from tqdm import tqdm

    run = json.loads((data / "synth_run.json").read_text())
    body = build_body_model(run["body_model"], rig=run["rig"]).eval()
    network = BlazePose(variant)
    files = sorted((data / "annotations").glob("seq_*.npz"))
    if split is not None:
        names = set(json.loads((data / "synth.json").read_text())["splits"][split])
        files = [f for f in files if f.stem in names]
    uv_all, det_all, side_all, track_all = [], [], [], []
    for path in tqdm(files, desc="landmarks on renders", disable=not progress):
        rows, _ = load_rows(path)
        keep = np.flatnonzero(rows["valid"] > 0)
        keep = keep[np.lexsort((rows["frame_id"][keep], rows["vid_name"][keep]))]  # by track, then frame
        if max_rows is not None:
            keep = keep[: max(0, max_rows - sum(len(u) for u in uv_all))]
        if not len(keep):
            continue
        pose = Rotation.from_rotvec(rows["pose"][keep].reshape(-1, 3)).as_matrix().reshape(len(keep), -1, 3, 3)
        with torch.no_grad():
            out = body(torch.as_tensor(pose, dtype=torch.float32), torch.as_tensor(rows["shape"][keep]))
        verts = out["verts"].double().numpy() + rows["trans"][keep, None].astype(np.float64)
        uv = np.stack([_project(v, k) for v, k in zip(verts, rows["intrinsics"][keep].astype(np.float64))])
        items = []
        for r in keep:
            image = cv2.cvtColor(cv2.imread(str(data / rows["img_name"][r])), cv2.COLOR_BGR2RGB)
            cx, cy, side, _ = rows["bbox"][r]
            items.append((image, Roi(float(cx), float(cy), float(side) * 1.25)))
        lm = network.run_many(items)
        uv_all.append(uv.astype(np.float32))
        det_all.append(lm.image)
        side_all.append(rows["bbox"][keep, 2])
        first = sum(len(t) for t in track_all) and int(np.concatenate(track_all).max()) + 1
        track_all.append(first + np.unique(rows["vid_name"][keep], return_inverse=True)[1].astype(np.int32))
    if not uv_all:
        raise SystemExit(f"{data}: no valid person frames in annotations/")
    return {
        "uv": np.concatenate(uv_all),
        "det": np.concatenate(det_all),
        "side": np.concatenate(side_all).astype(np.float64),
        "track": np.concatenate(track_all),
        "split": split or "all",
        "size": np.array([run["width"], run["height"]]),
        "files": [p.name for p in files],
    }


def fit_landmark_map(pairs: dict, *, candidates: int = CANDIDATES) -> LandmarkMap:
    """The map and noise from :func:`collect`'s pairs (see the module docstring)."""
    from scipy.optimize import nnls

    uv, det, side = pairs["uv"].astype(np.float64), pairs["det"].astype(np.float64), pairs["side"]
    W, H = pairs["size"]
    N, V, _ = uv.shape
    L = len(BLAZEPOSE33)
    perm = mirror_permutation(BLAZEPOSE33)
    ids = np.zeros((L, candidates), np.int64)
    weights = np.zeros((L, candidates), np.float32)
    residual = np.zeros(L)
    for lmk in range(L):
        seen = det[:, lmk, 3] > SEEN
        if seen.sum() < 10:
            raise SystemExit(f"landmark {BLAZEPOSE33[lmk]}: seen in only {int(seen.sum())} frames; render more")
        target = det[seen, lmk, :2]  # (n, 2)
        scale = side[seen][:, None]
        # the vertices whose projections lie nearest the detections (median over frames, in box units)
        dist = np.median(np.linalg.norm(uv[seen] - target[:, None], axis=-1) / scale, axis=0)  # (V,)
        cand = np.argsort(dist)[:candidates]
        # rows: x and y of every frame, divided by the box side; a last heavy row makes the weights sum to 1
        A = np.concatenate([(uv[seen][:, cand, 0] / scale), (uv[seen][:, cand, 1] / scale)], axis=0)
        b = np.concatenate([target[:, 0] / scale[:, 0], target[:, 1] / scale[:, 0]])
        A = np.concatenate([A, 100.0 * np.ones((1, len(cand)))])
        b = np.concatenate([b, [100.0]])
        w, _ = nnls(A, b, maxiter=5000)
        w = w / max(w.sum(), 1e-9)
        order = np.argsort(-w)
        ids[lmk], weights[lmk] = cand[order], w[order]
        fitted = (uv[seen][:, cand] * w[None, :, None]).sum(axis=1)
        residual[lmk] = float(np.median(np.linalg.norm(fitted - target, axis=-1) / side[seen]))
    keep = max(1, int((weights > 1e-3).sum(axis=1).max()))
    ids, weights = ids[:, :keep], weights[:, :keep] / weights[:, :keep].sum(axis=1, keepdims=True)

    points = (uv[:, ids] * weights[None, ..., None]).sum(axis=2)  # (N, 33, 2) the fitted landmarks
    inside = (points[..., 0] >= 0) & (points[..., 0] < W) & (points[..., 1] >= 0) & (points[..., 1] < H)
    seen = det[..., 3] > SEEN
    err = np.linalg.norm(det[..., :2] - points, axis=-1) / side[:, None]
    err_swapped = np.linalg.norm(det[:, perm, :2] - points, axis=-1) / side[:, None]
    sided = np.array([perm[k] != k for k in range(L)])
    swapped = ((err_swapped[:, sided] < err[:, sided]).mean(axis=1) > 0.5) & (seen[:, sided].mean(axis=1) > 0.5)
    good = seen & inside & (err < 0.25)  # the spread of ordinary errors: gross ones are swaps or misses
    spread = np.array([np.sqrt(np.mean(err[good[:, k], k] ** 2)) if good[:, k].any() else 0.1 for k in range(L)])
    miss = np.array([1.0 - seen[inside[:, k], k].mean() if inside[:, k].any() else 0.5 for k in range(L)])
    info = {
        "person_frames": int(N),
        "split": pairs.get("split", "all"),
        "files": pairs.get("files", []),
        "median_residual_box": {BLAZEPOSE33[k]: round(float(residual[k]), 4) for k in range(L)},
        "vertices_per_landmark": int(keep),
    }
    # outside the frame the pool has no say (the sampler hides such landmarks itself): reported, no error
    residuals = np.where(inside[..., None], (det[..., :2] - points) / side[:, None, None], 0.0)
    track = pairs.get("track")
    return LandmarkMap(ids, weights.astype(np.float32), spread.astype(np.float32), miss.astype(np.float32),
                       float(swapped.mean()), info, residuals.astype(np.float32), seen | ~inside,
                       None if track is None else np.asarray(track, np.int32))  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="a `maed synth` output folder")
    p.add_argument("--out", type=Path, required=True, help="the map file (.npz) to write")
    p.add_argument("--variant", default="full", choices=["lite", "full", "heavy"])
    p.add_argument("--split", default="train", help="fit on this split's sequences only ('all': every one)")
    p.add_argument("--max-rows", type=int, default=None, help="person frames to use at most")
    args = p.parse_args(argv)
    split = None if args.split == "all" else args.split
    m = fit_landmark_map(collect(args.data, variant=args.variant, split=split, max_rows=args.max_rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    m.save(args.out)
    print(json.dumps({"spread": m.spread.round(3).tolist(), "miss": m.miss.round(3).tolist(), "swap": m.swap,
                      **m.info}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
