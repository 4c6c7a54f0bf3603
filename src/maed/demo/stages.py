"""The stages of ``maed demo``, one function each, in the order :func:`maed.demo.pipeline.run_demo` calls them.

Each takes the run (:class:`maed.demo.context.DemoRun`) and the named outputs of the stages before it, and
returns its own. A cached stage states its settings and calls :meth:`DemoRun.cached` once; the cache chains
its signature to the cached stage before it. A stage that writes files returns their names.

=========  ====================================================  =====================================
stage      work                                                  returns (cached in)
=========  ====================================================  =====================================
detect     decode the input, person boxes per frame              :class:`Detected` (cache/detections.npz)
track      link boxes into people, fill gaps, smooth, square     :class:`Tracked` (cache/tracks.npz)
landmarks  decode again, BlazePose on each person's region       landmarks by track id
                                                                 (cache/landmarks.npz)
infer      decode again, crop, run the model per window          predictions by track id
                                                                 (cache/predictions.npz)
post       smoothing, body model, cameras, joints in pixels      one :class:`Person` per track
write      tracks.npz, results.pkl                               file names
export     person_<id>.glb / .bvh                                file names
render     decode again, draw meshes, encode overlay.mp4         :class:`Rendered` or None
viewer     index.html: the overlay and the GLBs in a browser     file names
=========  ====================================================  =====================================
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from maed.demo import outputs as out_mod
from maed.demo import track as trk_mod
from maed.demo.cache import file_digest
from maed.demo.context import DemoRun
from maed.demo.infer import TrackPrediction
from maed.demo.model import DemoModel
from maed.demo.outputs import Person
from maed.demo.track import Track
from maed.errors import ConfigError, DataError
from maed.export.bvh import write_bvh
from maed.export.gltf import write_glb
from maed.export.rig import rig_from_body_model
from maed.models.keypoints import KEYPOINT_INPUTS_VERSION
from maed.perception import detectors as det_mod
from maed.perception.blazepose import BlazePose, Landmarks, Roi, roi_from_coco
from maed.perception.skeletons import BLAZEPOSE33_EDGES, COCO17_EDGES
from maed.perception.weights import verified_path
from maed.render.overlay import SIDE_BACKGROUND, OverlayRenderer, PersonDraw, track_color
from maed.render.skeleton import draw_skeleton
from maed.render.video import VideoWriter
from maed.utils.io import atomic_path
from maed.viewer.demo import write_demo_page

#: network output for every frame of each track, by track id
Predictions = dict[int, TrackPrediction]


# ------------------------------------------------------------------------------------------------ detect
@dataclass
class DetectorPlan:
    """The detection tier that will run (and why), and the ``--boxes`` file's boxes when that tier is boxes."""

    choice: det_mod.DetectorChoice
    user_boxes: det_mod.Detections | None = None


