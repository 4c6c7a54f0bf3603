"""What the stages of one ``maed demo`` run share (:class:`DemoRun`): options, output folder, input, the stage
clock and cache, and the messages printed along the way."""

from __future__ import annotations

import contextlib
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from tqdm import tqdm

from maed.demo.cache import StageCache
from maed.demo.options import DemoOptions
from maed.demo.source import FrameSource
from maed.utils.prefetch import prefetched

T = TypeVar("T")
#: decoded frames held ahead of the stage that reads them (each 2.8 MB at 720p)
PREFETCH_FRAMES = 4


class StageClock:
    """Seconds and frames per stage; ``with clock("detect"): ...`` adds time, ``timed(frames)`` times decoding.

    Decoding runs once per stage that reads pixels; its ``frames`` counts each input frame once (its
    ``passes`` says how often the input was decoded), so its frames/s is input frames per second spent
    decoding, as for the other stages."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.frames: dict[str, int] = defaultdict(int)
        self.cached: set[str] = set()
        self.passes: dict[str, int] = defaultdict(int)
        self._seen: dict[str, set[int]] = defaultdict(set)  # frame indices each timed stream yielded

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def count(self, name: str, n: int) -> None:
        self.frames[name] += int(n)

    def timed(self, frames: Iterable[tuple[int, Any]], name: str = "decode") -> Iterator[tuple[int, Any]]:
        """``frames`` (``(index, frame)`` pairs) passed through, their time added to ``name``."""
        it = iter(frames)
        self.passes[name] += 1
        seen = self._seen[name]
        while True:
            start = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                self.seconds[name] += time.perf_counter() - start
                return
            self.seconds[name] += time.perf_counter() - start
            if item[0] not in seen:
                seen.add(item[0])
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
            if n in self.passes:
                out[n]["passes"] = self.passes[n]
        return out


@dataclass
class DemoRun:
    """State shared by the stages of one run."""

    options: DemoOptions
    out: Path
    source: FrameSource
    cache: StageCache
    clock: StageClock = field(default_factory=StageClock)
    messages: list[str] = field(default_factory=list)
    log: Callable[[str], None] = print

    def note(self, message: str) -> None:
        self.messages.append(message)
        self.log(message)

    def bar(self, desc: str, total: int | None):
        return tqdm(
            total=total,
            desc=f"[demo] {desc}",
            unit="frame",
            disable=not self.options.progress,
            leave=False,
            file=sys.stderr,
        )

    def frames(self, desc: str | None, total: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Decode the input from its start (timed as 'decode': the time the caller waits for frames), a few
        frames ahead in a background thread while the caller works, with a progress bar of decoded frames
        named ``desc`` (none when None: the caller counts its own work)."""
        frames = self.clock.timed(prefetched(self.source.frames(), PREFETCH_FRAMES), "decode")
        if desc is None:
            yield from frames
            return
        total = total if total is not None else self.source.info.num_frames
        with self.bar(desc, total) as bar:
            for item in frames:
                yield item
                bar.update(1)

    def cached(
        self,
        stage: str,
        file: str,
        settings: dict,
        compute: Callable[[], T],
        *,
        to_arrays: Callable[[T], dict[str, np.ndarray]],
        from_arrays: Callable[[dict[str, np.ndarray]], T],
    ) -> T:
        """A cached stage's result: ``cache/<file>.npz`` when made with the same ``settings`` and upstream
        (then ``stage`` is reported as cached), else ``compute()``, saved there (:class:`StageCache`)."""
        result, cached = self.cache.load_or_compute(file, settings, compute, to_arrays=to_arrays,
                                                    from_arrays=from_arrays)  # fmt: skip
        if cached:
            self.clock.cached.add(stage)
        return result
