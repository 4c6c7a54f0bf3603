"""``maed prepare coco2014``: COCO 2014 person keypoints (json)."""

from __future__ import annotations

import json
import re

import joblib
import numpy as np
import pytest

from tests.data.prepare.raw_data import COCO_ORDER, SPIN, prepare, write_coco


def test_coco_train_and_val_together(tmp_path):
    raw = tmp_path / "coco"
    written = write_coco(raw)
    assert prepare("coco2014", raw, tmp_path / "db") == 0
    db = joblib.load(tmp_path / "db" / "coco2014-all_train_db.pt")
    kept = written["kept"]
    np.testing.assert_array_equal(db["img_name"], [k[0] for k in kept])
    for row, (_, kp, (x, y, w, h)) in enumerate(kept):
        exp = np.zeros((49, 3))
        for j, name in enumerate(COCO_ORDER):
            exp[SPIN[name]] = [kp[j, 0], kp[j, 1], float(kp[j, 2] > 0)]
        np.testing.assert_allclose(db["joints2D"][row], exp, rtol=1e-6)
        np.testing.assert_allclose(db["bbox"][row], [x + w / 2, y + h / 2, max(w, h), max(w, h)], rtol=1e-6)


@pytest.mark.parametrize(
    "break_it,field",
    [
        (lambda d: d["annotations"][0].__setitem__("bbox", [1.0, 2.0, 3.0]), r"'annotations\[0\]\.bbox' has 3 values"),
        (lambda d: d["annotations"][0].pop("bbox"), r"'annotations\[0\]\.bbox' has 0 values"),
        (lambda d: d["annotations"][0].__setitem__("image_id", -7), r"'annotations\[0\]\.image_id' \(-7\)"),
        (lambda d: d["images"][0].pop("file_name"), r"'images\[0\]' needs 'id' and 'file_name'"),
    ],
)
def test_coco_malformed_annotation_names_file_and_field(tmp_path, capsys, break_it, field):

    raw = tmp_path / "coco"
    write_coco(raw)
    ann = raw / "annotations" / "person_keypoints_train2014.json"
    data = json.loads(ann.read_text())
    data["annotations"].sort(key=lambda a: -int(np.count_nonzero(np.asarray(a["keypoints"])[2::3])))  # a kept one first
    break_it(data)
    ann.write_text(json.dumps(data))
    assert prepare("coco2014", raw, tmp_path / "db") == 2
    err = capsys.readouterr().err
    assert str(ann) in err and re.search(field, err), err
