"""Per-track inference with the evaluation's clip scheme, batched across tracks, frames streamed.

Each track is cut into ``sample_pool``-frame windows (128) exactly as the evaluation dataset cuts a video
(``maed.data.datasets.split_into_chunks`` with stride = pool, the last window reflect-padded), each frame is
cropped exactly as the evaluation crops it (``build_transforms("eval")``: 1.3 x the square box, resized to
the model's input size, ImageNet-normalised), and each window is predicted by ``predict_windows`` (the
original protocol: ``pool / seqlen`` interleaved ``seqlen``-frame clips). So every frame of a track gets a
prediction, and a dataset sequence with its own boxes gives the same numbers as ``maed eval``.

The input is decoded once for all tracks. A frame's crops are kept only until every window that needs them
has been built (at most about two windows per open track), and finished windows of any tracks are batched
together, so memory does not grow with the video's length.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from maed.body.geometry import rot6d_to_rotmat, rotmat_to_6d
from maed.config import DatasetConfig, EvalConfig
from maed.data.datasets import split_into_chunks
from maed.data.transforms import ClipParams, build_transforms, normalize_images
from maed.demo.options import BATCH_SIZE
from maed.demo.track import Track
from maed.models.keypoints import inputs_from_landmarks
from maed.models.windows import predict_windows  # the evaluation's clip scheme


@dataclass
class TrackPrediction:
    """Network output for every frame of one track: cam (T, 3) crop camera (s, tx, ty); rotmat (T, J, 3, 3)
    local joint rotations; betas (T, S) shape."""

    cam: np.ndarray
    rotmat: np.ndarray
    betas: np.ndarray


@dataclass
class _Window:
    track: int  # index into the track list
    positions: np.ndarray  # (pool,) positions inside the track (reflect-padded at the end)
    real: np.ndarray  # (pool,) False at padded positions


def plan_windows(tracks: list[Track], sample_pool: int) -> list[_Window]:
    """Every track's windows, cut as the evaluation dataset cuts a video (stride = pool, padded)."""
    windows = []
    for k, t in enumerate(tracks):
        chunks, real = split_into_chunks(np.zeros(len(t), dtype=np.int64), sample_pool, sample_pool, pad=True)
        windows.extend(_Window(k, c, r) for c, r in zip(chunks, real))
    return windows


