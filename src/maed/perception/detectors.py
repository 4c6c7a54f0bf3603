"""Person boxes per frame, from the strongest source available (the summary records which one ran).

Tiers, in the order ``--detector auto`` tries them:

1. ``boxes``: the user's boxes, optionally with track ids (``--boxes FILE``; the JSON format is in
   docs/OUTPUTS.md and :func:`load_boxes_file`). Used as given.
2. ``torchvision``: Faster R-CNN (ResNet-50 FPN v1/v2, MobileNetV3 FPN) or Keypoint R-CNN from a local
   state-dict file (``--detector-weights x.pth``), built with ``weights=None, weights_backbone=None`` and
   loaded strictly. ``yolo``: ultralytics YOLO, when that package is installed and ``--detector-weights``
   is a local YOLO ``.pt`` file. Nothing is ever downloaded.
3. ``movenet``: the shipped MoveNet MultiPose network (:mod:`maed.perception.movenet`), trained on real
   photographs: boxes and the 17 COCO keypoints of up to 6 people per pass, close-ups and half bodies
   included. The default.
4. ``hog``: OpenCV's bundled HOG people detector (opencv < 5), for upright, fully visible people; used by
   ``auto`` only when onnxruntime is missing.
5. ``full-frame``: the largest centred square of every frame, for one person filling the frame's height
   (never chosen by ``auto``; a frame with nobody in it must not get an invented person).

Only the ``movenet`` tier (and a Keypoint R-CNN file) gives keypoints; :attr:`Detections.keypoints` holds
zeros (score 0) for the others. Detector boxes are tight around the person; the crop box of a track is then enlarged by
:attr:`Detector.box_scale` (1.1, as the datasets' boxes are 1.1 x the person's extent), see
``maed.demo.track``. Detectors return ``x1, y1, x2, y2`` boxes in pixels of the upright frame;
:class:`Detections` keeps them as centre and size, so that user boxes given that way stay exact.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maed.errors import AssetError, CheckpointError, ConfigError, DataError
from maed.perception.boxes import NMS_IOU, box_iou, cxcywh_from_xyxy, nms, xyxy_from_cxcywh
from maed.perception.movenet import FINE_PASS_EVERY, MoveNet
from maed.perception.weights import WEIGHTS, weights_dir

__all__ = ["NMS_IOU", "box_iou", "cxcywh_from_xyxy", "nms", "xyxy_from_cxcywh"]  # re-exported for callers

TIERS = ("boxes", "torchvision", "yolo", "movenet", "hog", "full-frame")
DETECTOR_CHOICES = ("auto", *TIERS)
BOX_FORMATS = ("xyxy", "cxcywh")
#: crop box / detector box: the datasets' boxes are 1.1 x the extent of the person's keypoints
DETECTOR_BOX_SCALE = 1.1
HOG_WINDOW = (64, 128)  # width, height of OpenCV's people detector window
#: the person inside a HOG detection window (with a margin): fraction of its width and height
HOG_PERSON_FRACTION = (0.5, 0.8)
#: default score thresholds per tier (HOG scores are SVM margins, the others probabilities)
DEFAULT_THRESHOLDS = {"torchvision": 0.7, "yolo": 0.5, "movenet": 0.25, "hog": 0.5}
#: default shorter side, in pixels, of the frames a detector sees (MoveNet: None, chosen per frame size;
#: a value there is the longer side of its finer pass, see maed.perception.movenet)
DEFAULT_SIZES = {"torchvision": 800, "yolo": 640, "movenet": None, "hog": 480}
NUM_KEYPOINTS = 17  # COCO order, maed.perception.skeletons.COCO17


@dataclass
class Detections:
    """Person boxes of a whole input, one row per box.

    frame (M,) int64 frame index; boxes (M, 4) float64 cx, cy, w, h pixels (``xyxy`` gives corners);
    scores (M,) float32; track_ids (M,) int64, -1 when the tier gives none (the tracker links boxes then);
    keypoints (M, 17, 3) float32 COCO keypoints x, y pixels and score (all 0 from tiers without keypoints).
    """

    tier: str
    num_frames: int
    frame: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    track_ids: np.ndarray
    box_scale: float = 1.0
    settings: dict = field(default_factory=dict)  # what ran (Detector.describe), for the summary
    keypoints: np.ndarray | None = None

    def __post_init__(self):
        if self.keypoints is None:
            self.keypoints = np.zeros((len(self.frame), NUM_KEYPOINTS, 3), np.float32)

    @property
    def has_keypoints(self) -> bool:
        return bool((self.keypoints[..., 2] > 0).any())

    @property
    def xyxy(self) -> np.ndarray:
        """M x 4 corners x1, y1, x2, y2."""
        return xyxy_from_cxcywh(self.boxes)

    @property
    def has_track_ids(self) -> bool:
        return len(self.track_ids) > 0 and bool((self.track_ids >= 0).all())

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "tier": np.array(self.tier),
            "num_frames": np.array(self.num_frames, dtype=np.int64),
            "frame": self.frame,
            "boxes": self.boxes,
            "scores": self.scores,
            "track_ids": self.track_ids,
            "box_scale": np.array(self.box_scale, dtype=np.float64),
            "settings": np.array(json.dumps(self.settings, sort_keys=True)),
            "keypoints": self.keypoints,
        }

    @classmethod
    def from_arrays(cls, z) -> Detections:
        return cls(
            tier=str(z["tier"]),
            num_frames=int(z["num_frames"]),
            frame=np.asarray(z["frame"], dtype=np.int64),
            boxes=np.asarray(z["boxes"], dtype=np.float64).reshape(-1, 4),
            scores=np.asarray(z["scores"], dtype=np.float32),
            track_ids=np.asarray(z["track_ids"], dtype=np.int64),
            box_scale=float(z["box_scale"]),
            settings=json.loads(str(z["settings"])) if "settings" in z else {},
            keypoints=np.asarray(z["keypoints"], dtype=np.float32) if "keypoints" in z else None,
        )

    @classmethod
    def from_lists(cls, tier: str, per_frame: list[tuple], box_scale: float) -> Detections:
        """``per_frame[i]`` = (boxes K x 4 xyxy, scores K) or (boxes, scores, keypoints K x 17 x 3) of frame i."""
        frames = [np.full(len(r[0]), i, dtype=np.int64) for i, r in enumerate(per_frame)]
        boxes = [cxcywh_from_xyxy(np.asarray(r[0], dtype=np.float64).reshape(-1, 4)) for r in per_frame]
        scores = [np.asarray(r[1], dtype=np.float32).reshape(-1) for r in per_frame]
        keypoints = [
            np.asarray(r[2], np.float32).reshape(-1, NUM_KEYPOINTS, 3)
            if len(r) > 2
            else np.zeros((len(r[0]), NUM_KEYPOINTS, 3), np.float32)
            for r in per_frame
        ]
        cat = lambda xs, shape, dt: np.concatenate(xs) if xs else np.zeros(shape, dt)  # noqa: E731
        frame = cat(frames, (0,), np.int64)
        return cls(
            tier=tier,
            num_frames=len(per_frame),
            frame=frame,
            boxes=cat(boxes, (0, 4), np.float64),
            scores=cat(scores, (0,), np.float32),
            track_ids=np.full(len(frame), -1, dtype=np.int64),
            box_scale=box_scale,
            keypoints=cat(keypoints, (0, NUM_KEYPOINTS, 3), np.float32),
        )


# ---------------------------------------------------------------------------------------------- --boxes
def _fail(path, where: str, expected: str, got=None) -> DataError:
    tail = "" if got is None else f", got {json.dumps(got)[:80]}"
    return DataError(f"--boxes {path}: {where}: expected {expected}{tail} (the format is in docs/OUTPUTS.md)")


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def load_boxes_file(path: str | os.PathLike, num_frames: int | None = None) -> Detections:
    """Read a ``--boxes`` JSON file (docs/OUTPUTS.md)::

        {"box_format": "xyxy",                  # or "cxcywh": centre x, centre y, width, height
         "frames": [{"frame": 0, "boxes": [[x1, y1, x2, y2], ...], "track_ids": [1, ...]}, ...]}

    Pixels of the upright frame; ``frame`` counts from 0; ``track_ids`` (optional, integers >= 0, given in
    every entry or in none) keep the user's tracks; ``scores`` (optional) are kept. Frames not listed have
    no box. Any deviation is one :class:`DataError` naming the field.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"--boxes {path}: no such file (a JSON file of per-frame boxes, docs/OUTPUTS.md)")
    try:
        doc = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError) as e:
        raise DataError(f"--boxes {path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise _fail(path, "top level", 'an object {"box_format": ..., "frames": [...]}', type(doc).__name__)
    fmt = doc.get("box_format")
    if fmt not in BOX_FORMATS:
        raise _fail(path, "box_format", f"one of {', '.join(map(repr, BOX_FORMATS))}", fmt)
    entries = doc.get("frames")
    if not isinstance(entries, list):
        raise _fail(path, "frames", "a list of {frame, boxes[, track_ids, scores]} objects", entries)
    unknown = sorted(set(doc) - {"box_format", "frames"})
    if unknown:
        raise _fail(path, "top level", "only the keys box_format and frames", unknown)

    rows_frame, rows_box, rows_score, rows_id = [], [], [], []
    seen: set[int] = set()
    with_ids = None
    for i, e in enumerate(entries):
        where = f"frames[{i}]"
        if not isinstance(e, dict):
            raise _fail(path, where, "an object with 'frame' and 'boxes'", e)
        extra = sorted(set(e) - {"frame", "boxes", "track_ids", "scores"})
        if extra:
            raise _fail(path, where, "only the keys frame, boxes, track_ids, scores", extra)
        f = e.get("frame")
        if not isinstance(f, int) or isinstance(f, bool) or f < 0:
            raise _fail(path, f"{where}.frame", "an integer >= 0 (frame index, counting from 0)", f)
        if num_frames is not None and f >= num_frames:
            raise _fail(path, f"{where}.frame", f"an index below {num_frames}, the number of frames of the input", f)
        if f in seen:
            raise _fail(path, f"{where}.frame", "each frame listed once", f)
        seen.add(f)
        boxes = e.get("boxes")
        if not isinstance(boxes, list):
            raise _fail(path, f"{where}.boxes", "a list of [4 numbers]", boxes)
        for j, b in enumerate(boxes):
            names = "x1, y1, x2, y2" if fmt == "xyxy" else "cx, cy, w, h"
            if not (isinstance(b, list) and len(b) == 4 and all(_number(v) for v in b)):
                raise _fail(path, f"{where}.boxes[{j}]", f"4 finite numbers ({names})", b)
            w, h = (b[2] - b[0], b[3] - b[1]) if fmt == "xyxy" else (b[2], b[3])
            if w <= 0 or h <= 0:
                rule = "x2 > x1 and y2 > y1" if fmt == "xyxy" else "w > 0 and h > 0"
                raise _fail(path, f"{where}.boxes[{j}]", f"a box with {rule}", b)
        ids = e.get("track_ids")
        if boxes:
            if with_ids is None:
                with_ids = ids is not None
            elif with_ids != (ids is not None):
                raise _fail(path, f"{where}.track_ids", "track ids in every entry with boxes, or in none", ids)
        if ids is not None:
            if not (isinstance(ids, list) and len(ids) == len(boxes)):
                raise _fail(path, f"{where}.track_ids", f"a list of {len(boxes)} integers (one per box)", ids)
            if not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in ids):
                raise _fail(path, f"{where}.track_ids", "integers >= 0", ids)
            if len(set(ids)) != len(ids):
                raise _fail(path, f"{where}.track_ids", "distinct ids within a frame", ids)
        scores = e.get("scores")
        if scores is not None and not (
            isinstance(scores, list) and len(scores) == len(boxes) and all(_number(s) for s in scores)
        ):
            raise _fail(path, f"{where}.scores", f"a list of {len(boxes)} numbers (one per box)", scores)
        for j, b in enumerate(boxes):
            rows_frame.append(f)
            rows_box.append(b)
            rows_score.append(1.0 if scores is None else float(scores[j]))
            rows_id.append(-1 if ids is None else int(ids[j]))

    boxes = np.asarray(rows_box, dtype=np.float64).reshape(-1, 4)
    if fmt == "xyxy":
        boxes = cxcywh_from_xyxy(boxes)
    order = np.argsort(np.asarray(rows_frame, dtype=np.int64), kind="stable")
    frame = np.asarray(rows_frame, dtype=np.int64)[order]
    return Detections(
        tier="boxes",
        num_frames=int(num_frames) if num_frames is not None else (int(frame.max()) + 1 if len(frame) else 0),
        frame=frame,
        boxes=boxes[order],
        scores=np.asarray(rows_score, dtype=np.float32)[order],
        track_ids=np.asarray(rows_id, dtype=np.int64)[order],
        box_scale=1.0,
    )