@dataclass
class Detected:
    """Person boxes in every frame of the input, and the frames that could not be decoded (replaced by the
    previous readable one)."""

    detections: det_mod.Detections
    replaced: list[int]

    @property
    def num_frames(self) -> int:
        return self.detections.num_frames

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {**self.detections.to_arrays(), "replaced": np.array(self.replaced, np.int64)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Detected:
        return cls(det_mod.Detections.from_arrays(arrays), [int(i) for i in arrays.get("replaced", [])])


def plan_detector(run: DemoRun) -> DetectorPlan:
    """``--detector``, ``--boxes`` and ``--detector-weights`` resolved, their files read (fails before any work)."""
    options = run.options
    choice = det_mod.choose_detector(options.detector, boxes=options.boxes, weights=options.detector_weights)
    boxes = det_mod.load_boxes_file(options.boxes, run.source.info.num_frames) if choice.tier == "boxes" else None
    # the shipped networks' files are checked now: a missing or damaged one fails before anything is written

    if choice.tier == "movenet":
        verified_path("movenet_multipose")
    if options.keypoint_model != "none":
        verified_path(f"blazepose_{options.keypoint_model}")
    return DetectorPlan(choice, boxes)


def detect(run: DemoRun, plan: DetectorPlan, *, device: str) -> Detected:
    """Boxes of the people in every frame (decodes the input once unless the tier needs no pixels)."""
    options, source = run.options, run.source
    settings = {
        "input": source.fingerprint(),
        "tier": plan.choice.tier,
        "threshold": options.detector_threshold,
        "size": options.detector_size,
        "every": options.detect_every,
        "fine_pass_every": options.fine_pass_every if plan.choice.tier == "movenet" else None,
        "weights": file_digest(plan.choice.weights) if plan.choice.weights else None,
        "boxes": file_digest(options.boxes) if plan.choice.tier == "boxes" else None,
    }

    def compute() -> Detected:
        detections = _run_detector(run, plan, device)
        return Detected(detections, list(source.replaced))

    detected = run.cached("detect", "detections", settings, compute, to_arrays=Detected.to_arrays,
                          from_arrays=Detected.from_arrays)  # fmt: skip
    source.info.num_frames = detected.num_frames
    source.replaced = list(detected.replaced)
    return detected


def _run_detector(run: DemoRun, plan: DetectorPlan, device: str) -> det_mod.Detections:
    info, options, choice = run.source.info, run.options, plan.choice
    if choice.tier == "boxes":
        user_boxes = plan.user_boxes
        n = run.source.count_frames()
        if len(user_boxes.frame) and int(user_boxes.frame.max()) >= n:
            raise DataError(
                f"--boxes {options.boxes}: frame {int(user_boxes.frame.max())} is listed, but the input has "
                f"{n} frames (frames count from 0)"
            )
        user_boxes.num_frames = n
        user_boxes.settings = {"tier": "boxes", "file": str(options.boxes)}
        return user_boxes
    if choice.tier == "full-frame" and info.kind != "video":
        n = info.num_frames
        box = det_mod.full_frame_box_xyxy(info.width, info.height)[None]
        dets = det_mod.Detections.from_lists("full-frame", [(box, np.ones(1))] * n, 1.0)
        dets.track_ids[:] = 1
        dets.settings = {"tier": "full-frame"}
        return dets
    detector = det_mod.build_detector(choice, threshold=options.detector_threshold, size=options.detector_size,
                                      device=device, fine_pass_every=options.fine_pass_every)  # fmt: skip
    frames = run.frames("detect")

    class _Timed(det_mod.Detector):
        tier, box_scale, batch_size = detector.tier, detector.box_scale, detector.batch_size

        def __call__(self, batch):
            with run.clock("detect"):
                result = detector(batch)
            run.clock.count("detect", len(batch))
            return result

    dets = det_mod.detect_frames(frames, _Timed(), every=options.detect_every)
    if choice.tier == "full-frame":
        dets.track_ids[:] = 1
    dets.settings = {**detector.describe(), "every": options.detect_every}
    return dets


# ------------------------------------------------------------------------------------------------ track
@dataclass
class Tracked:
    """The people kept (tracks of consecutive frames with square crop boxes) and how many tracks were dropped
    as shorter than ``--min-track-length``."""

    tracks: list[Track]
    dropped: int
    dropped_spans: list[tuple[int, int]] | None = None  # first and last frame of each dropped track

    def to_arrays(self) -> dict[str, np.ndarray]:
        spans = np.array(self.dropped_spans or [], np.int64).reshape(-1, 2)
        return {**trk_mod.tracks_to_arrays(self.tracks), "dropped": np.array(self.dropped), "dropped_spans": spans}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Tracked:
        spans = [tuple(map(int, r)) for r in arrays.get("dropped_spans", np.zeros((0, 2), np.int64))]
        return cls(trk_mod.tracks_from_arrays(arrays), int(arrays["dropped"]), spans)


def track(run: DemoRun, detected: Detected) -> Tracked:
    """Boxes linked into people (the tier's own track ids when it gives them), gaps filled, boxes smoothed."""
    options, detections = run.options, detected.detections
    settings = {
        "iou": options.iou_threshold,
        "max_age": options.max_age,
        "min_length": options.min_track_length,
        "box_smoothing": options.box_smoothing,
    }

    def compute() -> Tracked:
        with run.clock("track"):
            ids = (
                detections.track_ids
                if detections.has_track_ids
                else trk_mod.link_detections(detections, iou_threshold=options.iou_threshold, max_age=options.max_age)
            )
            tracks, dropped = trk_mod.build_tracks(
                detections, ids, min_length=options.min_track_length, smooth=options.box_smoothing
            )
        run.clock.count("track", detected.num_frames)
        return Tracked(tracks, len(dropped), [(t.first, t.last) for t in dropped])

    tracked = run.cached("track", "tracks", settings, compute, to_arrays=Tracked.to_arrays,
                         from_arrays=Tracked.from_arrays)  # fmt: skip
    if tracked.dropped and tracked.tracks:
        need = max(1, min(options.min_track_length, detected.num_frames))
        spans = ", ".join(f"{a}-{b}" for a, b in (tracked.dropped_spans or [])[:8])
        more = " ..." if len(tracked.dropped_spans or []) > 8 else ""
        run.note(f"dropped {tracked.dropped} track(s) shorter than {need} frames (--min-track-length): frames "
                 f"{spans}{more}")  # fmt: skip
    if not tracked.tracks:
        if len(detections.frame) == 0:
            run.note(
                f"no person found in {run.source.info.path} by the {detections.tier} detector; the outputs hold no "
                "people (try --boxes FILE, --detector-weights PATH, or --detector full-frame for one centred person)"
            )
        else:
            need = max(1, min(options.min_track_length, detected.num_frames))
            run.note(
                f"every track ({tracked.dropped}) is shorter than {need} frames (--min-track-length); the outputs "
                "hold no people (lower --min-track-length to keep short tracks)"
            )
    return tracked


# ------------------------------------------------------------------------------------------------ landmarks
#: BlazePose landmarks for every frame of each track, by track id
TrackLandmarks = dict[int, Landmarks]


def landmarks(run: DemoRun, tracked: Tracked, *, device: str) -> TrackLandmarks:
    """BlazePose's 33 landmarks (pixels, visibility; metres around the hips) for every frame of every track,
    on the region its COCO keypoints give (or its box where it has none); ``{}`` with
    ``--keypoint-model none``."""

    tracks, options = tracked.tracks, run.options
    if options.keypoint_model == "none" or not tracks:
        return {}

    def compute() -> TrackLandmarks:
        network = BlazePose(options.keypoint_model, device="cuda" if device.startswith("cuda") else "cpu")
        by_frame: dict[int, list[tuple[int, int]]] = {}  # frame -> (track index, row)
        for k, t in enumerate(tracks):
            for row, f in enumerate(t.frames.tolist()):
                by_frame.setdefault(f, []).append((k, row))
        parts: dict[int, list] = {k: [None] * len(t) for k, t in enumerate(tracks)}
        pending: list[tuple[int, int, np.ndarray, Roi]] = []

        def flush():
            with run.clock("landmarks"):
                result = network.run_many([(frame, roi) for _, _, frame, roi in pending])
            for n, (k, row, _, _) in enumerate(pending):
                parts[k][row] = n, result
            run.clock.count("landmarks", len(pending))
            pending.clear()

        last = max(by_frame)
        for index, frame in run.frames("landmarks", total=last + 1):
            for k, row in by_frame.get(index, ()):
                pending.append((k, row, frame, track_roi(tracks[k], row)))
            if len(pending) >= 32:
                flush()
            if index >= last:
                break
        if pending:
            flush()
        out = {}
        for k, t in enumerate(tracks):
            rows = [res.take(n) for n, res in parts[k]]
            out[t.track_id] = Landmarks.concat(rows)
        return out

    settings = {"model": options.keypoint_model, "version": 1}
    return run.cached("landmarks", "landmarks", settings, compute, to_arrays=_landmarks_to_arrays,
                      from_arrays=lambda arrays: _landmarks_from_arrays(arrays, tracks))  # fmt: skip


def track_roi(track: Track, row: int) -> Roi:
    """The landmark network's region for one frame of a track: from the detector's keypoints where it gave
    them, else the square box (centre, side)."""

    cx, cy, side, _ = track.boxes[row]
    box = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
    return roi_from_coco(track.keypoints[row], box)


def _landmarks_to_arrays(landmarks: TrackLandmarks) -> dict[str, np.ndarray]:
    arrays = {}
    for tid, lm in landmarks.items():
        for key, value in lm.to_arrays().items():
            arrays[f"{tid}/{key}"] = value
    return arrays


def _landmarks_from_arrays(arrays: dict, tracks: list[Track]) -> TrackLandmarks:
    out = {}
    for t in tracks:
        prefix = f"{t.track_id}/"
        out[t.track_id] = Landmarks.from_arrays(
            {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        )
    return out


# ------------------------------------------------------------------------------------------------ infer
def infer(run: DemoRun, tracked: Tracked, model: DemoModel, landmarks: TrackLandmarks) -> Predictions:
    """The network's output for every frame of every track: image crops (the input decoded once more), or for
    a keypoint model the tracks' landmarks."""
    tracks = tracked.tracks

    def compute() -> Predictions:
        if not tracks:
            return {}
        predictor = model.predictor()
        if hasattr(predictor, "predict_landmarks"):
            if not landmarks:
                raise ConfigError("this model reads body keypoints: --keypoint-model none cannot be used with it")
            frame_size = (run.source.info.width, run.source.info.height)
            predictions = predictor.predict_landmarks(tracks, landmarks, frame_size, clock=run.clock)
            run.clock.count("infer", sum(len(t) for t in tracks))
            return predictions
        # one bar over the tracks' frames, advanced per forward pass: decoding runs ahead of the model
        with run.bar("infer", total=sum(len(t) for t in tracks)) as bar:
            predictions = predictor.predict(tracks, run.frames(None), clock=run.clock, warn=run.note,
                                            on_predicted=bar.update)  # fmt: skip
        run.clock.count("infer", sum(len(t) for t in tracks))
        run.clock.count("crop", sum(len(t) for t in tracks))
        return predictions

    settings = {**model.signature(), "frame_step": run.options.frame_step, "keypoints": run.options.keypoint_model,
                "keypoint_inputs": KEYPOINT_INPUTS_VERSION}  # fmt: skip
    return run.cached("infer", "predictions", settings, compute, to_arrays=_predictions_to_arrays,
                      from_arrays=lambda arrays: _predictions_from_arrays(arrays, tracks))  # fmt: skip


def _predictions_to_arrays(predictions: Predictions) -> dict[str, np.ndarray]:
    arrays = {}
    for tid, p in predictions.items():
        arrays[f"{tid}/cam"] = p.cam
        arrays[f"{tid}/rotmat"] = p.rotmat
        arrays[f"{tid}/betas"] = p.betas
    return arrays


def _predictions_from_arrays(arrays: dict, tracks: list[Track]) -> Predictions:
    return {
        t.track_id: TrackPrediction(
            cam=arrays[f"{t.track_id}/cam"], rotmat=arrays[f"{t.track_id}/rotmat"], betas=arrays[f"{t.track_id}/betas"]
        )
        for t in tracks
    }


# ------------------------------------------------------------------------------------------------ post
def post(run: DemoRun, tracked: Tracked, predictions: Predictions, model: DemoModel) -> list[Person]:
    """One :class:`Person` per track: optional smoothing, the body model's joints and vertices, cameras in
    the full image, 2D joints in pixels, root translation."""
    options, info = run.options, run.source.info
    smooth = {"min_cutoff": options.smooth_min_cutoff, "beta": options.smooth_beta} if options.smooth else None
    with run.clock("post"):
        body_model = model.body_model() if tracked.tracks else None
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
                device=model.device,
            )
            for t in tracked.tracks
        ]
    run.clock.count("post", sum(len(p.track) for p in people))
    return people