class ModelPredictor:
    """Runs a MAED model over tracks. ``body_model`` is the model's; ``signature`` identifies the
    predictions for the stage cache (set by the caller: checkpoint hash, config, settings)."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        crop_width: int = DatasetConfig.WIDTH,
        crop_height: int = DatasetConfig.HEIGHT,
        seqlen: int = EvalConfig.SEQLEN,
        sample_pool: int = EvalConfig.SAMPLE_POOL,
        frame_step: int = EvalConfig.INTERPOLATION,
        batch_size: int = BATCH_SIZE,
        device: str = "cpu",
        signature: dict | None = None,
    ):
        self.model = model
        self.body_model = model.body_model
        self.transform = build_transforms("eval", width=crop_width, height=crop_height, normalize=False)
        self.seqlen, self.sample_pool, self.frame_step = int(seqlen), int(sample_pool), int(frame_step)
        self.batch_size = max(int(batch_size), 1)
        self.device = torch.device(device)
        self.signature = signature or {}

    def crop(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        """The evaluation crop (uint8, H x W x 3) of a square box (cx, cy, side, side) of an RGB frame."""
        sample = {"frames": [frame], "bbox": np.asarray(box, dtype=np.float64)[None], "kp_2d": np.zeros((1, 1, 3))}
        return self.transform(sample, params=ClipParams())["images"][0]

    def predict(
        self,
        tracks: list[Track],
        frames: Iterable[tuple[int, np.ndarray]],
        *,
        clock=None,
        on_predicted: Callable[[int], None] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> dict[int, TrackPrediction]:
        """Predict every frame of every track; ``frames`` yields ``(index, RGB frame)`` from the input's start.

        ``clock``: a :class:`maed.demo.context.StageClock` (crop and infer time are added to it);
        ``on_predicted``: called after each forward pass with the number of track frames it predicted
        (progress: each call stands for the same work). Returns predictions by track id.
        """
        clock = clock or _NullClock()
        windows = plan_windows(tracks, self.sample_pool)
        need = [np.zeros(len(t), dtype=np.int64) for t in tracks]  # windows still waiting for each crop
        ready_at: dict[int, list[int]] = {}
        for i, w in enumerate(windows):
            np.add.at(need[w.track], np.unique(w.positions), 1)
            ready_at.setdefault(tracks[w.track].first + int(w.positions.max()), []).append(i)
        crops: list[dict[int, np.ndarray]] = [{} for _ in tracks]
        out = {t.track_id: _Accumulator(len(t)) for t in tracks}
        pending: list[tuple[_Window, np.ndarray]] = []
        done = np.zeros(len(windows), dtype=bool)
        by_first = sorted(range(len(tracks)), key=lambda k: tracks[k].first)
        last_frame = max((t.last for t in tracks), default=-1)

        def build(i: int) -> None:
            w = windows[i]
            store = crops[w.track]
            stack = np.stack([store[int(p)] for p in w.positions])  # (pool, H, W, 3) uint8
            for p in np.unique(w.positions):
                need[w.track][p] -= 1
                if need[w.track][p] == 0:
                    store.pop(int(p), None)
            pending.append((w, stack))
            done[i] = True
            if len(pending) >= self.batch_size:
                self._run(pending, tracks, out, clock, on_predicted)

        for index, frame in frames:
            if index > last_frame:
                break
            with clock("crop"):
                for k in by_first:
                    t = tracks[k]
                    if t.first <= index <= t.last and need[k][index - t.first] > 0:
                        crops[k][index - t.first] = self.crop(frame, t.boxes[index - t.first])
            for i in ready_at.get(index, ()):
                build(i)
        if not done.all():  # the input ended before frames the tracks cover (a truncated video)
            if warn is not None:
                warn("the input ended before the last tracked frames; their crops repeat the last decoded ones")
            for i in np.flatnonzero(~done):
                w = windows[i]
                store = crops[w.track]
                for p in w.positions:
                    if int(p) not in store:
                        have = [q for q in store if q < p] or list(store)
                        store[int(p)] = store[max(have)] if have else _blank(self.transform)
                build(int(i))
        if pending:
            self._run(pending, tracks, out, clock, on_predicted)
        return {tid: acc.result() for tid, acc in out.items()}

    def _run(self, pending: list, tracks: list[Track], out: dict, clock, on_predicted=None) -> None:
        with clock("infer"):
            if pending[0][1].dtype == np.uint8:  # image crops (B, pool, H, W, 3)
                images = torch.stack([normalize_images(stack) for _, stack in pending])  # (B, pool, 3, H, W)
            else:  # keypoint inputs (B, pool, K, C)
                images = torch.from_numpy(np.stack([x for _, x in pending]))
            pred = predict_windows(
                self.model,
                images,
                seqlen=self.seqlen,
                frame_step=self.frame_step,
                device=self.device,
                keys=("theta", "rotmat"),
            )
            theta, rotmat = pred["theta"], pred["rotmat"]
            if self.frame_step > 1:  # linearly interpolated matrices are not rotations: project back onto them
                R = torch.from_numpy(rotmat)
                rotmat = rot6d_to_rotmat(rotmat_to_6d(R).reshape(-1, 6)).reshape(R.shape).numpy()
            J = rotmat.shape[2]
            for b, (w, _) in enumerate(pending):
                out[tracks[w.track].track_id].put(
                    w.positions[w.real],
                    cam=theta[b, w.real, :3],
                    rotmat=rotmat[b, w.real],
                    betas=theta[b, w.real, 3 + 3 * J :],
                )
        if on_predicted is not None:
            on_predicted(int(sum(w.real.sum() for w, _ in pending)))
        pending.clear()


class KeypointPredictor(ModelPredictor):
    """A keypoint MAED over tracks: the same windows and clip scheme as :class:`ModelPredictor`, its inputs
    the tracks' landmarks (``maed.demo.stages.landmarks``) instead of image crops; no frame is decoded."""

    def predict_landmarks(
        self, tracks: list[Track], landmarks: dict, frame_size: tuple[int, int], *, clock=None
    ) -> dict[int, TrackPrediction]:
        """``frame_size``: the input's (width, height); landmarks outside it count as unseen."""
        clock = clock or _NullClock()

        inputs = [inputs_from_landmarks(landmarks[t.track_id].image, t.boxes, frame_size) for t in tracks]
        out = {t.track_id: _Accumulator(len(t)) for t in tracks}
        pending = []
        for w in plan_windows(tracks, self.sample_pool):
            pending.append((w, inputs[w.track][w.positions]))
            if len(pending) >= self.batch_size:
                self._run(pending, tracks, out, clock)
        if pending:
            self._run(pending, tracks, out, clock)
        return {tid: acc.result() for tid, acc in out.items()}


class _Accumulator:
    """A track's predictions, filled window by window (arrays sized on the first write)."""

    def __init__(self, n: int):
        self.n = n
        self.arrays: dict[str, np.ndarray] = {}
        self.filled = np.zeros(n, dtype=bool)

    def put(self, positions: np.ndarray, **values: np.ndarray) -> None:
        for key, v in values.items():
            if key not in self.arrays:
                self.arrays[key] = np.zeros((self.n, *v.shape[1:]), dtype=np.float32)
            self.arrays[key][positions] = v
        self.filled[positions] = True

    def result(self) -> TrackPrediction:
        if not self.filled.all():
            raise RuntimeError(f"internal error: {int((~self.filled).sum())} track frames got no prediction")
        return TrackPrediction(**self.arrays)


def _blank(transform) -> np.ndarray:
    return np.zeros((transform.height, transform.width, 3), dtype=np.uint8)


class _NullClock:
    def __call__(self, name: str):
        return contextlib.nullcontext()
