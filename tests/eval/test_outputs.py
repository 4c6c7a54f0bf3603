"""What ``maed eval`` writes (``maed.eval.outputs``); the files of a whole run are checked end to end in
test_evaluator.py."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from maed.errors import OutputError
from maed.eval.outputs import _finite_or_none, check_previous_run, format_table, run_signature


def test_metrics_json_writes_null_for_non_finite():
    rec = _finite_or_none({"mpjpe": 1.5, "accel": float("nan"), "by_protocol": {"strict": {"pve": float("inf")}}})
    assert rec == {"mpjpe": 1.5, "accel": None, "by_protocol": {"strict": {"pve": None}}}


def test_format_table_lists_every_protocol():
    record = {
        "dataset": "3dpw",
        "split": "test",
        "by_protocol": {
            "original": {"mpjpe": 80.0, "pa-mpjpe": 50.0, "pve": None, "accel": 1.0, "accel_err": 2.0, "num_frames": 9},
            "strict": {"mpjpe": 81.0, "pa-mpjpe": 51.0, "pve": None, "accel": 1.5, "accel_err": 2.5, "num_frames": 8},
        },
    }
    lines = format_table(record).splitlines()
    assert len(lines) == 3 and lines[1].split()[0] == "original" and lines[2].split()[0] == "strict"
    assert lines[2].split()[1:] == ["81.00", "51.00", "-", "1.50", "2.50", "8"]


def test_run_signature_covers_every_input_that_changes_the_numbers(tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    ckpt.write_bytes(b"weights")
    db = tmp_path / "database" / "3dpw_test_db.pt"
    db.parent.mkdir()
    db.write_bytes(b"rows")
    (tmp_path / "images").mkdir()
    cache = tmp_path / "crop_cache"
    cache.mkdir()
    (cache / "meta.json").write_text('{"rows": 1, "size": 256}')
    base = dict(
        checkpoint=ckpt,
        database=db,
        dataset="3dpw",
        split="test",
        data_root=tmp_path / "images",
        body_model_dir=tmp_path / "smpl",
        crop_cache=None,
        protocol="original",
        frame_step=1,
        model_config={"ENCODER": {"BACKBONE": "ste"}},
        inputs={"seqlen": 16, "sample_pool": 128, "width": 224, "height": 224},
    )
    signature = run_signature(**base)

    def differs(**change) -> set[str]:
        other = run_signature(**{**base, **change})
        return {k for k in signature.keys() | other.keys() if signature.get(k) != other.get(k)}

    assert differs() == set()
    copy = tmp_path / "other_database" / db.name
    copy.parent.mkdir()
    shutil.copy(db, copy)
    assert differs(database=copy) == {"database"}
    link = tmp_path / "link_to_images"
    link.symlink_to(tmp_path / "images", target_is_directory=True)
    assert differs(data_root=link) == set()  # the same folder
    assert differs(data_root=tmp_path / "other_images") == {"data_root"}
    assert differs(body_model_dir=tmp_path / "smpl_other") == {"body_model_dir"}
    assert differs(crop_cache=cache) == {"crop_cache"}
    assert differs(split="val", dataset="h36m") == {"split", "dataset"}
    assert differs(protocol="both", frame_step=2) == {"protocol", "frame_step"}
    assert differs(model_config={"ENCODER": {"BACKBONE": "cnn"}}) == {"model"}
    assert differs(inputs={**base["inputs"], "width": 192}) == {"inputs"}
    cached = run_signature(**{**base, "crop_cache": cache})
    (cache / "meta.json").write_text('{"rows": 1, "size": 128}')
    assert run_signature(**{**base, "crop_cache": cache})["crop_cache"] != cached["crop_cache"]
    db.write_bytes(b"other rows")  # new content under the same name
    assert differs() == {"database_sha256"}
    ckpt.write_bytes(b"other weights")
    assert differs() == {"database_sha256", "checkpoint_sha256"}


def test_the_same_run_is_accepted_and_another_refused(tmp_path):
    signature = {"dataset": "3dpw", "database": "/data/a", "database_sha256": "00"}
    (tmp_path / "metrics.json").write_text(json.dumps({"mpjpe": 80.0, "run": signature}))
    check_previous_run(tmp_path, signature)
    with pytest.raises(OutputError, match=r"metrics.json differs in data_root, database\); .* --overwrite"):
        check_previous_run(tmp_path, {**signature, "database": "/data/b", "data_root": "/images"})
    check_previous_run(tmp_path, {**signature, "database": "/data/b"}, overwrite=True)
    (tmp_path / "metrics.json").write_text("[1, 2]")
    with pytest.raises(OutputError, match="is not a maed evaluation record"):
        check_previous_run(tmp_path, signature)
    check_previous_run(tmp_path / "new", signature)  # nothing there yet


def test_file_sha256_reads_every_block(tmp_path):
    import hashlib

    from maed.utils.io import file_sha256

    data = os.urandom(3 << 20) * 3  # 9 MiB: two whole 4 MiB blocks and a short one
    path = tmp_path / "big_db.pt"
    path.write_bytes(data)
    assert file_sha256(path, block=4 << 20) == hashlib.sha256(data).hexdigest()