# ------------------------------------------------------------------------------------------------ write
def write(
    run: DemoRun, people: list[Person], detected: Detected, model: DemoModel, landmarks: TrackLandmarks
) -> list[str]:
    """``tracks.npz`` and ``results.pkl`` (docs/OUTPUTS.md); drops the people's vertices once written."""
    info = run.source.info
    body_model = model.body_model() if people else None
    with run.clock("write"):
        out_mod.write_tracks_npz(
            run.out / out_mod.TRACKS_FILE,
            people,
            width=info.width,
            height=info.height,
            fps=info.fps,
            num_frames=detected.num_frames,
            body_model=body_model,
            save_verts=run.options.save_verts,
            device=model.device,
            landmarks=landmarks,
        )
        out_mod.write_results_pkl(run.out / out_mod.RESULTS_FILE, people, body_model, device=model.device)
    for p in people:  # rendering recomputes them a chunk at a time: long videos stay within memory
        p.verts = None
    run.clock.count("write", sum(len(p.track) for p in people))
    return [out_mod.TRACKS_FILE, out_mod.RESULTS_FILE]


def write_keypoints(run: DemoRun, tracked: Tracked, detected: Detected, landmarks: TrackLandmarks) -> list[str]:
    """``--keypoints-only``: ``tracks.npz`` with each person's boxes and keypoints (docs/OUTPUTS.md)."""
    info = run.source.info
    with run.clock("write"):
        out_mod.write_keypoints_npz(run.out / out_mod.TRACKS_FILE, tracked.tracks, landmarks, width=info.width,
                                    height=info.height, fps=info.fps, num_frames=detected.num_frames)  # fmt: skip
    return [out_mod.TRACKS_FILE]