# ---------------------------------------------------------------------------------------------- detectors
class Detector:
    """A batch detector: ``detector(frames)`` -> per frame (boxes K x 4 xyxy pixels, scores K), or
    (boxes, scores, keypoints K x 17 x 3) from tiers that see keypoints."""

    tier: str = ""
    box_scale: float = DETECTOR_BOX_SCALE
    batch_size: int = 1

    def __call__(self, frames: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"tier": self.tier}


def _resize_factor(height: int, width: int, size: int | None) -> float:
    """Scale that brings the shorter side down to ``size`` pixels (never up: 1 for smaller frames)."""
    return 1.0 if not size else min(1.0, float(size) / float(min(height, width)))


def hog_available() -> bool:
    import cv2

    return hasattr(cv2, "HOGDescriptor") and hasattr(cv2.HOGDescriptor, "getDefaultPeopleDetector")


class HogDetector(Detector):
    """OpenCV's HOG + linear SVM people detector (Dalal and Triggs), bundled with opencv-python < 5.

    Frames larger than ``size`` pixels (shorter side) are shrunk to it; a detection window (64 x 128) holds the
    person with a margin, so boxes are shrunk to :data:`HOG_PERSON_FRACTION` of the window. ``threshold``
    is the SVM margin a detection needs.
    """

    tier = "hog"

    def __init__(self, *, threshold: float | None = None, size: int | None = None):
        import cv2

        if not hog_available():
            raise ConfigError(
                "--detector hog: this OpenCV has no HOG people detector (OpenCV 5 removed it); "
                "install opencv-python-headless<5 or choose another --detector"
            )
        self.threshold = DEFAULT_THRESHOLDS["hog"] if threshold is None else float(threshold)
        self.size = DEFAULT_SIZES["hog"] if size is None else int(size)
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor.getDefaultPeopleDetector())

    def describe(self) -> dict:
        return {"tier": self.tier, "threshold": self.threshold, "size": self.size}

    def __call__(self, frames):
        import cv2

        out = []
        for frame in frames:
            h, w = frame.shape[:2]
            # OpenCV crashes on images smaller than the 64 x 128 window: such frames are enlarged to fit it
            k = max(_resize_factor(h, w, self.size), HOG_WINDOW[1] / h, HOG_WINDOW[0] / w)
            image = frame if k == 1.0 else cv2.resize(frame, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
            rects, weights = self.hog.detectMultiScale(
                image, hitThreshold=0.0, winStride=(8, 8), padding=(8, 8), scale=1.05
            )
            rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4) / k  # x, y, w, h in frame pixels
            scores = np.asarray(weights, dtype=np.float64).reshape(-1)
            fw, fh = HOG_PERSON_FRACTION
            cx, cy = rects[:, 0] + rects[:, 2] / 2, rects[:, 1] + rects[:, 3] / 2
            w, h = rects[:, 2] * fw, rects[:, 3] * fh
            boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
            ok = scores >= self.threshold
            boxes, scores = boxes[ok], scores[ok]
            keep = nms(boxes, scores)
            out.append((boxes[keep], scores[keep]))
        return out


