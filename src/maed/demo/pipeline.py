"""``maed demo`` as a library call: input -> detections -> tracks -> predictions -> files and overlay video.

Stages and their files in ``--out`` (docs/OUTPUTS.md):

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
=========  ==================================================  ==================================

Each cached file stores the signature of what produced it (input path, size and modification time; the
detector, its weights' hash and settings; tracking settings; the checkpoint's hash, the model config and
inference settings), chained so that a change upstream invalidates everything below it. A rerun with other
rendering, smoothing or export options reuses the cached stages; a changed input or model reruns them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maed.demo import detect as det_mod
from maed.demo import outputs as out_mod
from maed.demo import track as trk_mod
from maed.demo.options import DemoOptions
from maed.demo.source import FrameSource, open_source
from maed.utils.io import atomic_path, check_output_dir, remove_stale_temporaries

CACHE_DIR = "cache"
CACHE_VERSION = 1


# --------------------------------------------------------------------------------------------- timing
class StageClock:
    """Seconds and frames per stage; ``with clock("detect"): ...`` adds time, ``timed(frames)`` times decoding."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.frames: dict[str, int] = defaultdict(int)
        self.cached: set[str] = set()

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def count(self, name: str, n: int) -> None:
        self.frames[name] += int(n)

    def timed(self, frames: Iterable, name: str = "decode") -> Iterator:
        it = iter(frames)
        while True:
            start = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                self.seconds[name] += time.perf_counter() - start
                return
            self.seconds[name] += time.perf_counter() - start
            self.frames[name] += 1
            yield item

    def report(self) -> dict[str, dict]:
        names = list(dict.fromkeys([*self.seconds, *self.cached]))
        out = {}
        for n in names:
            s, f = self.seconds.get(n, 0.0), self.frames.get(n, 0)
            out[n] = {
                "seconds": round(s, 4),
                "frames": f,
                "fps": round(f / s, 2) if s > 0 and f else None,
                "cached": n in self.cached,
            }
        return out


# --------------------------------------------------------------------------------------------- cache
def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    from maed.utils.io import file_sha256

    return file_sha256(path)


def folder_fingerprint(path: str | os.PathLike | None) -> dict | None:
    """Names, sizes and modification times of a folder's files (the body-model directory)."""
    if path is None or not Path(path).is_dir():
        return None
    h = hashlib.sha256()
    for p in sorted(Path(path).iterdir()):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"path": str(Path(path).resolve()), "digest": h.hexdigest()}


class StageCache:
    """``<out>/cache/<stage>.npz`` files, each holding the signature (a JSON string) it was made with."""

    def __init__(self, out_dir: Path):
        self.dir = Path(out_dir) / CACHE_DIR

    def load(self, name: str, signature: dict) -> dict[str, np.ndarray] | None:
        path = self.dir / f"{name}.npz"
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["signature"]) != json.dumps(signature, sort_keys=True, default=str):
                    return None
                return {k: z[k] for k in z.files if k != "signature"}
        except (OSError, ValueError, KeyError, EOFError):  # a damaged cache file is rebuilt
            return None

    def save(self, name: str, signature: dict, arrays: dict[str, np.ndarray]) -> None:
        path = self.dir / f"{name}.npz"
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, signature=np.array(json.dumps(signature, sort_keys=True, default=str)), **arrays)


# --------------------------------------------------------------------------------------------- model
@dataclass
class ModelSpec:
    """The model a run uses, resolved without loading its weights (those load only if inference runs)."""

    checkpoint: Path
    checkpoint_data: dict
    config: Any
    body_model_dir: str | None
    device: str
    sha256: str

    def signature(self) -> dict:
        cfg = self.config.to_dict()
        return {
            "checkpoint": str(self.checkpoint.resolve()),
            "checkpoint_sha256": self.sha256,
            "model": cfg["MODEL"],
            "crop": [cfg["DATASET"]["WIDTH"], cfg["DATASET"]["HEIGHT"]],
            "seqlen": cfg["EVAL"]["SEQLEN"],
            "sample_pool": cfg["EVAL"]["SAMPLE_POOL"],
            "body_model_dir": folder_fingerprint(self.body_model_dir),
        }