def render_skeletons(run: DemoRun, tracked: Tracked, landmarks: TrackLandmarks) -> Rendered:
    """``--keypoints-only``: ``overlay.mp4`` with every person's skeleton (BlazePose's where it ran, else the
    detector's COCO keypoints), one colour per person."""

    info, clock = run.source.info, run.clock
    rows = {}
    for t in tracked.tracks:
        lm = landmarks.get(t.track_id)
        points = lm.image if lm is not None else t.keypoints
        edges = BLAZEPOSE33_EDGES if lm is not None else COCO17_EDGES
        rows[t.track_id] = (t, points, edges, tuple(int(255 * c) for c in track_color(t.track_id)))
    with VideoWriter(run.out / out_mod.OVERLAY_FILE, fps=info.fps, width=info.width, height=info.height) as writer:
        for index, frame in run.frames("render"):
            with clock("render"):
                image = frame
                for t, points, edges, color in rows.values():
                    if t.first <= index <= t.last:
                        image = draw_skeleton(image, points[index - t.first], edges, color)
            with clock("encode"):
                writer.write(image)
                _write_still(run, image)
            clock.count("render", 1)
            clock.count("encode", 1)
    note = None if rows else "no person to draw"
    files = [out_mod.OVERLAY_FILE] + _still_files(run)
    return Rendered(backend="skeleton" if rows else None, fallback_reason=None, files=files, note=note)


