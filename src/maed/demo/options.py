"""Every setting of a demo run and its default, in one place (the command line reads them from here).

Kept free of torch so that ``maed --help`` stays fast.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from maed.demo import smooth as smooth_mod
from maed.demo import track as track_mod
from maed.errors import ConfigError
from maed.perception.detectors import DETECTOR_CHOICES
from maed.perception.movenet import FINE_PASS_EVERY
from maed.render.overlay import BACKENDS

KEYPOINT_MODELS = ("lite", "full", "heavy", "none")

#: windows (``EVAL.SAMPLE_POOL`` frames each) per forward pass: the demo keeps its windows' crops in
#: memory, so fewer than the evaluation's EVAL.BATCH_SIZE (32) by default
BATCH_SIZE = 2
#: the demo's --precision: float32, as load_model's, until bf16's difference from it on the shipped trained
#: model is measured (docs/SPEED.md); the one place to change it ("auto": bf16 where the hardware has it)
PRECISION = "fp32"


@dataclass
class DemoOptions:
    """Every setting of a demo run (``maed demo``'s options; docs/OUTPUTS.md describes what they do)."""

    out: str | os.PathLike = "output"
    checkpoint: str | os.PathLike | None = None  # None: the shipped default model
    config: str | None = None  # None: the config stored in the checkpoint
    body_model_dir: str | os.PathLike | None = None  # None: the config's PATHS
    device: str | None = None  # None: CUDA when present, else the CPU
    # detection
    boxes: str | os.PathLike | None = None
    detector: str = "auto"
    detector_weights: str | os.PathLike | None = None
    detector_threshold: float | None = None  # None: the tier's (maed.perception.detectors.DEFAULT_THRESHOLDS)
    detector_size: int | None = None  # None: the tier's (maed.perception.detectors.DEFAULT_SIZES)
    detect_every: int = 1
    fine_pass_every: int = FINE_PASS_EVERY  # MoveNet's finer pass (maed.perception.movenet)
    # body keypoints (maed.perception.blazepose): lite, full, heavy, or none
    keypoint_model: str = "full"
    keypoints_only: bool = False  # keypoints and a skeleton overlay, no mesh model
    # tracking
    iou_threshold: float = track_mod.IOU_THRESHOLD
    max_age: int = track_mod.MAX_AGE
    min_track_length: int = track_mod.MIN_TRACK_LENGTH
    box_smoothing: bool = True
    # inference
    batch_size: int = BATCH_SIZE
    frame_step: int | None = None  # None: the config's EVAL.INTERPOLATION
    precision: str = PRECISION
    # post-processing and outputs
    smooth: bool = False
    smooth_min_cutoff: float = smooth_mod.MIN_CUTOFF
    smooth_beta: float = smooth_mod.BETA
    fps: float | None = None  # None: the video's own rate; 30 for folders and images
    save_verts: bool = False
    export: bool = True
    render: bool = True
    viewer: bool = True  # index.html (maed.viewer)
    side_view: bool = False
    renderer: str = "auto"
    progress: bool = True

    def check(self) -> None:
        """One ConfigError naming the option for a value out of range (before any work)."""

        def need(ok: bool, option: str, value, expected: str) -> None:
            if not ok:
                raise ConfigError(f"{option} {value}: expected {expected}")

        finite = lambda v: isinstance(v, (int, float)) and math.isfinite(v)  # noqa: E731
        need(self.batch_size >= 1, "--batch-size", self.batch_size, "an integer >= 1 (windows per forward pass)")
        need(self.frame_step is None or self.frame_step >= 1, "--frame-step", self.frame_step, "an integer >= 1")
        need(self.detect_every >= 1, "--detect-every", self.detect_every, "an integer >= 1")
        need(self.fine_pass_every >= 1, "--fine-pass-every", self.fine_pass_every, "an integer >= 1")
        need(self.min_track_length >= 1, "--min-track-length", self.min_track_length, "an integer >= 1")
        need(self.max_age >= 0, "--max-age", self.max_age, "an integer >= 0")
        need(finite(self.iou_threshold) and 0 < self.iou_threshold <= 1, "--iou-threshold", self.iou_threshold,
             "a number in (0, 1]")  # fmt: skip
        need(self.detector in DETECTOR_CHOICES, "--detector", self.detector, ", ".join(DETECTOR_CHOICES))
        need(
            self.keypoint_model in KEYPOINT_MODELS, "--keypoint-model", self.keypoint_model, ", ".join(KEYPOINT_MODELS)
        )
        need(not (self.keypoints_only and self.keypoint_model == "none"), "--keypoint-model", self.keypoint_model,
             "a BlazePose variant with --keypoints-only")  # fmt: skip
        need(self.detector_size is None or self.detector_size >= 32, "--detector-size", self.detector_size,
             "pixels >= 32")  # fmt: skip
        need(self.detector_threshold is None or finite(self.detector_threshold), "--detector-threshold",
             self.detector_threshold, "a finite number")  # fmt: skip
        need(finite(self.smooth_min_cutoff) and self.smooth_min_cutoff > 0, "--smooth-min-cutoff",
             self.smooth_min_cutoff, "a positive frequency in Hz")  # fmt: skip
        need(finite(self.smooth_beta) and self.smooth_beta >= 0, "--smooth-beta", self.smooth_beta, "a number >= 0")
        need(self.renderer in BACKENDS, "--renderer", self.renderer, ", ".join(BACKENDS))
        from maed.models.fast import PRECISIONS  # start-up: torch (~2 s) stays out of `maed --help`

        need(self.precision in PRECISIONS, "--precision", self.precision, ", ".join(PRECISIONS))