def resolve_model(options: DemoOptions) -> ModelSpec:
    """Checkpoint (``--checkpoint`` or the shipped default), its config, body-model directory and device."""
    from maed.config import load_config
    from maed.models.checkpoint import read_checkpoint
    from maed.paths import default_checkpoint, resolve_paths
    from maed.utils.device import resolve_device

    checkpoint = Path(options.checkpoint).expanduser() if options.checkpoint else default_checkpoint()
    data = read_checkpoint(checkpoint)
    if options.config is not None:
        cfg = load_config(options.config)
    else:
        stored = data.get("config") if isinstance(data, dict) else None
        cfg = load_config(stored if isinstance(stored, dict) and stored else "stage2")
    body_dir = options.body_model_dir or resolve_paths(cfg.PATHS)["body_model_dir"]
    device = str(resolve_device(options.device))  # None: CUDA when present, else the CPU
    return ModelSpec(
        checkpoint=checkpoint,
        checkpoint_data=data,
        config=cfg,
        body_model_dir=str(body_dir),
        device=device,
        sha256=file_digest(checkpoint),
    )


def build_predictor(spec: ModelSpec, options: DemoOptions, signature: dict):
    from maed.demo.infer import ModelPredictor
    from maed.models import load_model

    cfg = spec.config
    model = load_model(
        spec.checkpoint_data,
        body_model_dir=spec.body_model_dir,
        config=cfg,
        device=spec.device,
        precision=options.precision,
    )
    return ModelPredictor(
        model,
        crop_width=cfg.DATASET.WIDTH,
        crop_height=cfg.DATASET.HEIGHT,
        seqlen=cfg.EVAL.SEQLEN,
        sample_pool=cfg.EVAL.SAMPLE_POOL,
        frame_step=options.frame_step if options.frame_step is not None else cfg.EVAL.INTERPOLATION,
        batch_size=options.batch_size,
        device=spec.device,
        signature=signature,
    )