def _still_files(run: DemoRun) -> list[str]:
    return [out_mod.STILL_FILE] if run.source.info.kind == "image" else []


def _write_still(run: DemoRun, image: np.ndarray) -> None:
    """An image input's overlay as a PNG too (written atomically); nothing for videos and frame folders."""
    if run.source.info.kind != "image":
        return
    import cv2  # optional dependency: only image inputs get a still

    ok, data = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))  # cv2 wants BGR
    if not ok:
        raise DataError(f"{run.out / out_mod.STILL_FILE}: cannot encode the overlay picture")
    with atomic_path(run.out / out_mod.STILL_FILE) as tmp:
        tmp.write_bytes(data.tobytes())


# ------------------------------------------------------------------------------------------------ export
def export(run: DemoRun, people: list[Person], model: DemoModel) -> list[str]:
    """``person_<id>.glb`` and ``person_<id>.bvh`` (maed.export): each person's skeleton for their mean shape,
    animated by the predicted rotations and the root translation of ``maed.demo.outputs.camera_translation``.
    Files of people an earlier run found and this one did not are removed."""
    files = []
    fps = run.source.info.fps
    with run.clock("export"):
        for p in people:
            rig = rig_from_body_model(model.body_model(), p.betas.mean(axis=0))
            name = f"person_{p.track_id}"
            write_glb(run.out / f"{name}.glb", rig, p.rotmat, p.trans, fps, name=name, color=track_color(p.track_id))
            write_bvh(run.out / f"{name}.bvh", rig, p.rotmat, p.trans, fps)
            files += [f"{name}.glb", f"{name}.bvh"]
        for stale in [*run.out.glob("person_*.glb"), *run.out.glob("person_*.bvh")]:
            if stale.name not in files:
                stale.unlink()
    run.clock.count("export", sum(len(p.track) for p in people))
    return files


