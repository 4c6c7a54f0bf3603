"""The shipped networks on real photographs (scikit-image's), against keypoints labelled by eye."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

skimage_data = pytest.importorskip("skimage.data")
pytest.importorskip("onnxruntime")

from maed.errors import AssetError  # noqa: E402
from maed.perception import weights  # noqa: E402
from maed.perception.blazepose import BlazePose, Roi, roi_from_coco  # noqa: E402
from maed.perception.movenet import MoveNet, input_sizes  # noqa: E402
from maed.perception.skeletons import BLAZEPOSE33, COCO17, mirror_permutation  # noqa: E402

# the astronaut portrait (512 x 512), labelled by eye: her right/left eye and right/left shoulder (pixels)
ASTRONAUT = {"reye": (202, 102), "leye": (249, 103), "rshoulder": (115, 238), "lshoulder": (303, 238)}


@pytest.fixture(scope="module")
def movenet():
    return MoveNet()


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def cameraman():
    return np.repeat(skimage_data.camera()[..., None], 3, axis=2)


def test_the_half_body_portrait_is_one_person_with_her_eyes_and_shoulders(movenet, astronaut):
    (people,) = movenet([astronaut])
    assert len(people.scores) == 1
    x1, y1, x2, y2 = people.boxes[0]
    assert x1 < 110 and y1 < 60 and x2 > 300 and y2 > 300  # head and shoulders inside the box
    height = y2 - y1
    kp = people.keypoints[0]
    for name, (x, y) in ASTRONAUT.items():
        i = COCO17.index(name)
        assert kp[i, 2] > 0.3
        tol = 0.03 if "eye" in name else 0.08  # shoulders under a space suit are less exact, to eye and net
        assert np.hypot(kp[i, 0] - x, kp[i, 1] - y) < tol * height, (name, kp[i])


def test_blazepose_landmarks_on_the_portrait(astronaut, movenet):
    (people,) = movenet([astronaut])
    roi = roi_from_coco(people.keypoints[0], people.boxes[0])
    lm = BlazePose("full")(astronaut, [roi])
    assert lm.image.shape == (1, 33, 4) and lm.world.shape == (1, 33, 3) and lm.pose_flag[0] > 0.5
    height = people.boxes[0, 3] - people.boxes[0, 1]
    names = {"reye": "right_eye", "leye": "left_eye", "rshoulder": "right_shoulder", "lshoulder": "left_shoulder"}
    for name, (x, y) in ASTRONAUT.items():
        i = BLAZEPOSE33.index(names[name])
        tol = 0.03 if "eye" in name else 0.08
        assert np.hypot(lm.image[0, i, 0] - x, lm.image[0, i, 1] - y) < tol * height, (name, lm.image[0, i])
        assert lm.image[0, i, 3] > 0.5  # visible
    # world landmarks: metres around the hips, head above them (y down), shoulders some 0.3-0.45 m apart
    w = lm.world[0]
    assert w[0, 1] < w[23, 1] - 0.3
    assert 0.2 < np.linalg.norm(w[11] - w[12]) < 0.5


def test_blazepose_batches_give_the_same_landmarks_as_single_crops(astronaut, movenet):
    (people,) = movenet([astronaut])
    roi = roi_from_coco(people.keypoints[0], people.boxes[0])
    bp = BlazePose("lite")
    shifted = Roi(roi.cx + 10, roi.cy, roi.side, 0.1)
    both = bp.run_many([(astronaut, roi), (astronaut, shifted)])
    one = bp(astronaut, [shifted])
    np.testing.assert_allclose(both.image[1], one.image[0], atol=1e-3)


def test_rotated_regions_give_the_same_landmarks_in_the_frame(astronaut, movenet):
    """A region turned by 90 degrees shows the person on their side; mapped back, the points must agree."""
    (people,) = movenet([astronaut])
    roi = roi_from_coco(people.keypoints[0], people.boxes[0])
    bp = BlazePose("full")
    upright = bp(astronaut, [roi])
    rolled = np.ascontiguousarray(np.rot90(astronaut))  # the person lies on her side in this frame
    h = astronaut.shape[0]
    # np.rot90 maps (x, y) -> (y, w - 1 - x); the body's "up" now points towards -x
    side_roi = Roi(roi.cy, h - 1 - roi.cx, roi.side, angle=np.pi / 2)
    turned = bp(rolled, [side_roi])
    back = np.stack([h - 1 - turned.image[0, :, 1], turned.image[0, :, 0]], axis=1)
    face = [0, 2, 5, 11, 12]  # nose, eyes, shoulders
    assert np.abs(back[face] - upright.image[0, face, :2]).max() < 0.03 * roi.side
    # world landmarks keep the frame's orientation: turned with it (x, y -> y, -x), the same once turned back
    w = turned.world[0]
    np.testing.assert_allclose(np.stack([-w[:, 1], w[:, 0], w[:, 2]], 1)[face], upright.world[0, face], atol=0.05)


def test_two_photographs_side_by_side_are_two_people(movenet, astronaut, cameraman):
    (people,) = movenet([np.concatenate([astronaut, cameraman], axis=1)])
    assert len(people.scores) == 2
    centres = np.sort((people.boxes[:, 0] + people.boxes[:, 2]) / 2)
    assert centres[0] < 512 < centres[1]


@pytest.mark.parametrize("photo", ["chelsea", "coffee", "rocket"])
def test_photographs_without_people_give_nobody(movenet, photo):
    (people,) = movenet([getattr(skimage_data, photo)()])
    assert len(people.scores) == 0


def _stage(astronaut, cameraman, small: bool) -> np.ndarray:
    """A 720p frame with the portrait large (the 256 pass finds her) and, if ``small``, the cameraman 100
    pixels tall (only the finer 512 pass finds him)."""
    import cv2

    frame = np.full((720, 1280, 3), 120, np.uint8)
    frame[100:612, 100:612] = astronaut
    if small:
        frame[400:500, 900:1000] = cv2.resize(cameraman, (100, 100), interpolation=cv2.INTER_AREA)
    return frame


def test_the_finer_pass_runs_every_frame_only_while_it_finds_someone_new(astronaut, cameraman):
    net = MoveNet(fine_every=4)
    alone, both = _stage(astronaut, cameraman, False), _stage(astronaut, cameraman, True)
    # the large portrait alone: the first pass is enough, the finer one runs on frames 0 and 4
    people = net([alone] * 6)
    assert [len(p.scores) for p in people] == [1] * 6
    assert net.fine_frames == 2
    # a small person appears on frame 6: the scheduled finer pass on frame 8 finds him, and from then on
    # it runs on every frame, so he is found on every one
    people = net([both] * 6)
    assert [len(p.scores) for p in people] == [1, 1, 2, 2, 2, 2]
    assert net.fine_frames == 2 + 4
    # he leaves: one more finer pass finds nobody new, then the schedule is sparse again
    net([alone] * 5)
    assert net.fine_frames == 2 + 4 + 1 + 1  # frame 12 (finds nobody new), then frame 16 by the schedule
    # every frame by default (unrelated images), and after reset() the schedule starts with a finer pass
    every = MoveNet()
    assert [len(p.scores) for p in every([both] * 3)] == [2, 2, 2] and every.fine_frames == 3
    net.reset()
    assert len(net([both])[0].scores) == 2


def test_input_sizes_follow_the_frame():
    assert input_sizes(360, 480) == (256,)
    assert input_sizes(480, 640) == (256, 416)
    assert input_sizes(576, 768) == (256, 512)
    assert input_sizes(720, 1280) == (256, 512)
    assert input_sizes(2160, 3840) == (256, 512)


def test_mirror_permutations_swap_left_and_right():
    perm = mirror_permutation(COCO17)
    assert COCO17[perm[COCO17.index("lwrist")]] == "rwrist" and perm[0] == 0
    perm = mirror_permutation(BLAZEPOSE33)
    assert BLAZEPOSE33[perm[BLAZEPOSE33.index("left_foot_index")]] == "right_foot_index"
    assert BLAZEPOSE33[perm[BLAZEPOSE33.index("mouth_left")]] == "mouth_right"


# --------------------------------------------------------------------------------------- checksums
def test_every_committed_file_matches_its_checksum():
    for name, entry in weights.WEIGHTS.items():
        if entry.committed:
            assert weights.verified_path(name).name == entry.filename


def test_a_modified_weights_file_is_refused(tmp_path, monkeypatch):
    entry = weights.WEIGHTS["blazepose_lite"]
    copy = tmp_path / entry.filename
    shutil.copy(weights.weights_dir() / entry.filename, copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 1
    copy.write_bytes(bytes(data))
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(tmp_path))
    with pytest.raises(AssetError) as err:
        BlazePose("lite")
    msg = str(err.value)
    assert entry.filename in msg and entry.sha256 in msg and "\n" not in msg


def test_a_missing_weights_file_names_the_command_that_makes_it(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(tmp_path))
    with pytest.raises(AssetError, match=r"blazepose_landmark_heavy\.onnx: no such file.*make_weights\.sh heavy"):
        weights.verified_path("blazepose_heavy")
    with pytest.raises(AssetError, match="movenet_multipose_lightning.onnx: no such file"):
        MoveNet()