# --------------------------------------------------------------------------------------------- runner
@dataclass
class DemoRun:
    """State shared by the stages of one run."""

    options: DemoOptions
    out: Path
    source: FrameSource
    clock: StageClock = field(default_factory=StageClock)
    messages: list[str] = field(default_factory=list)
    log: Callable[[str], None] = print

    def note(self, message: str) -> None:
        self.messages.append(message)
        self.log(message)

    def bar(self, desc: str, total: int | None):
        from tqdm import tqdm

        return tqdm(
            total=total,
            desc=f"[demo] {desc}",
            unit="frame",
            disable=not self.options.progress,
            leave=False,
            file=sys.stderr,
        )

    def frames(self, desc: str, total: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Decode the input from its start (timed as 'decode'), with a progress bar."""
        total = total if total is not None else self.source.info.num_frames
        with self.bar(desc, total) as bar:
            for item in self.clock.timed(self.source.frames(), "decode"):
                yield item
                bar.update(1)


def run_demo(
    input_path: str | os.PathLike,
    options: DemoOptions | None = None,
    *,
    predictor=None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Run the demo on a video, a folder of frames or an image; returns the summary (also in summary.json).

    ``predictor``: replaces the model (an object with ``body_model``, ``signature`` and
    ``predict(tracks, frames, clock=, on_frame=, warn=)``, as :class:`maed.demo.infer.ModelPredictor`);
    by default the checkpoint of ``options`` is loaded. ``log`` receives one-line messages (default: stderr).
    """
    options = options or DemoOptions()
    log = log or (lambda m: print(f"maed demo: {m}", file=sys.stderr))
    started = time.perf_counter()
    options.check()
    out = check_output_dir(options.out)
    messages: list[str] = []

    def warn_once(message: str) -> None:  # every decoding pass meets the same damaged frames
        if message not in messages:
            messages.append(message)
            log(message)

    source = open_source(input_path, fps=options.fps, warn=warn_once)
    run = DemoRun(options=options, out=out, source=source, log=log, messages=messages)
    info = source.info

    # ------------------------------------------------------------------ everything that can fail early
    choice = det_mod.choose_detector(options.detector, boxes=options.boxes, weights=options.detector_weights)
    user_boxes = det_mod.load_boxes_file(options.boxes, info.num_frames) if choice.tier == "boxes" else None
    spec = None
    if predictor is None:
        spec = resolve_model(options)
    det_sig = {
        "version": CACHE_VERSION,
        "input": source.fingerprint(),
        "tier": choice.tier,
        "threshold": options.detector_threshold,
        "size": options.detector_size,
        "every": options.detect_every,
        "weights": file_digest(choice.weights) if choice.weights else None,
        "boxes": file_digest(options.boxes) if choice.tier == "boxes" else None,
    }
    trk_sig = {
        "detect": _digest(det_sig),
        "iou": options.iou_threshold,
        "max_age": options.max_age,
        "min_length": options.min_track_length,
        "box_smoothing": options.box_smoothing,
    }
    model_sig = spec.signature() if spec is not None else dict(predictor.signature)
    precision = options.precision
    if spec is not None:  # what it resolves to on this device (auto: bf16 or fp32); another machine's cache is redone
        from maed.models.fast import resolve_precision

        precision = resolve_precision(options.precision, spec.device)
    inf_sig = {
        "track": _digest(trk_sig),
        "model": model_sig,
        "frame_step": options.frame_step,
        "precision": precision,
    }
    cache = StageCache(out)
    cached = {
        "detections": cache.load("detections", det_sig),
        "tracks": cache.load("tracks", trk_sig),
        "predictions": cache.load("predictions", inf_sig),
    }
    device = spec.device if spec is not None else "cpu"
    out.mkdir(parents=True, exist_ok=True)
    for folder in (out, out / CACHE_DIR):  # what killed earlier runs left half-written
        remove_stale_temporaries(folder)

    # ------------------------------------------------------------------ detect
    if cached["detections"] is not None:
        detections = det_mod.Detections.from_arrays(cached["detections"])
        info.num_frames = detections.num_frames
        source.replaced = [int(i) for i in cached["detections"].get("replaced", [])]
        run.clock.cached.add("detect")
    else:
        detections = _detect(run, choice, user_boxes, device)
        cache.save("detections", det_sig, {**detections.to_arrays(), "replaced": np.array(source.replaced, np.int64)})
    num_frames = detections.num_frames

    # ------------------------------------------------------------------ track
    if cached["tracks"] is not None:
        tracks = trk_mod.tracks_from_arrays(cached["tracks"])
        dropped = int(cached["tracks"]["dropped"])
        run.clock.cached.add("track")
    else:
        with run.clock("track"):
            ids = (
                detections.track_ids
                if detections.has_track_ids
                else trk_mod.link_detections(detections, iou_threshold=options.iou_threshold, max_age=options.max_age)
            )
            tracks, dropped_tracks = trk_mod.build_tracks(
                detections, ids, min_length=options.min_track_length, smooth=options.box_smoothing
            )
            dropped = len(dropped_tracks)
        run.clock.count("track", num_frames)
        cache.save("tracks", trk_sig, {**trk_mod.tracks_to_arrays(tracks), "dropped": np.array(dropped)})
    if not tracks:
        if len(detections.frame) == 0:
            run.note(
                f"no person found in {info.path} by the {detections.tier} detector; the outputs hold no people "
                "(try --boxes FILE, --detector-weights PATH, or --detector full-frame for one centred person)"
            )
        else:
            need = max(1, min(options.min_track_length, num_frames))
            run.note(
                f"every track ({dropped}) is shorter than {need} frames (--min-track-length); the outputs hold "
                "no people (lower --min-track-length to keep short tracks)"
            )

    # ------------------------------------------------------------------ model (only once there are people)
    body_model = None
    if tracks:
        if predictor is None and cached["predictions"] is None:
            with run.clock("load_model"):
                predictor = build_predictor(spec, options, inf_sig["model"])
        if predictor is not None:
            body_model = predictor.body_model
        else:  # predictions cached: the body model alone turns them into meshes
            from maed.body import build_body_model

            with run.clock("load_model"):
                body_model = build_body_model(spec.config.MODEL.BODY_MODEL, model_dir=spec.body_model_dir)
                body_model = body_model.to(device)

    # ------------------------------------------------------------------ infer
    if cached["predictions"] is not None:
        predictions = _predictions_from_arrays(cached["predictions"], tracks)
        run.clock.cached.add("infer")
    else:
        predictions = {}
        if tracks:
            total = max(t.last for t in tracks) + 1
            predictions = predictor.predict(
                tracks,
                run.frames("infer", total=total),
                clock=run.clock,
                warn=run.note,
            )
            run.clock.count("infer", sum(len(t) for t in tracks))
            run.clock.count("crop", sum(len(t) for t in tracks))
        cache.save("predictions", inf_sig, _predictions_to_arrays(predictions))

    # ------------------------------------------------------------------ post-process, write
    smooth = {"min_cutoff": options.smooth_min_cutoff, "beta": options.smooth_beta} if options.smooth else None
    with run.clock("post"):
        people = [
            out_mod.make_person(
                t,
                predictions[t.track_id],
                body_model,
                width=info.width,
                height=info.height,
                fps=info.fps,
                smooth=smooth,
                vertices=True,  # results.pkl holds them (VIBE's layout): one body-model pass for both
                device=device,
            )
            for t in tracks
        ]
        out_mod.write_tracks_npz(
            out / out_mod.TRACKS_FILE,
            people,
            width=info.width,
            height=info.height,
            fps=info.fps,
            num_frames=num_frames,
            body_model=body_model,
            save_verts=options.save_verts,
            device=device,
        )
        out_mod.write_results_pkl(out / out_mod.RESULTS_FILE, people, body_model, device=device)
        for p in people:  # rendering recomputes them a chunk at a time: long videos stay within memory
            p.verts = None
    run.clock.count("post", sum(len(p.track) for p in people))
    outputs = [out_mod.TRACKS_FILE, out_mod.RESULTS_FILE]

    exported = _export(run, people, body_model, device) if options.export else []
    outputs += exported
    renderer_info = _render(run, people, body_model, device) if options.render else None
    if renderer_info is not None:
        outputs += renderer_info.pop("files")

    summary = {
        "input": info.to_dict() | {"num_frames": num_frames, "replaced_frames": source.replaced},
        "model": _model_summary(spec, predictor, body_model),
        "detector": {
            "tier": detections.tier,
            "requested": options.detector,
            "reason": choice.reason,
            "weights": str(choice.weights) if choice.weights else None,
            "boxes": str(options.boxes) if options.boxes else None,
            "detections": int(len(detections.frame)),
            "settings": detections.settings,
        },
        "num_people": len(people),
        "people": out_mod.people_table(people),
        "dropped_tracks": dropped,
        "frames": num_frames,
        "stages": run.clock.report(),
        "seconds": round(time.perf_counter() - started, 3),
        "renderer": renderer_info,
        "outputs": [*outputs, out_mod.SUMMARY_FILE],
        "messages": run.messages,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
    }
    summary["fps"] = round(num_frames / summary["seconds"], 3) if summary["seconds"] > 0 else None
    out_mod.write_summary(out / out_mod.SUMMARY_FILE, summary)
    return summary


def _model_summary(spec: ModelSpec | None, predictor, body_model) -> dict:
    if body_model is None:  # no person: the model was not needed
        base = {"body_model": spec.config.MODEL.BODY_MODEL if spec is not None else None}
    else:
        base = {
            "body_model": getattr(body_model, "name", type(body_model).__name__),
            "joints": int(body_model.num_joints),
            "vertices": int(body_model.num_vertices),
        }
    setup = getattr(getattr(predictor, "model", None), "inference_setup", None)
    if setup is not None:  # maed.models.fast: what --precision resolved to, and the instructions it uses
        base["precision"] = setup.describe()
    if spec is None:
        return base | {"checkpoint": None, "predictor": type(predictor).__name__}
    return base | {
        "checkpoint": str(spec.checkpoint),
        "sha256": spec.sha256,
        "device": spec.device,
        "body_model_dir": spec.body_model_dir,
    }


def _detect(run: DemoRun, choice, user_boxes, device: str) -> det_mod.Detections:
    info = run.source.info
    if choice.tier == "boxes":
        n = run.source.count_frames()
        if len(user_boxes.frame) and int(user_boxes.frame.max()) >= n:
            from maed.errors import DataError

            raise DataError(
                f"--boxes {run.options.boxes}: frame {int(user_boxes.frame.max())} is listed, but the input has "
                f"{n} frames (frames count from 0)"
            )
        user_boxes.num_frames = n
        user_boxes.settings = {"tier": "boxes", "file": str(run.options.boxes)}
        return user_boxes
    if choice.tier == "full-frame" and info.kind != "video":
        n = info.num_frames
        box = det_mod.full_frame_box_xyxy(info.width, info.height)[None]
        dets = det_mod.Detections.from_lists("full-frame", [(box, np.ones(1))] * n, 1.0)
        dets.track_ids[:] = 1
        dets.settings = {"tier": "full-frame"}
        return dets
    detector = det_mod.build_detector(
        choice, threshold=run.options.detector_threshold, size=run.options.detector_size, device=device
    )
    frames = run.frames("detect")

    class _Timed(det_mod.Detector):
        tier, box_scale, batch_size = detector.tier, detector.box_scale, detector.batch_size

        def __call__(self, batch):
            with run.clock("detect"):
                result = detector(batch)
            run.clock.count("detect", len(batch))
            return result

    dets = det_mod.detect_frames(frames, _Timed(), every=run.options.detect_every)
    if choice.tier == "full-frame":
        dets.track_ids[:] = 1
    dets.settings = {**detector.describe(), "every": run.options.detect_every}
    return dets


def _predictions_to_arrays(predictions: dict) -> dict[str, np.ndarray]:
    arrays = {}
    for tid, p in predictions.items():
        arrays[f"{tid}/cam"] = p.cam
        arrays[f"{tid}/rotmat"] = p.rotmat
        arrays[f"{tid}/betas"] = p.betas
    return arrays


def _predictions_from_arrays(arrays: dict, tracks: list) -> dict:
    from maed.demo.infer import TrackPrediction

    return {
        t.track_id: TrackPrediction(
            cam=arrays[f"{t.track_id}/cam"], rotmat=arrays[f"{t.track_id}/rotmat"], betas=arrays[f"{t.track_id}/betas"]
        )
        for t in tracks
    }


def _export(run: DemoRun, people: list, body_model, device: str) -> list[str]:
    """``person_<id>.glb`` and ``person_<id>.bvh`` (maed.export): each person's skeleton for their mean shape,
    animated by the predicted rotations and the root translation of ``maed.demo.outputs.camera_translation``.
    Files of people an earlier run found and this one did not are removed."""
    from maed.export.bvh import write_bvh
    from maed.export.gltf import write_glb
    from maed.export.rig import rig_from_body_model
    from maed.render.overlay import track_color

    files = []
    fps = run.source.info.fps
    with run.clock("export"):
        for p in people:
            rig = rig_from_body_model(body_model, p.betas.mean(axis=0))
            name = f"person_{p.track_id}"
            write_glb(run.out / f"{name}.glb", rig, p.rotmat, p.trans, fps, name=name, color=track_color(p.track_id))
            write_bvh(run.out / f"{name}.bvh", rig, p.rotmat, p.trans, fps)
            files += [f"{name}.glb", f"{name}.bvh"]
        for stale in [*run.out.glob("person_*.glb"), *run.out.glob("person_*.bvh")]:
            if stale.name not in files:
                stale.unlink()
    run.clock.count("export", sum(len(p.track) for p in people))
    return files


def _render(run: DemoRun, people: list, body_model, device: str) -> dict:
    """``overlay.mp4`` (every input frame, meshes over the people) and, with ``--side-view``,
    ``overlay_side.mp4`` (the meshes turned 90 degrees, over a plain background), through maed.render."""
    from maed.render.overlay import OverlayRenderer, PersonDraw, track_color
    from maed.render.video import VideoWriter

    info, clock = run.source.info, run.clock
    size = {"width": info.width, "height": info.height}
    files = [out_mod.OVERLAY_FILE] + ([out_mod.SIDE_FILE] if run.options.side_view else [])
    renderer = None
    if people:
        with clock("render"):
            renderer = OverlayRenderer(info.width, info.height, body_model.faces.cpu().numpy(),
                                       backend=run.options.renderer)  # fmt: skip
    streams = [(p, out_mod.VertexStream(p, body_model, device), track_color(p.track_id)) for p in people]
    with contextlib.ExitStack() as stack:
        if renderer is not None:
            stack.callback(renderer.close)
        writers = [stack.enter_context(VideoWriter(run.out / f, fps=info.fps, **size)) for f in files]
        for index, frame in run.frames("render"):
            with clock("render"):
                draws = [PersonDraw(verts=vs.at(index), cam=p.cam_full[index - p.track.first], color=color)
                         for p, vs, color in streams if p.track.first <= index <= p.track.last]  # fmt: skip
                images = [renderer.render(frame, draws) if draws else frame]
                if run.options.side_view:
                    images.append(renderer.render_side(frame.shape, draws) if draws else _side_background(frame))
            with clock("encode"):
                for writer, image in zip(writers, images):
                    writer.write(image)
            clock.count("render", 1)
            clock.count("encode", 1)
    if renderer is None:
        return {"backend": None, "fallback_reason": None, "note": "no person to draw", "files": files}
    return {"backend": renderer.backend, "fallback_reason": renderer.fallback_reason, "files": files}


def _side_background(frame: np.ndarray) -> np.ndarray:
    from maed.render.overlay import SIDE_BACKGROUND

    out = np.empty_like(frame)
    out[:] = SIDE_BACKGROUND
    return out