class FullFrameDetector(Detector):
    """The largest centred square of the frame, as one person's box (the last resort)."""

    tier = "full-frame"
    box_scale = 1.0

    def __call__(self, frames):
        out = []
        for frame in frames:
            h, w = frame.shape[:2]
            full_frame_box = full_frame_box_xyxy(w, h)
            out.append((full_frame_box[None], np.ones(1, np.float32)))
        return out


def full_frame_box_xyxy(width: int, height: int) -> np.ndarray:
    side = float(min(width, height))
    cx, cy = width / 2.0, height / 2.0
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], dtype=np.float32)


# ------------------------------------------------------------------------------------------- torchvision
#: builder name -> (key that identifies it in a state dict, keys that must be absent)
_TV_ARCHS = (
    ("keypointrcnn_resnet50_fpn", "roi_heads.keypoint_predictor.kps_score_lowres.weight", ()),
    ("fasterrcnn_resnet50_fpn_v2", "roi_heads.box_head.0.0.weight", ()),
    ("fasterrcnn_mobilenet_v3_large_fpn", "backbone.body.0.0.weight", ()),
    ("fasterrcnn_resnet50_fpn", "roi_heads.box_head.fc6.weight", ("backbone.body.0.0.weight",)),
)


def torchvision_architecture(state: dict, filename: str = "") -> str | None:
    """The torchvision detection builder a state dict belongs to, or None."""
    for name, key, absent in _TV_ARCHS:
        if key in state and not any(a in state for a in absent):
            if name == "fasterrcnn_mobilenet_v3_large_fpn" and "320" in Path(filename).name:
                return "fasterrcnn_mobilenet_v3_large_320_fpn"
            return name
    return None


