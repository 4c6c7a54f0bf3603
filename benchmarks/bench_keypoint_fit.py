"""How well the meshes of a ``maed demo`` run follow the people: the model's projected joints against the
landmarks BlazePose reported on the same frames, in percent of each person's box height.

No ground truth is needed, so it runs on real photographs and videos. The 12 limb joints the two skeletons
share are compared (shoulders, elbows, wrists, hips, knees, ankles; BlazePose's "hip" sits a little off
the rig's hip joint, so the hips carry a small constant offset); a landmark counts where BlazePose's
visibility is above 0.5 and that lies inside the frame (beyond its edge BlazePose only guesses). Prints,
per input and overall, the median and 90th percentile error and the number of compared points; ``--json``
writes them.

    maed demo photo.jpg --out out/photo            # with the shipped model
    python benchmarks/bench_keypoint_fit.py out/photo out/street --json fit.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from maed.models.keypoints import JOINT49_TO_BLAZEPOSE as PAIRS
from maed.models.keypoints import SEEN


def fit_errors(run_dir: Path) -> np.ndarray:
    """Errors (percent of the box height) of every compared joint of every person frame of one demo run."""
    path = Path(run_dir) / "tracks.npz"
    if not path.is_file():
        raise SystemExit(f"{path}: not found (run `maed demo INPUT --out {run_dir}` with a model first)")
    errors = []
    with np.load(path) as z:
        ids = sorted({k.split("/")[0] for k in z.files if k.startswith("person_") and "/" in k})
        width, height_px = (float(v) for v in z["image_size"])  # the frame, pixels
        for pid in ids:
            if f"{pid}/keypoints_blazepose" not in z.files or f"{pid}/joints2d" not in z.files:
                raise SystemExit(
                    f"{path}: {pid} lacks joints2d or keypoints_blazepose (a run with a model and keypoints)"
                )
            joints, landmarks = z[f"{pid}/joints2d"], z[f"{pid}/keypoints_blazepose"]
            height = z[f"{pid}/boxes"][:, 3]
            ji, li = np.array(PAIRS).T
            d = np.linalg.norm(joints[:, ji] - landmarks[:, li, :2], axis=-1) / height[:, None] * 100.0
            x, y = landmarks[:, li, 0], landmarks[:, li, 1]
            inside = (x >= 0) & (x < width) & (y >= 0) & (y < height_px)
            errors.append(d[(landmarks[:, li, 3] > SEEN) & inside])
    return np.concatenate(errors) if errors else np.zeros(0)


def summary(errors: np.ndarray) -> dict:
    if not len(errors):
        return {"points": 0, "median_pct": None, "p90_pct": None}
    return {
        "points": int(len(errors)),
        "median_pct": round(float(np.median(errors)), 2),
        "p90_pct": round(float(np.percentile(errors, 90)), 2),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="output folders of `maed demo` runs")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)
    results, every = {}, []
    for run in args.runs:
        e = fit_errors(run)
        results[str(run)] = summary(e)
        every.append(e)
        print(f"{run}: {results[str(run)]}")
    results["all"] = summary(np.concatenate(every))
    print(f"all: {results['all']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
