"""Read TFRecord files of ``tf.train.Example`` protos without TensorFlow or protobuf.

TFRecord framing, per record: ``uint64 length`` (little endian), ``uint32`` masked CRC-32C of the
length bytes, ``length`` bytes of data, ``uint32`` masked CRC-32C of the data. CRCs are checked when
``check_crc`` (pure Python, slow; off by default) and the framing always is.

``tf.train.Example`` wire format (proto3)::

    Example   { Features features = 1; }
    Features  { map<string, Feature> feature = 1; }      // entries: { string key = 1; Feature value = 2; }
    Feature   { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }
    FloatList { repeated float value = 1 [packed = true]; }
    Int64List { repeated int64 value = 1 [packed = true]; }
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from maed.errors import DataError

_CRC_TABLE: list[int] | None = None


def _crc32c(data: bytes) -> int:
    global _CRC_TABLE
    if _CRC_TABLE is None:
        table = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            table.append(c)
        _CRC_TABLE = table
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C."""
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def iter_records(path: str | os.PathLike, check_crc: bool = False) -> Iterator[bytes]:
    """Yield the data of each record of a TFRecord file; a truncated or corrupt file raises ``DataError``."""
    path = Path(path)
    with open(path, "rb") as f:
        index = 0
        while True:
            head = f.read(12)
            if not head:
                return
            if len(head) < 12:
                raise DataError(f"{path}: truncated TFRecord (record {index} header)")
            (length,) = struct.unpack("<Q", head[:8])
            if check_crc and struct.unpack("<I", head[8:])[0] != masked_crc32c(head[:8]):
                raise DataError(f"{path}: corrupt TFRecord (record {index} length CRC)")
            data = f.read(length)
            tail = f.read(4)
            if len(data) < length or len(tail) < 4:
                raise DataError(f"{path}: truncated TFRecord (record {index} has {len(data)} of {length} bytes)")
            if check_crc and struct.unpack("<I", tail)[0] != masked_crc32c(data):
                raise DataError(f"{path}: corrupt TFRecord (record {index} data CRC)")
            yield data
            index += 1


# ------------------------------------------------------------------------------------------- protobuf
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, bytes | int]]:
    """(field number, wire type, value) of a serialized message: bytes for length-delimited/fixed
    fields, int for varints."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise ValueError("truncated length-delimited field")
            value, pos = buf[pos : pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield num, wire, value


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _int64_list(buf: bytes) -> list[int]:
    out: list[int] = []
    for num, wire, value in _fields(buf):
        if num != 1:
            continue
        if wire == 0:
            out.append(_signed64(value))
        else:  # packed
            pos = 0
            while pos < len(value):
                v, pos = _varint(value, pos)
                out.append(_signed64(v))
    return out


def _float_list(buf: bytes) -> np.ndarray:
    chunks = []
    for num, _wire, value in _fields(buf):
        if num == 1:  # packed (wire 2) or a single fixed32 (wire 5): both little-endian float32
            chunks.append(np.frombuffer(value, dtype="<f4"))
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, dtype=np.float32)


def _feature(buf: bytes) -> list[bytes] | np.ndarray | list[int]:
    for num, _, value in _fields(buf):
        if num == 1:
            return [v for n, _, v in _fields(value) if n == 1]
        if num == 2:
            return _float_list(value)
        if num == 3:
            return _int64_list(value)
    return []


def parse_example(data: bytes) -> dict[str, list[bytes] | np.ndarray | list[int]]:
    """A serialized ``tf.train.Example`` -> {feature name: list of bytes | float32 array | list of int}."""
    features: dict = {}
    for num, _, value in _fields(data):
        if num != 1:
            continue
        for n, _, entry in _fields(value):
            if n != 1:
                continue
            key, feat = "", b""
            for en, _, ev in _fields(entry):
                if en == 1:
                    key = ev.decode("utf-8")
                elif en == 2:
                    feat = ev
            features[key] = _feature(feat)
    return features