# ------------------------------------------------------------------------------------------------ render
@dataclass
class Rendered:
    """What drew the overlay: ``backend`` (None when there was no person to draw), why the shaded renderer
    was not used (``fallback_reason``), and the videos written."""

    backend: str | None
    fallback_reason: str | None
    files: list[str]
    note: str | None = None

    def summary(self) -> dict:
        """``summary.json``'s ``renderer``."""
        out = {"backend": self.backend, "fallback_reason": self.fallback_reason}
        return out | ({"note": self.note} if self.note else {})


def render(run: DemoRun, people: list[Person], model: DemoModel) -> Rendered:
    """``overlay.mp4`` (every input frame, meshes over the people) and, with ``--side-view``,
    ``overlay_side.mp4`` (the meshes turned 90 degrees, over a plain background), through maed.render."""
    info, clock, options = run.source.info, run.clock, run.options
    size = {"width": info.width, "height": info.height}
    files = [out_mod.OVERLAY_FILE] + ([out_mod.SIDE_FILE] if options.side_view else [])
    stills = _still_files(run)
    renderer = None
    body_model = model.body_model() if people else None
    if people:
        with clock("render"):
            renderer = OverlayRenderer(info.width, info.height, body_model.faces.cpu().numpy(),
                                       backend=options.renderer)  # fmt: skip
    streams = [(p, out_mod.VertexStream(p, body_model, model.device), track_color(p.track_id)) for p in people]
    with contextlib.ExitStack() as stack:
        if renderer is not None:
            stack.callback(renderer.close)
        writers = [stack.enter_context(VideoWriter(run.out / f, fps=info.fps, **size)) for f in files]
        for index, frame in run.frames("render"):
            with clock("render"):
                draws = [PersonDraw(verts=vs.at(index), cam=p.cam_full[index - p.track.first], color=color)
                         for p, vs, color in streams if p.track.first <= index <= p.track.last]  # fmt: skip
                images = [renderer.render(frame, draws) if draws else frame]
                if options.side_view:
                    images.append(renderer.render_side(frame.shape, draws) if draws else _side_background(frame))
            with clock("encode"):
                for writer, image in zip(writers, images):
                    writer.write(image)
                _write_still(run, images[0])
            if renderer is not None:  # with nobody to draw, nothing is rendered: no frames, no frame rate
                clock.count("render", 1)
            clock.count("encode", 1)
    if renderer is None:
        return Rendered(backend=None, fallback_reason=None, files=files + stills, note="no person to draw")
    return Rendered(backend=renderer.backend, fallback_reason=renderer.fallback_reason, files=files + stills)


def _side_background(frame: np.ndarray) -> np.ndarray:
    out = np.empty_like(frame)
    out[:] = SIDE_BACKGROUND
    return out


# ------------------------------------------------------------------------------------------------ viewer
def viewer(run: DemoRun, outputs: list[str]) -> list[str]:
    """``index.html`` and ``viewer/`` (maed.viewer): the overlay video beside the people's GLBs in a browser, one
    timeline for both; it shows only the files of ``outputs`` (this run's)."""
    from pathlib import Path

    with run.clock("viewer"):
        return write_demo_page(run.out, outputs, title=f"maed demo: {Path(run.source.info.path).name}")
