"""H.264 video files through PyAV's bundled FFmpeg (no system ffmpeg), written atomically.

H.264 in 4:2:0 (yuv420p, the pixel format every player accepts) cannot store an odd width or height: the
bitstream crops in steps of two pixels. A frame of odd size is therefore padded by repeating its last
column and/or row, and the file holds the next even size (``VideoWriter.stored_size``).
"""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from maed.errors import MaedError
from maed.utils.io import atomic_path

#: container formats by file extension
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


def import_av():
    try:
        import av
    except ImportError as e:
        raise MaedError(f"writing video needs PyAV ({e}); install it with `pip install maed[demo]`") from None
    return av


def frame_rate(fps) -> Fraction:
    """``fps`` (a number or Fraction) as an exact rational: 29.97 -> 2997/100, 30000/1001 stays as it is."""
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps {fps}: expected a positive frame rate")
    return rate


class VideoWriter:
    """Write RGB frames into an H.264 (yuv420p) video at ``path`` (.mp4, .m4v, .mov or .mkv).

    Frames go into a temporary file beside ``path``, renamed onto it by :meth:`close`; if the writer is
    left through an exception (as a context manager) or :meth:`abort` is called, the temporary file is
    removed and ``path`` is untouched. ``crf``: x264 constant rate factor (0 lossless, 20 visually clean,
    51 worst); ``preset``: x264 speed preset.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fps: float,
        width: int,
        height: int,
        crf: int = 20,
        preset: str = "veryfast",
    ):
        av = import_av()
        self.path = Path(path)
        container = CONTAINERS.get(self.path.suffix.lower())
        if container is None:
            raise MaedError(f"video {self.path}: unsupported extension; expected one of {sorted(CONTAINERS)}")
        if int(width) < 1 or int(height) < 1:
            raise ValueError(f"video size {width} x {height}: expected positive integers")
        self.width, self.height = int(width), int(height)
        self.stored_size = (self.width + self.width % 2, self.height + self.height % 2)
        self.fps = frame_rate(fps)
        self.frames_written = 0
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        try:
            self._container = av.open(str(tmp), mode="w", format=container)
            stream = self._container.add_stream("libx264", rate=self.fps)
            stream.width, stream.height = self.stored_size
            stream.pix_fmt = "yuv420p"
            stream.time_base = 1 / self.fps
            stream.options = {"crf": str(int(crf)), "preset": str(preset)}
            self._stream = stream
        except BaseException as e:
            self._atomic.__exit__(type(e), e, e.__traceback__)
            raise
        self._open = True

    def write(self, frame: np.ndarray) -> None:
        """Append one H x W x 3 uint8 RGB frame of the size given at construction."""
        if not self._open:
            raise RuntimeError(f"video {self.path}: write after close")
        frame = np.asarray(frame)
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"video {self.path}: expected {self.height} x {self.width} x 3 uint8 RGB frames, "
                f"got {frame.shape} {frame.dtype}"
            )
        pad_w, pad_h = self.stored_size[0] - self.width, self.stored_size[1] - self.height
        if pad_w or pad_h:
            frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        av = import_av()
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = self.frames_written
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder, finish the file and move it to ``path``."""
        if not self._open:
            return
        self._open = False
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        except BaseException as e:
            self._abort_files(e)
            raise
        self._atomic.__exit__(None, None, None)

    def abort(self) -> None:
        """Stop writing and remove the unfinished file; ``path`` is left as it was."""
        if not self._open:
            return
        self._open = False
        self._abort_files(None)

    def _abort_files(self, error: BaseException | None) -> None:
        with contextlib.suppress(Exception):  # the file is being thrown away; a broken stream does not matter
            self._container.close()
        error = error or RuntimeError("aborted")
        try:
            self._atomic.__exit__(type(error), error, error.__traceback__)
        except BaseException as e:
            if e is not error:
                raise

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self):
        if getattr(self, "_open", False):
            self.abort()