def read_torchvision_state(path: Path) -> dict:
    """A torchvision detector's state dict from a ``.pth`` (plain, or under 'model' as the reference
    training scripts save it), read without running code. Raises CheckpointError naming ``--detector-weights``
    for a damaged file or one that holds something else."""
    from maed.models.checkpoint import read_checkpoint  # start-up: torch (~2 s) stays out of `maed --help`

    try:
        state = read_checkpoint(path)
    except CheckpointError as e:
        raise CheckpointError(f"--detector-weights: {e}") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    return state


def looks_like_yolo(path: Path) -> bool:
    """Whether ``path`` is a torch.save archive whose pickle names ultralytics classes (how YOLO ``.pt``
    files are stored). Reads the archive's bytes only; nothing is unpickled."""
    import zipfile

    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith("data.pkl"):
                    with archive.open(name) as fh:
                        return b"ultralytics." in fh.read()
    except (OSError, zipfile.BadZipFile, RuntimeError):
        return False
    return False


class TorchvisionDetector(Detector):
    """torchvision Faster R-CNN / Keypoint R-CNN from a local state dict (COCO labels: person = 1)."""

    tier = "torchvision"

    def __init__(
        self,
        weights: str | os.PathLike,
        *,
        threshold: float | None = None,
        size: int | None = None,
        device: str = "cpu",
        batch_size: int = 4,
        state: dict | None = None,
    ):
        import torch
        from torchvision.models import detection

        path = Path(weights)
        state = _torchvision_state(path) if state is None else state
        arch = torchvision_architecture(state, path.name)
        self.threshold = DEFAULT_THRESHOLDS["torchvision"] if threshold is None else float(threshold)
        self.size = DEFAULT_SIZES["torchvision"] if size is None else int(size)
        kwargs = {"num_classes": int(state["roi_heads.box_predictor.cls_score.weight"].shape[0])}
        if arch.startswith("keypoint"):
            kwargs["num_keypoints"] = int(state["roi_heads.keypoint_predictor.kps_score_lowres.weight"].shape[1])
        size_kw = {"min_size": self.size, "max_size": int(round(self.size * 1333 / 800))}
        model = getattr(detection, arch)(weights=None, weights_backbone=None, **kwargs, **size_kw)
        try:  # torch's own strict load, so that torchvision's key upgrades of old files run
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise CheckpointError(
                f"--detector-weights {path} does not fit {arch}: {' '.join(str(e).split())}"
            ) from None
        self.arch = arch
        self.device = device
        self.batch_size = batch_size
        self.model = model.to(device).eval()
        self.torch = torch
        self.path = path

    def describe(self) -> dict:
        return {
            "tier": self.tier,
            "architecture": self.arch,
            "weights": str(self.path),
            "threshold": self.threshold,
            "size": self.size,
        }

    def __call__(self, frames):
        torch = self.torch
        with torch.inference_mode():
            images = [torch.from_numpy(f).to(self.device).permute(2, 0, 1).float().div_(255.0) for f in frames]
            results = self.model(images)
        out = []
        for r in results:
            keep = (r["labels"] == 1) & (r["scores"] >= self.threshold)
            boxes, scores = r["boxes"][keep].float().cpu().numpy(), r["scores"][keep].float().cpu().numpy()
            if "keypoints" in r and r["keypoints"].shape[1] == NUM_KEYPOINTS:  # Keypoint R-CNN: COCO's 17
                kp = r["keypoints"][keep].float().cpu().numpy()
                kp[..., 2] = torch.sigmoid(r["keypoints_scores"][keep].float()).cpu().numpy()
                out.append((boxes, scores, kp))
            else:
                out.append((boxes, scores))
        return out


