"""VideoWriter: H.264 files read back with PyAV (frames, size, rate, content), odd sizes, atomicity."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from maed.errors import MaedError
from maed.render.video import VideoWriter, frame_rate

av = pytest.importorskip("av", reason="PyAV is in the demo extra")


def frames(n: int, width: int, height: int) -> list[np.ndarray]:
    """Smooth, moving pictures (H.264 keeps them close at crf 20): a gradient and a bright square."""
    y, x = np.mgrid[0:height, 0:width]
    out = []
    for i in range(n):
        image = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), np.full_like(x, 90)], -1)
        image[20:50, 10 + 8 * i : 40 + 8 * i] = (250, 250, 40)
        out.append(image.astype(np.uint8))
    return out


def read_back(path) -> tuple[list[np.ndarray], Fraction, tuple[int, int], str]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate, size, codec = (
            stream.average_rate,
            (stream.codec_context.width, stream.codec_context.height),
            stream.codec_context.name,
        )
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        pix_fmt = stream.codec_context.pix_fmt
    assert pix_fmt == "yuv420p" and codec == "h264"
    return decoded, rate, size, codec


def test_round_trip_frame_count_size_rate_and_content(tmp_path):
    written = frames(7, 160, 120)
    path = tmp_path / "out.mp4"
    with VideoWriter(path, fps=25, width=160, height=120) as writer:
        for f in written:
            writer.write(f)
    decoded, rate, size, _ = read_back(path)
    assert len(decoded) == 7 and size == (160, 120) and rate == 25
    errors = [np.abs(d.astype(int) - w).mean() for d, w in zip(decoded, written)]
    assert max(errors) < 4  # the same pictures, in order
    assert np.abs(decoded[0].astype(int) - written[6]).mean() > 2 * max(errors)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temporary file left behind


def test_odd_size_is_padded_to_even(tmp_path):
    written = frames(3, 161, 121)
    with VideoWriter(tmp_path / "odd.mp4", fps=30000 / 1001, width=161, height=121) as writer:
        assert writer.stored_size == (162, 122)
        for f in written:
            writer.write(f)
    decoded, rate, size, _ = read_back(tmp_path / "odd.mp4")
    assert size == (162, 122) and len(decoded) == 3 and rate == Fraction(30000, 1001)
    assert np.abs(decoded[1][:121, :161].astype(int) - written[1]).mean() < 4
    # the padding repeats the last column / row
    assert np.abs(decoded[1][:121, 161].astype(int) - decoded[1][:121, 160]).mean() < 4


def test_an_exception_leaves_nothing_at_path(tmp_path):
    path = tmp_path / "broken.mp4"
    with pytest.raises(KeyError), VideoWriter(path, fps=30, width=64, height=48) as writer:
        writer.write(frames(1, 64, 48)[0])
        raise KeyError("interrupted")
    assert list(tmp_path.iterdir()) == []
    # an existing file survives an aborted rewrite
    path.write_bytes(b"previous")
    writer = VideoWriter(path, fps=30, width=64, height=48)
    writer.write(frames(1, 64, 48)[0])
    writer.abort()
    assert path.read_bytes() == b"previous" and len(list(tmp_path.iterdir())) == 1


def test_bad_frames_and_options_are_refused(tmp_path):
    with pytest.raises(MaedError, match="extension"):
        VideoWriter(tmp_path / "out.avi", fps=30, width=64, height=48)
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "out.mp4", fps=0, width=64, height=48)
    with VideoWriter(tmp_path / "out.mp4", fps=30, width=64, height=48) as writer:
        with pytest.raises(ValueError, match="48 x 64 x 3 uint8"):
            writer.write(np.zeros((48, 64), np.uint8))
        with pytest.raises(ValueError, match="uint8"):
            writer.write(np.zeros((48, 64, 3), np.float32))
        writer.write(np.zeros((48, 64, 3), np.uint8))
    assert frame_rate(29.97) == Fraction(2997, 100) and frame_rate(30000 / 1001) == Fraction(30000, 1001)
