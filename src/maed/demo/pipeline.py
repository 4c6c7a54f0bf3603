"""``maed demo`` as a library call: input -> detections -> tracks -> predictions -> files and overlay video.

:func:`run_demo` checks everything a user can get wrong, then calls the stages of :mod:`maed.demo.stages`
in order, one function each, passing each the named outputs of the ones before it:

=========  ==================================================  ==================================
stage      work                                                cached in
=========  ==================================================  ==================================
detect     decode the input, person boxes per frame            ``cache/detections.npz``
track      link boxes into people, fill gaps, smooth, square   ``cache/tracks.npz``
infer      decode again, crop, run the model per 128 frames    ``cache/predictions.npz``
post       smoothing, body model, cameras, joints in pixels    (fast; always rerun)
write      tracks.npz, results.pkl                             --
export     person_<id>.glb / .bvh                              --
render     decode again, draw meshes, encode overlay.mp4       --
viewer     index.html: the overlay and the GLBs in a browser   --
=========  ==================================================  ==================================

Each cached file stores the signature of what produced it (input path, size and modification time; the
detector, its weights' hash and settings; tracking settings; the checkpoint's hash, the model config and
inference settings), chained so that a change upstream invalidates everything below it
(:class:`maed.demo.cache.StageCache`). A rerun with other rendering, smoothing or export options reuses the
cached stages; a changed input or model reruns them. A new stage is one function in ``stages.py`` and one
line below; a cached one states its settings and goes through ``DemoRun.cached``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from maed.demo import outputs as out_mod
from maed.demo import stages
from maed.demo.cache import CACHE_DIR, StageCache
from maed.demo.context import DemoRun
from maed.demo.model import DemoModel, resolve_model
from maed.demo.options import DemoOptions
from maed.demo.source import open_source
from maed.perception.weights import WEIGHTS
from maed.utils.device import resolve_device
from maed.utils.io import check_output_dir, remove_stale_temporaries


def run_demo(
    input_path: str | os.PathLike,
    options: DemoOptions | None = None,
    *,
    predictor=None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Run the demo on a video, a folder of frames or an image; returns the summary (also in summary.json).

    ``predictor``: replaces the model (an object with ``body_model``, ``signature`` and
    ``predict(tracks, frames, clock=, on_predicted=, warn=)``, as :class:`maed.demo.infer.ModelPredictor`);
    by default the checkpoint of ``options`` is loaded. ``log`` receives one-line messages (default: stderr).
    """
    options = options or DemoOptions()
    log = log or (lambda m: print(f"maed demo: {m}", file=sys.stderr))
    started = time.perf_counter()
    run = _start(input_path, options, log)

    # everything a user can get wrong fails here, before any work
    detector = stages.plan_detector(run)
    if options.keypoints_only:
        model = None
    elif predictor is None:
        model = DemoModel(options, run.clock, spec=resolve_model(options))
    else:
        model = DemoModel(options, run.clock, predictor=predictor)
    device = model.device if model is not None else str(resolve_device(options.device))
    _prepare_out(run.out)

    detected = stages.detect(run, detector, device=device)
    tracked = stages.track(run, detected)
    landmarks = stages.landmarks(run, tracked, device=device)
    if model is None:
        people = []
        outputs = stages.write_keypoints(run, tracked, detected, landmarks)
        rendered = stages.render_skeletons(run, tracked, landmarks) if options.render else None
    else:
        predictions = stages.infer(run, tracked, model, landmarks)
        people = stages.post(run, tracked, predictions, model)
        outputs = stages.write(run, people, detected, model, landmarks)
        if options.export:
            outputs += stages.export(run, people, model)
        rendered = stages.render(run, people, model) if options.render else None
    if rendered is not None:
        outputs += rendered.files
    if options.viewer:
        outputs += stages.viewer(run, outputs)

    summary = {
        # every decoding pass adds the damaged frames it meets (a --boxes run decodes first for the crops)
        "input": run.source.info.to_dict()
        | {"num_frames": detected.num_frames, "replaced_frames": run.source.replaced},
        "model": model.summary() if model is not None else None,
        "keypoints": _keypoints_summary(options, landmarks),
        "detector": _detector_summary(detector, detected, options),
        "num_people": len(tracked.tracks),
        "people": out_mod.people_table(tracked.tracks),
        "dropped_tracks": tracked.dropped,
        "frames": detected.num_frames,
        "stages": run.clock.report(),
        "seconds": round(time.perf_counter() - started, 3),
        "renderer": rendered.summary() if rendered is not None else None,
        "outputs": [*outputs, out_mod.SUMMARY_FILE],
        "messages": run.messages,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
    }
    summary["fps"] = round(detected.num_frames / summary["seconds"], 3) if summary["seconds"] > 0 else None
    out_mod.write_summary(run.out / out_mod.SUMMARY_FILE, summary)
    return summary


def _keypoints_summary(options: DemoOptions, landmarks: dict) -> dict:
    if options.keypoint_model == "none":
        return {"model": None}
    entry = WEIGHTS[f"blazepose_{options.keypoint_model}"]
    return {"model": f"BlazePose GHUM 3D {options.keypoint_model}", "file": entry.filename, "sha256": entry.sha256,
            "person_frames": int(sum(len(lm) for lm in landmarks.values()))}  # fmt: skip


def _start(input_path, options: DemoOptions, log: Callable[[str], None]) -> DemoRun:
    """Options checked, the output folder checked (not yet created), the input opened."""
    options.check()
    out = check_output_dir(options.out)
    messages: list[str] = []

    def warn_once(message: str) -> None:  # every decoding pass meets the same damaged frames
        if message not in messages:
            messages.append(message)
            log(message)

    source = open_source(input_path, fps=options.fps, warn=warn_once)
    return DemoRun(options=options, out=out, source=source, cache=StageCache(out), log=log, messages=messages)


def _prepare_out(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for folder in (out, out / CACHE_DIR):  # what killed earlier runs left half-written
        remove_stale_temporaries(folder)


def _detector_summary(plan: stages.DetectorPlan, detected: stages.Detected, options: DemoOptions) -> dict:
    detections = detected.detections
    return {
        "tier": detections.tier,
        "requested": options.detector,
        "reason": plan.choice.reason,
        "weights": str(plan.choice.weights) if plan.choice.weights else None,
        "boxes": str(options.boxes) if options.boxes else None,
        "detections": int(len(detections.frame)),
        "settings": detections.settings,
    }
