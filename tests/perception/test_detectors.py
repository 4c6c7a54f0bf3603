"""Detection tiers: the --boxes format, the tier choice, torchvision weights loaded strictly, HOG on a person."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from maed.errors import AssetError, CheckpointError, ConfigError, DataError
from maed.perception import detectors as detect


def _write(path, doc):
    path.write_text(json.dumps(doc))
    return path


def test_box_formats_agree_and_track_ids_are_kept(tmp_path):
    xyxy = _write(
        tmp_path / "a.json",
        {
            "box_format": "xyxy",
            "frames": [
                {"frame": 3, "boxes": [[10, 20, 50, 120]], "track_ids": [7]},
                {"frame": 0, "boxes": [[0, 0, 10, 30], [5, 5, 25, 65]], "track_ids": [7, 2], "scores": [0.9, 0.4]},
            ],
        },
    )
    cxcywh = _write(tmp_path / "b.json", {"box_format": "cxcywh", "frames": [
        {"frame": 0, "boxes": [[5, 15, 10, 30], [15, 35, 20, 60]], "track_ids": [7, 2]},
        {"frame": 3, "boxes": [[30, 70, 40, 100]], "track_ids": [7]},
    ]})  # fmt: skip
    a, b = detect.load_boxes_file(xyxy, num_frames=4), detect.load_boxes_file(cxcywh)
    assert a.tier == "boxes" and a.num_frames == 4 and b.num_frames == 4  # b: one past the last listed frame
    assert a.frame.tolist() == b.frame.tolist() == [0, 0, 3]  # sorted by frame
    np.testing.assert_allclose(a.boxes, b.boxes)
    np.testing.assert_allclose(a.xyxy[2], [10, 20, 50, 120])
    assert b.boxes[2].tolist() == [30, 70, 40, 100]  # centre and size kept exactly
    assert a.track_ids.tolist() == [7, 2, 7] and a.has_track_ids
    np.testing.assert_allclose(a.scores, [0.9, 0.4, 1.0])
    assert a.box_scale == 1.0  # user boxes are used as given


@pytest.mark.parametrize(
    "doc, where",
    [
        ([], "top level: expected an object"),
        ({"frames": []}, "box_format: expected one of 'xyxy', 'cxcywh'"),
        ({"box_format": "xywh", "frames": []}, "box_format"),
        ({"box_format": "xyxy", "frames": {}}, "frames: expected a list"),
        ({"box_format": "xyxy", "frames": [], "fps": 30}, "top level: expected only the keys"),
        ({"box_format": "xyxy", "frames": [{"boxes": []}]}, r"frames\[0\]\.frame: expected an integer >= 0"),
        (
            {"box_format": "xyxy", "frames": [{"frame": 0, "boxes": [[1, 2, 3]]}]},
            r"frames\[0\]\.boxes\[0\]: expected 4",
        ),
        ({"box_format": "xyxy", "frames": [{"frame": 0, "boxes": [[5, 2, 3, 9]]}]}, r"x2 > x1 and y2 > y1"),
        ({"box_format": "cxcywh", "frames": [{"frame": 0, "boxes": [[5, 5, 0, 9]]}]}, r"w > 0 and h > 0"),
        ({"box_format": "xyxy", "frames": [{"frame": 0, "boxes": [[0, 0, 1, "2"]]}]}, r"boxes\[0\]: expected 4 finite"),
        (
            {"box_format": "xyxy", "frames": [{"frame": 1, "boxes": []}, {"frame": 1, "boxes": []}]},
            r"frames\[1\]\.frame: expected each frame listed once",
        ),
        (
            {"box_format": "xyxy", "frames": [{"frame": 9, "boxes": []}]},
            r"frames\[0\]\.frame: expected an index below 5",
        ),
        (
            {
                "box_format": "xyxy",
                "frames": [
                    {"frame": 0, "boxes": [[0, 0, 1, 1]], "track_ids": [1]},
                    {"frame": 1, "boxes": [[0, 0, 1, 1]]},
                ],
            },
            r"frames\[1\]\.track_ids: expected track ids in every entry with boxes, or in none",
        ),
        (
            {"box_format": "xyxy", "frames": [{"frame": 0, "boxes": [[0, 0, 1, 1]], "track_ids": [-1]}]},
            r"track_ids: expected integers >= 0",
        ),
        (
            {"box_format": "xyxy", "frames": [{"frame": 0, "boxes": [[0, 0, 1, 1]] * 2, "track_ids": [3, 3]}]},
            r"track_ids: expected distinct ids within a frame",
        ),
        (
            {"box_format": "xyxy", "frames": [{"frame": 0, "boxes": [[0, 0, 1, 1]], "scores": [0.5, 0.5]}]},
            r"scores: expected a list of 1 numbers",
        ),
        ({"box_format": "xyxy", "frames": [{"frame": 0, "boxes": [], "label": "x"}]}, r"frames\[0\]: expected only"),
    ],
)
def test_a_wrong_boxes_file_names_the_field(tmp_path, doc, where):
    path = _write(tmp_path / "boxes.json", doc)
    with pytest.raises(DataError, match=where) as e:
        detect.load_boxes_file(path, num_frames=5)
    message = str(e.value)
    assert message.startswith(f"--boxes {path}: ") and "docs/OUTPUTS.md" in message and "\n" not in message


def test_boxes_file_that_is_not_json_or_missing(tmp_path):
    (tmp_path / "b.json").write_text("{box_format: xyxy")
    with pytest.raises(DataError, match="not valid JSON"):
        detect.load_boxes_file(tmp_path / "b.json")
    with pytest.raises(DataError, match="no such file"):
        detect.load_boxes_file(tmp_path / "none.json")


def test_iou_and_nms():
    a = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    iou = detect.box_iou(a, a)
    np.testing.assert_allclose(np.diag(iou), 1.0)
    assert iou[0, 1] == pytest.approx(50 / 150) and iou[0, 2] == 0.0
    assert detect.nms(a, np.array([0.5, 0.9, 0.1]), iou=0.3).tolist() == [1, 2]
    assert detect.nms(a, np.array([0.5, 0.9, 0.1]), iou=0.4).tolist() == [1, 0, 2]


def _small_detector_state(tmp_path, num_classes=91):
    from torchvision.models import detection

    torch.manual_seed(0)
    model = detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=num_classes
    )
    path = tmp_path / "fasterrcnn_mobilenet_v3_large_320_fpn.pth"
    torch.save(model.state_dict(), path)
    return path, model.state_dict()


def test_detector_choice(tmp_path, monkeypatch):
    boxes = _write(tmp_path / "b.json", {"box_format": "xyxy", "frames": []})
    assert detect.choose_detector("auto", boxes=boxes, weights=None).tier == "boxes"
    assert detect.choose_detector("auto", boxes=None, weights=None).tier == "movenet"  # the shipped network
    monkeypatch.setenv("MAED_PERCEPTION_WEIGHTS", str(tmp_path))  # no weights there: HOG (opencv < 5 ships it)
    choice = detect.choose_detector("auto", boxes=None, weights=None)
    assert choice.tier == "hog" and "movenet_multipose_lightning.onnx is missing" in choice.reason
    monkeypatch.delenv("MAED_PERCEPTION_WEIGHTS")
    assert detect.choose_detector("full-frame", boxes=None, weights=None).tier == "full-frame"
    with pytest.raises(ConfigError, match="--boxes and --detector hog exclude each other"):
        detect.choose_detector("hog", boxes=boxes, weights=None)
    with pytest.raises(ConfigError, match="--detector torchvision needs --detector-weights"):
        detect.choose_detector("torchvision", boxes=None, weights=None)
    with pytest.raises(ConfigError, match="--detector boxes needs --boxes"):
        detect.choose_detector("boxes", boxes=None, weights=None)
    with pytest.raises(AssetError, match="nothing is downloaded"):
        detect.choose_detector("auto", boxes=None, weights=tmp_path / "yolov8n.pt")
    # a torch archive naming ultralytics classes (how YOLO .pt files are stored) is taken for YOLO, which
    # needs its package; any other pickled object is refused, and never unpickled
    yolo = tmp_path / "yolo.pt"
    torch.save({"model": "ultralytics.nn.tasks.DetectionModel"}, yolo)
    choice = detect.choose_detector("auto", boxes=None, weights=yolo)
    assert choice.tier == "yolo"
    other = tmp_path / "module.pt"
    torch.save({"model": torch.nn.Linear(2, 2)}, other)
    with pytest.raises(CheckpointError, match=r"--detector-weights: checkpoint .*module\.pt: refused to load"):
        detect.choose_detector("auto", boxes=None, weights=other)
    try:
        import ultralytics  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"pip install ultralytics"):
            detect.build_detector(choice, threshold=None, size=None, device="cpu")
    not_a_detector = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(2)}, not_a_detector)
    with pytest.raises(CheckpointError, match="neither a torchvision"):
        detect.choose_detector("auto", boxes=None, weights=not_a_detector)


def test_torchvision_weights_load_strictly_and_run(tmp_path):
    path, state = _small_detector_state(tmp_path, num_classes=2)
    choice = detect.choose_detector("auto", boxes=None, weights=path)
    assert choice.tier == "torchvision"
    det = detect.build_detector(choice, threshold=0.0, size=160, device="cpu")
    assert det.arch == "fasterrcnn_mobilenet_v3_large_320_fpn" and det.box_scale == detect.DETECTOR_BOX_SCALE
    for k, v in det.model.state_dict().items():  # the file's weights, not an initialisation
        assert torch.equal(v, state[k]), k
    frames = [np.random.default_rng(i).integers(0, 255, (120, 160, 3), dtype=np.uint8) for i in range(2)]
    out = det(frames)
    assert len(out) == 2 and all(b.shape[1:] == (4,) and len(b) == len(s) for b, s in out)
    del state["roi_heads.box_predictor.bbox_pred.bias"]
    torch.save(state, path)
    choice = detect.choose_detector("torchvision", boxes=None, weights=path)
    with pytest.raises(CheckpointError, match=r"does not fit fasterrcnn_mobilenet_v3_large_320_fpn.*bbox_pred\.bias"):
        detect.build_detector(choice, threshold=None, size=None, device="cpu")


def test_detecting_every_nth_frame_leaves_the_others_empty():
    calls = []

    class Counting(detect.Detector):
        tier, batch_size = "hog", 2

        def __call__(self, frames):
            calls.append(len(frames))
            return [(np.array([[0.0, 0, 10, 20]]), np.ones(1))] * len(frames)

    frames = ((i, np.zeros((4, 4, 3), np.uint8)) for i in range(7))
    det = detect.detect_frames(frames, Counting(), every=3)
    assert det.num_frames == 7 and det.frame.tolist() == [0, 3, 6] and sum(calls) == 3
    np.testing.assert_allclose(det.boxes[0], [5, 10, 10, 20])  # stored as centre and size