class MoveNetDetector(Detector):
    """The shipped MoveNet MultiPose network (:mod:`maed.perception.movenet`): boxes and COCO keypoints. It
    takes a video's frames in order: its finer pass runs where needed (``fine_pass_every``)."""

    tier = "movenet"

    def __init__(
        self,
        *,
        threshold: float | None = None,
        size: int | None = None,
        device: str = "cpu",
        fine_pass_every: int = FINE_PASS_EVERY,
    ):
        threshold = DEFAULT_THRESHOLDS["movenet"] if threshold is None else float(threshold)
        sizes = None if size is None else (256, int(size))
        device = "cuda" if device.startswith("cuda") else "cpu"
        self.network = MoveNet(threshold=threshold, size=sizes, device=device, fine_every=fine_pass_every)
        self.batch_size = 8

    def describe(self) -> dict:
        return {"tier": self.tier, **self.network.describe()}

    def __call__(self, frames):
        return [(p.boxes, p.scores, p.keypoints) for p in self.network(frames)]


def movenet_available() -> str | None:
    """None when the MoveNet tier can run here, else why not (onnxruntime missing, weights missing)."""
    try:
        import onnxruntime  # noqa: F401  (optional dependency: the [perception] extra)
    except ImportError:
        return "onnxruntime is not installed (pip install 'maed[perception]')"

    path = weights_dir() / WEIGHTS["movenet_multipose"].filename
    return None if path.is_file() else f"{path} is missing"


