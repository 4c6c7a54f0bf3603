"""The TFRecord / ``tf.train.Example`` reader."""

from __future__ import annotations

import numpy as np
import pytest

from tests.data.prepare.raw_data import encode_example, tfrecord_bytes


def test_tfrecord_reader_checks_crc(tmp_path):
    from maed.data.prepare.tfrecord import iter_records, parse_example
    from maed.errors import DataError

    ex = encode_example({"a": [1, -2, 300], "b": np.array([0.5, -1.25], np.float32), "c": [b"xy", b""]})
    path = tmp_path / "r.tfrecord"
    path.write_bytes(tfrecord_bytes([ex, ex]))
    records = list(iter_records(path, check_crc=True))
    assert len(records) == 2
    feat = parse_example(records[0])
    assert feat["a"] == [1, -2, 300] and feat["c"] == [b"xy", b""]
    np.testing.assert_array_equal(feat["b"], [0.5, -1.25])
    bad = bytearray(path.read_bytes())
    bad[20] ^= 0xFF
    path.write_bytes(bytes(bad))
    with pytest.raises(DataError, match="CRC"):
        list(iter_records(path, check_crc=True))
