"""What ``maed eval`` writes (``maed.eval.outputs``); the files of a whole run are checked end to end in
test_evaluator.py."""

from __future__ import annotations

from maed.eval.outputs import _finite_or_none, format_table


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