class YoloDetector(Detector):
    """ultralytics YOLO from a local weights file (COCO class 0 = person); only when ultralytics is installed."""

    tier = "yolo"

    def __init__(
        self,
        weights: str | os.PathLike,
        *,
        threshold: float | None = None,
        size: int | None = None,
        device: str = "cpu",
        batch_size: int = 4,
    ):
        try:
            from ultralytics import YOLO
        except ImportError:
            raise ConfigError(
                f"--detector yolo / --detector-weights {weights}: YOLO weights need the ultralytics package "
                "(`pip install ultralytics`, AGPL-3.0); or give a torchvision .pth, or use --detector hog"
            ) from None
        self.path = Path(weights)
        self.threshold = DEFAULT_THRESHOLDS["yolo"] if threshold is None else float(threshold)
        self.size = DEFAULT_SIZES["yolo"] if size is None else int(size)
        self.device = device
        self.batch_size = batch_size
        self.model = YOLO(str(self.path))  # a local path: ultralytics downloads only for bare model names

    def describe(self) -> dict:
        return {"tier": self.tier, "weights": str(self.path), "threshold": self.threshold, "size": self.size}

    def __call__(self, frames):
        bgr = [np.ascontiguousarray(f[..., ::-1]) for f in frames]  # ultralytics reads arrays as BGR
        results = self.model.predict(
            bgr, classes=[0], conf=self.threshold, imgsz=self.size, device=self.device, verbose=False
        )
        return [(r.boxes.xyxy.cpu().numpy(), r.boxes.conf.cpu().numpy()) for r in results]


# ------------------------------------------------------------------------------------------------ choice
@dataclass
class DetectorChoice:
    """The tier that will run, and why (for the summary)."""

    tier: str
    reason: str
    weights: Path | None = None
    state: dict | None = None  # the torchvision state dict, read once when the choice was made


