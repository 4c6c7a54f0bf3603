"""The demo's input: videos through PyAV (display rotation, damaged frames), folders of frames, images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from maed.demo.source import InputError, natural_key, open_source


def _write_video(path, frames, *, fps=10, codec="libx264", rotation=0, pix_fmt="yuv420p"):
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if codec == "libx264":
            stream.options = {"crf": "12"}
        if rotation:
            stream.set_display_rotation(rotation)
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _marked(h=48, w=64, value=0):
    """A grey frame with a white block in its top-left corner (and ``value`` in the red channel)."""
    frame = np.full((h, w, 3), 60, np.uint8)
    frame[:12, :20] = 255
    frame[..., 0] = np.maximum(frame[..., 0], value)
    return frame


def test_video_frames_are_streamed_in_order_with_size_and_rate(tmp_path):
    frames = [_marked(value=60 + 40 * i) for i in range(5)]
    source = open_source(_write_video(tmp_path / "v.mp4", frames, fps=12))
    assert (source.info.kind, source.info.width, source.info.height, source.info.fps) == ("video", 64, 48, 12.0)
    it = source.frames()
    index, first = next(it)  # a generator: one frame decoded at a time
    assert index == 0 and first.shape == (48, 64, 3) and first.dtype == np.uint8
    rest = list(it)
    assert [i for i, _ in rest] == [1, 2, 3, 4] and source.info.num_frames == 5 == source.count_frames()
    assert first[:12, :20].mean() > 200 and first[30:, 40:].mean() < 100  # RGB, upright
    assert [round(f[30:, 40:, 0].mean() / 40) for _, f in rest] == [2, 3, 4, 5]  # frame order kept


@pytest.mark.parametrize("rotation", [90, 270, 180])
def test_display_rotation_is_applied(tmp_path, rotation):
    """A phone stores pixels sideways plus a display matrix; the demo sees the upright picture."""
    upright = _marked()
    stored = np.ascontiguousarray(np.rot90(upright, k=-(rotation // 90)))
    source = open_source(_write_video(tmp_path / "r.mp4", [stored] * 2, rotation=rotation))
    assert source.info.rotation == rotation
    assert (source.info.width, source.info.height) == (64, 48)
    _, frame = next(source.frames())
    assert frame.shape == upright.shape
    assert np.abs(frame.astype(int) - upright).mean() < 4  # the white block back in the top-left corner
    unrotated = open_source(_write_video(tmp_path / "plain.mp4", [stored] * 2))
    assert unrotated.info.rotation == 0 and next(unrotated.frames())[1].shape == stored.shape


def test_damaged_frame_in_a_video_is_replaced_by_the_previous_one(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(6)]
    path = _write_video(tmp_path / "m.avi", frames, codec="mjpeg", pix_fmt="yuvj420p")
    data = bytearray(path.read_bytes())
    soi = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    data[soi[2] : soi[3] - 8] = bytes(soi[3] - 8 - soi[2])  # frame 2 is no JPEG any more
    path.write_bytes(bytes(data))
    warnings = []
    source = open_source(path, warn=warnings.append)
    out = list(source.frames())
    assert [i for i, _ in out] == list(range(6)) and source.replaced == [2]
    assert np.array_equal(out[2][1], out[1][1]) and not np.array_equal(out[3][1], out[1][1])
    assert len(warnings) == 1 and "frame 2" in warnings[0]


def test_a_video_whose_first_frame_is_damaged_is_refused_in_one_line(tmp_path):
    """Its size is read from the first frame: no frame stands in for it, and the error says so."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(4)]
    path = _write_video(tmp_path / "m.avi", frames, codec="mjpeg", pix_fmt="yuvj420p")
    data = bytearray(path.read_bytes())
    soi = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    data[soi[0] : soi[1] - 8] = bytes(soi[1] - 8 - soi[0])  # frame 0 is no JPEG any more
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="the video's frames cannot be decoded") as e:
        open_source(path)
    assert "\n" not in str(e.value)


def test_folder_is_sorted_naturally_and_a_bad_frame_is_replaced(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (1, 2, 10):
        cv2.imwrite(str(folder / f"f{i}.png"), _marked(value=10 * i)[..., ::-1])
    (folder / "f3.png").write_bytes(b"not a png")  # sorts between f2 and f10
    (folder / "notes.txt").write_text("ignored")
    warnings = []
    source = open_source(folder, warn=warnings.append)
    assert source.info.kind == "folder" and source.info.num_frames == 4 and source.info.fps == 30.0
    assert [p.name for p in source.files] == ["f1.png", "f2.png", "f3.png", "f10.png"]
    frames = [f for _, f in source.frames()]
    assert [int(f[40, 60, 0]) for f in frames] == [60, 60, 60, 100]  # f3 repeats f2
    assert np.array_equal(frames[2], frames[1]) and source.replaced == [2] and "f3.png" in warnings[0]
    assert natural_key("f10.png") > natural_key("f9.png")


def test_unreadable_first_frames_take_the_first_readable_one(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "0.jpg").write_bytes(b"\xff\xd8 broken")
    cv2.imwrite(str(folder / "1.png"), _marked()[..., ::-1])
    frames = list(open_source(folder).frames())
    assert [i for i, _ in frames] == [0, 1] and np.array_equal(frames[0][1], frames[1][1])


def test_an_unreadable_first_frame_is_reported_as_replaced_by_the_next_readable_one(tmp_path):
    """There is no previous readable frame before the first: the warning says which frame really stands in."""
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "0.jpg").write_bytes(b"\xff\xd8 broken")
    cv2.imwrite(str(folder / "1.png"), _marked()[..., ::-1])
    (folder / "2.jpg").write_bytes(b"\xff\xd8 broken")
    warnings = []
    frames = list(open_source(folder, warn=warnings.append).frames())
    assert np.array_equal(frames[0][1], frames[1][1]) and np.array_equal(frames[2][1], frames[1][1])
    assert "frame 0" in warnings[0] and "the first readable frame after it" in warnings[0]
    assert "previous" not in warnings[0]
    assert "frame 2" in warnings[1] and "the previous readable frame" in warnings[1]


def test_single_image_and_fps_option(tmp_path):
    path = tmp_path / "person.jpg"
    cv2.imwrite(str(path), _marked()[..., ::-1])
    source = open_source(path, fps=24)
    assert (source.info.kind, source.info.num_frames, source.info.fps) == ("image", 1, 24.0)
    assert len(list(source.frames())) == 1


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p / "missing.mp4", "no such file or folder"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "holds no image files"),
        (lambda p: (p / "text.mp4").write_text("hello") and p / "text.mp4", "not a video file that can be decoded"),
        (lambda p: (p / "bad.png").write_bytes(b"\x89PNG broken") and p / "bad.png", "the image cannot be read"),
    ],
)
def test_bad_inputs_are_one_clear_error(tmp_path, make, match):
    path = make(tmp_path)
    with pytest.raises(InputError, match=match) as e:
        open_source(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_video_without_frames(tmp_path):
    import av

    path = tmp_path / "zero.avi"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    with pytest.raises(InputError, match="the video has no frames"):
        open_source(path)
    with pytest.raises(InputError, match="--fps -1"):
        open_source(tmp_path, fps=-1)
