"""The demo's input: a video file (decoded with PyAV), a folder of frames, or a single image.

Frames are streamed: :meth:`FrameSource.frames` decodes one frame at a time, so a long video is never held
in memory, and each stage that needs pixels (detection, cropping, rendering) decodes the input again.
Every frame comes out as H x W x 3 uint8 RGB, upright: a video stream's display matrix (the rotation phones
record instead of turning the pixels) is applied, as players do.

An unreadable frame in the middle of the input (a corrupt packet, a truncated JPEG among the frames) is
replaced by the last readable frame, with a warning naming it, so that frame numbers, the frame count and
the timing of the outputs still match the input; :attr:`FrameSource.replaced` lists the replaced frames.
An input with no readable frame at all is an :class:`InputError`.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from maed.errors import MaedError

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: frame rate given to a folder of frames or an image when none is given
DEFAULT_FPS = 30.0
EXPECTED = "a video file (mp4, mov, avi, mkv, webm), a folder of frames (jpg, png, ...) or a single image"


class InputError(MaedError, ValueError):
    """An input that cannot be read as a video, a folder of frames or an image."""


@dataclass
class SourceInfo:
    """What the demo knows about its input before decoding it all.

    ``width`` x ``height``: upright frame size in pixels (after the rotation). ``num_frames``: exact for
    folders and images; for videos the container's count (or duration x rate), ``None`` when unknown
    until the video has been decoded once. ``rotation``: degrees counter-clockwise applied to the decoded
    pixels (0, 90, 180, 270).
    """

    path: str
    kind: str  # "video" | "folder" | "image"
    width: int
    height: int
    fps: float
    num_frames: int | None
    rotation: int = 0
    codec: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def natural_key(name: str) -> list:
    """Sort key that orders ``frame2.jpg`` before ``frame10.jpg`` (digit runs compared as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _read_image(path: Path) -> np.ndarray | None:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@dataclass
class FrameSource:
    """An opened input. ``frames()`` yields ``(index, frame)`` for every frame, in order, from the start."""

    info: SourceInfo
    files: list[Path] = field(default_factory=list)  # folder / image inputs
    # frames replaced by the previous readable one (by the first readable one, when none before them is)
    replaced: list[int] = field(default_factory=list)
    warn: Callable[[str], None] | None = None

    def _warn(self, message: str) -> None:
        if self.warn is not None:
            self.warn(message)

    def fingerprint(self) -> dict:
        """Identifies the input's content cheaply (path, sizes, modification times) for the stage cache."""
        path = Path(self.info.path)
        if self.info.kind == "video":
            st = path.stat()
            return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        h = hashlib.sha256()
        for f in self.files:
            st = f.stat()
            h.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return {"path": str(path), "files": len(self.files), "digest": h.hexdigest()}

    def count_frames(self) -> int:
        """The exact number of frames (a video's packets are counted without decoding them), stored in info."""
        if self.info.kind != "video":
            return len(self.files)
        import av

        count = 0
        with _open_container(self.info.path) as container:
            try:
                for packet in container.demux(container.streams.video[0]):
                    count += packet.size > 0
            except av.error.FFmpegError:  # a damaged container: count what can be read
                pass
        self.info.num_frames = count
        return count

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """Every frame from the start as ``(index, H x W x 3 uint8 RGB)``; :attr:`replaced` lists the frames
        found unreadable so far (each pass finds the same ones)."""
        replaced: list[int] = []
        inner = self._video_frames(replaced) if self.info.kind == "video" else self._file_frames(replaced)
        count = 0
        for index, frame in inner:
            count += 1
            self.replaced = sorted(set(self.replaced) | set(replaced))
            yield index, frame
        self.replaced = sorted(set(self.replaced) | set(replaced))
        if count == 0:
            raise InputError(f"INPUT {self.info.path}: no readable frame (expected {EXPECTED})")
        self.info.num_frames = count

    # ------------------------------------------------------------------------------------ folders, images
    def _file_frames(self, replaced: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        w, h = self.info.width, self.info.height
        last: np.ndarray | None = None
        pending = 0  # unreadable frames before the first readable one
        for i, f in enumerate(self.files):
            image = _read_image(f)
            if image is not None and image.shape[:2] != (h, w):
                raise InputError(
                    f"INPUT {self.info.path}: {f.name} is {image.shape[1]} x {image.shape[0]} pixels, the frames "
                    f"before it {w} x {h}; every frame of a folder must have the same size"
                )
            if image is None:
                self._warn(f"frame {i} ({f}) could not be read; {_stand_in(last)} is used in its place")
                replaced.append(i)
                if last is None:
                    pending += 1
                    continue
                image = last
            for j in range(i - pending, i):  # frames before the first readable one take its pixels
                yield j, image
            pending = 0
            last = image
            yield i, image

    # ------------------------------------------------------------------------------------------- videos
    def _video_frames(self, replaced: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        import av

        index = 0
        last: np.ndarray | None = None
        pending = 0
        with _open_container(self.info.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            coded = _coded_size(self.info)
            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.error.FFmpegError as e:  # a damaged container: stop at the damage
                    self._warn(f"the video stops being readable after frame {index - 1} ({e}); the rest is skipped")
                    break
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError as e:
                    if packet.size == 0:
                        continue
                    self._warn(f"frame {index} could not be decoded ({e}); {_stand_in(last)} is used in its place")
                    replaced.append(index)
                    if last is None:
                        pending += 1
                    else:
                        yield index, last
                    index += 1
                    continue
                for frame in decoded:
                    image = frame.to_ndarray(format="rgb24", width=coded[0], height=coded[1])
                    image = _upright(image, self.info.rotation)
                    for j in range(index - pending, index):
                        yield j, image
                    pending = 0
                    last = image
                    yield index, image
                    index += 1


def _stand_in(last: np.ndarray | None) -> str:
    """Which frame replaces an unreadable one: the last readable frame, or for frames before any readable
    one, the first readable frame after them."""
    if last is None:
        return "the first readable frame after it (none before it is)"
    return "the previous readable frame"


def _coded_size(info: SourceInfo) -> tuple[int, int]:
    """(width, height) of the decoded pixels before the display rotation."""
    if info.rotation % 180:
        return info.height, info.width
    return info.width, info.height


def _upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a display rotation (degrees counter-clockwise, multiples of 90) to H x W x 3 pixels."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(image, k=k)) if k else image


def _open_container(path: str):
    import av

    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise InputError(f"INPUT {path}: not a video file that can be decoded ({e}); expected {EXPECTED}") from None


def _rotation_degrees(value: float | int | None) -> int:
    """A display-matrix rotation rounded to a multiple of 90 in [0, 360)."""
    if value is None or not np.isfinite(value):
        return 0
    return int(round(float(value) / 90.0)) % 4 * 90


def _probe_video(path: Path) -> SourceInfo:
    """Open a video, decode its first frame (size, rotation), read its rate and frame count."""
    import av

    with _open_container(str(path)) as container:
        if not container.streams.video:
            raise InputError(f"INPUT {path}: the file has no video stream; expected {EXPECTED}")
        stream = container.streams.video[0]
        first = None
        try:
            for frame in container.decode(stream):
                first = frame
                break
        except av.error.FFmpegError as e:
            raise InputError(f"INPUT {path}: the video's frames cannot be decoded ({e}); expected {EXPECTED}") from None
        if first is None:
            raise InputError(f"INPUT {path}: the video has no frames; expected a video with at least one frame")
        rotation = _rotation_degrees(getattr(first, "rotation", 0))
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else DEFAULT_FPS
        num_frames = int(stream.frames) if stream.frames else None
        if num_frames is None and stream.duration and stream.time_base:
            num_frames = max(int(round(float(stream.duration * stream.time_base) * fps)), 1)
        w, h = first.width, first.height
        if rotation % 180:
            w, h = h, w
        return SourceInfo(
            path=str(path),
            kind="video",
            width=int(w),
            height=int(h),
            fps=fps,
            num_frames=num_frames,
            rotation=rotation,
            codec=stream.codec_context.name,
        )


def open_source(
    path: str | os.PathLike, *, fps: float | None = None, warn: Callable[[str], None] | None = None
) -> FrameSource:
    """Open ``path`` (a video file, a folder of frames or an image) and read its size, rate and length.

    ``fps`` sets the frame rate of a folder or an image (default 30) and overrides a video's own. Frames of
    a folder are its image files in natural order (``2.jpg`` before ``10.jpg``). Raises
    :class:`InputError` for a missing path, an empty folder, a file that is neither a video nor an image,
    and a video without frames.
    """
    path = Path(path).expanduser()
    if fps is not None and not (np.isfinite(fps) and fps > 0):
        raise InputError(f"--fps {fps}: expected a positive number of frames per second")
    if not path.exists():
        raise InputError(f"INPUT {path}: no such file or folder; expected {EXPECTED}")
    if path.is_dir():
        files = sorted(
            (p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
            key=lambda p: natural_key(p.name),
        )
        if not files:
            raise InputError(
                f"INPUT {path}: the folder holds no image files ({', '.join(IMAGE_SUFFIXES)}); expected a folder "
                "of frames"
            )
        kind = "folder"
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        files, kind = [path], "image"
    else:
        info = _probe_video(path)
        if fps is not None:
            info.fps = float(fps)
        return FrameSource(info=info, warn=warn)

    first = next((img for img in map(_read_image, files) if img is not None), None)
    if first is None:
        what = "the image cannot be read" if kind == "image" else "none of its image files can be read"
        raise InputError(f"INPUT {path}: {what}; expected {EXPECTED}")
    info = SourceInfo(
        path=str(path),
        kind=kind,
        width=int(first.shape[1]),
        height=int(first.shape[0]),
        fps=float(fps) if fps is not None else DEFAULT_FPS,
        num_frames=len(files),
    )
    return FrameSource(info=info, files=files, warn=warn)