def choose_detector(
    requested: str, *, boxes: str | os.PathLike | None, weights: str | os.PathLike | None
) -> DetectorChoice:
    """Resolve ``--detector`` (``auto`` or a tier) with ``--boxes`` and ``--detector-weights`` into a tier,
    checking the files it needs exist. ``auto``: boxes > the weights' detector > MoveNet > HOG."""
    if requested not in DETECTOR_CHOICES:
        raise ConfigError(f"--detector {requested!r}: expected one of {', '.join(DETECTOR_CHOICES)}")
    if boxes is not None:
        if requested not in ("auto", "boxes"):
            raise ConfigError(f"--boxes and --detector {requested} exclude each other: the boxes replace detection")
        return DetectorChoice("boxes", "--boxes given")
    if requested == "boxes":
        raise ConfigError("--detector boxes needs --boxes FILE (docs/OUTPUTS.md gives the format)")
    path = None
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise AssetError(
                f"--detector-weights {path}: no such file (a local torchvision detector .pth or YOLO .pt; "
                "nothing is downloaded)"
            )
        if requested in ("hog", "full-frame"):
            raise ConfigError(f"--detector {requested} takes no --detector-weights")
    if requested in ("torchvision", "yolo"):
        if path is None:
            raise ConfigError(
                f"--detector {requested} needs --detector-weights PATH, a local weights file (nothing is downloaded)"
            )
        if requested == "torchvision":  # read now: a damaged file fails before any work
            return DetectorChoice(requested, "--detector torchvision", path, _torchvision_state(path))
        return DetectorChoice(requested, f"--detector {requested}", path)
    if requested in ("movenet", "hog", "full-frame"):
        return DetectorChoice(requested, f"--detector {requested}")
    # auto
    if path is not None:
        if looks_like_yolo(path):
            return DetectorChoice("yolo", "--detector-weights is an ultralytics YOLO file", path)
        state = read_torchvision_state(path)  # a damaged file: one error naming it
        if not (isinstance(state, dict) and torchvision_architecture(state, path.name)):
            raise CheckpointError(
                f"--detector-weights {path}: neither a torchvision Faster/Keypoint R-CNN state dict nor a YOLO file"
            )
        return DetectorChoice("torchvision", "--detector-weights holds a torchvision detector", path, state)
    missing = movenet_available()
    if missing is None:
        return DetectorChoice("movenet", "no --boxes or --detector-weights: the shipped MoveNet MultiPose network")
    if hog_available():
        return DetectorChoice("hog", f"MoveNet cannot run ({missing}): OpenCV's bundled HOG people detector")
    raise AssetError(
        f"no person detector can run: MoveNet cannot ({missing}) and this OpenCV has no HOG detector "
        "(opencv<5 has one); give --boxes FILE, or --detector full-frame for one person filling every frame"
    )


def _torchvision_state(path: Path) -> dict:
    state = read_torchvision_state(path)
    if not (isinstance(state, dict) and torchvision_architecture(state, path.name)):
        raise CheckpointError(
            f"--detector-weights {path}: not a torchvision Faster R-CNN or Keypoint R-CNN state dict "
            "(fasterrcnn_resnet50_fpn[_v2], fasterrcnn_mobilenet_v3_large[_320]_fpn, keypointrcnn_resnet50_fpn)"
        )
    return state


def build_detector(
    choice: DetectorChoice,
    *,
    threshold: float | None,
    size: int | None,
    device: str,
    fine_pass_every: int = FINE_PASS_EVERY,
) -> Detector:
    """The tier's detector; ``fine_pass_every`` is MoveNet's (:mod:`maed.perception.movenet`), unused by others."""
    if choice.tier == "torchvision":
        return TorchvisionDetector(choice.weights, threshold=threshold, size=size, device=device, state=choice.state)
    if choice.tier == "yolo":
        return YoloDetector(choice.weights, threshold=threshold, size=size, device=device)
    if choice.tier == "movenet":
        return MoveNetDetector(threshold=threshold, size=size, device=device, fine_pass_every=fine_pass_every)
    if choice.tier == "hog":
        return HogDetector(threshold=threshold, size=size)
    if choice.tier == "full-frame":
        return FullFrameDetector()
    raise ValueError(f"tier {choice.tier!r} has no detector")


def detect_frames(
    frames: Iterable[tuple[int, np.ndarray]],
    detector: Detector,
    *,
    every: int = 1,
    on_batch: Callable[[int], None] | None = None,
) -> Detections:
    """Run ``detector`` over ``(index, frame)`` pairs in batches, on every ``every``-th frame (the others get
    no boxes; the tracker bridges them); ``on_batch(n)`` after each batch."""
    every = max(int(every), 1)
    per_frame: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    batch: list[tuple[int, np.ndarray]] = []
    empty = (np.zeros((0, 4)), np.zeros(0))

    def flush():
        for (i, _), result in zip(batch, detector([f for _, f in batch])):
            per_frame[i] = result
        if on_batch is not None:
            on_batch(len(batch))
        batch.clear()

    count = 0
    for index, frame in frames:
        count = index + 1
        if index % every:
            continue
        batch.append((index, frame))
        if len(batch) >= detector.batch_size:
            flush()
    if batch:
        flush()
    ordered = [per_frame.get(i, empty) for i in range(count)]
    return Detections.from_lists(detector.tier, ordered, detector.box_scale)
