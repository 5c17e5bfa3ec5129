"""AMF0, the encoding of RTMP command messages: just the types RTMP commands use."""

from __future__ import annotations

import struct
from typing import Any

NUMBER, BOOLEAN, STRING, OBJECT, NULL, UNDEFINED, ECMA_ARRAY, OBJECT_END = 0, 1, 2, 3, 5, 6, 8, 9
STRICT_ARRAY, LONG_STRING = 10, 12


class AMFError(ValueError):
    pass


def encode(*values: Any) -> bytes:
    return b"".join(_encode_value(v) for v in values)


def _encode_str(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">H", len(raw)) + raw


def _encode_value(value: Any) -> bytes:
    if value is None:
        return bytes([NULL])
    if isinstance(value, bool):
        return bytes([BOOLEAN, int(value)])
    if isinstance(value, int | float):
        return bytes([NUMBER]) + struct.pack(">d", float(value))
    if isinstance(value, str):
        raw = value.encode()
        if len(raw) > 0xFFFF:
            return bytes([LONG_STRING]) + struct.pack(">I", len(raw)) + raw
        return bytes([STRING]) + _encode_str(value)
    if isinstance(value, dict):
        body = b"".join(_encode_str(k) + _encode_value(v) for k, v in value.items())
        return bytes([OBJECT]) + body + b"\x00\x00" + bytes([OBJECT_END])
    raise AMFError(f"cannot encode {type(value).__name__} in AMF0")


def decode(data: bytes) -> list[Any]:
    """Decodes every value in `data`; raises AMFError on malformed input."""
    values: list[Any] = []
    pos = 0
    while pos < len(data):
        value, pos = _decode_value(data, pos)
        values.append(value)
    return values


def _take(data: bytes, pos: int, size: int) -> tuple[bytes, int]:
    if pos + size > len(data):
        raise AMFError("truncated AMF0 data")
    return data[pos : pos + size], pos + size


def _decode_str(data: bytes, pos: int) -> tuple[str, int]:
    raw, pos = _take(data, pos, 2)
    text, pos = _take(data, pos, struct.unpack(">H", raw)[0])
    return text.decode(errors="replace"), pos


def _decode_properties(data: bytes, pos: int) -> tuple[dict[str, Any], int]:
    result: dict[str, Any] = {}
    while True:
        key, pos = _decode_str(data, pos)
        if not key and pos < len(data) and data[pos] == OBJECT_END:
            return result, pos + 1
        result[key], pos = _decode_value(data, pos)


def _decode_value(data: bytes, pos: int) -> tuple[Any, int]:
    marker, pos = _take(data, pos, 1)
    kind = marker[0]
    if kind == NUMBER:
        raw, pos = _take(data, pos, 8)
        return struct.unpack(">d", raw)[0], pos
    if kind == BOOLEAN:
        raw, pos = _take(data, pos, 1)
        return raw[0] != 0, pos
    if kind == STRING:
        return _decode_str(data, pos)
    if kind == LONG_STRING:
        raw, pos = _take(data, pos, 4)
        text, pos = _take(data, pos, struct.unpack(">I", raw)[0])
        return text.decode(errors="replace"), pos
    if kind in (NULL, UNDEFINED):
        return None, pos
    if kind == OBJECT:
        return _decode_properties(data, pos)
    if kind == ECMA_ARRAY:
        _, pos = _take(data, pos, 4)
        return _decode_properties(data, pos)
    if kind == STRICT_ARRAY:
        raw, pos = _take(data, pos, 4)
        items = []
        for _ in range(struct.unpack(">I", raw)[0]):
            item, pos = _decode_value(data, pos)
            items.append(item)
        return items, pos
    raise AMFError(f"unsupported AMF0 type {kind}")
