"""The person-detector tiers on the rendered clip of the demo fixtures (a known box per frame)."""

from __future__ import annotations

import numpy as np
import pytest

from maed.perception import detectors as detect


def test_hog_finds_the_generated_person(person_clip):
    from maed.demo.source import open_source

    frames = [f for _, f in open_source(person_clip.path).frames()]
    boxes = detect.HogDetector()(frames)
    hits = wrong = 0
    for (b, s), truth in zip(boxes, person_clip.boxes):
        if len(b):  # the best box fits the silhouette's box (HOG windows shrunk to the person)
            iou = detect.box_iou(b, truth[None])[:, 0]
            hits += iou[np.argmax(s)] > 0.6
            wrong += int((iou < 0.1).sum())
    assert hits >= 2 * len(frames) // 3 and wrong == 0, boxes
    empty = np.full((192, 256, 3), 120, np.uint8)
    assert len(detect.HogDetector()([empty])[0][0]) == 0


@pytest.mark.parametrize("tier", ["movenet"])
def test_movenet_finds_the_generated_person_with_keypoints(person_clip, tier):
    from maed.demo.source import open_source

    frames = [f for _, f in open_source(person_clip.path).frames()]
    detector = detect.build_detector(detect.DetectorChoice(tier, "test"), threshold=None, size=None, device="cpu")
    results = detector(frames)
    hits = 0
    for (b, s, kp), truth in zip(results, person_clip.boxes):
        assert kp.shape == (len(b), 17, 3)
        if len(b):
            best = int(np.argmax(s))
            hits += detect.box_iou(b[best : best + 1], truth[None])[0, 0] > 0.5
            seen = kp[best, :, 2] > 0.3  # keypoints it is sure of lie in or near the person's box
            x1, y1, x2, y2 = truth
            pad = 0.15 * (y2 - y1)
            inside = (kp[best, seen, 0] > x1 - pad) & (kp[best, seen, 0] < x2 + pad)
            inside &= (kp[best, seen, 1] > y1 - pad) & (kp[best, seen, 1] < y2 + pad)
            assert inside.all()
    assert hits >= 2 * len(frames) // 3
    empty = np.full((192, 256, 3), 120, np.uint8)
    assert len(detector([empty])[0][0]) == 0  # nobody: no invented person
