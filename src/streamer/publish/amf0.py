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
    """Decodes every value in `data`; raises AMFError on malformed or oversized input.

    The server's answers are untrusted: nesting, entries per object or array, and values in
    all are bounded (an RTMP answer has a few values, two levels deep), so that a hostile
    one costs neither the stack nor memory.
    """
    return _Decoder(data).values()


MAX_DEPTH = 32
MAX_ENTRIES = 1024  # per object or array
MAX_VALUES = 10_000  # in one message


class _Decoder:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0
        self._budget = MAX_VALUES

    def values(self) -> list[Any]:
        values: list[Any] = []
        while self._pos < len(self._data):
            values.append(self._value(0))
        return values

    def _take(self, size: int) -> bytes:
        end = self._pos + size
        if end > len(self._data):
            raise AMFError("truncated AMF0 data")
        raw, self._pos = self._data[self._pos : end], end
        return raw

    def _count(self, fmt: str) -> int:
        raw = self._take(struct.calcsize(fmt))
        return int(struct.unpack(fmt, raw)[0])

    def _str(self, size_format: str = ">H") -> str:
        return self._take(self._count(size_format)).decode(errors="replace")

    def _value(self, depth: int) -> Any:
        self._budget -= 1
        if self._budget < 0:
            raise AMFError(f"more than {MAX_VALUES} AMF0 values in one message")
        kind = self._take(1)[0]
        if kind == NUMBER:
            return struct.unpack(">d", self._take(8))[0]
        if kind == BOOLEAN:
            return self._take(1)[0] != 0
        if kind == STRING:
            return self._str()
        if kind == LONG_STRING:
            return self._str(">I")
        if kind in (NULL, UNDEFINED):
            return None
        if kind in (OBJECT, ECMA_ARRAY, STRICT_ARRAY):
            if depth >= MAX_DEPTH:
                raise AMFError(f"AMF0 values nested deeper than {MAX_DEPTH} levels")
            if kind == OBJECT:
                return self._properties(depth + 1)
            if kind == ECMA_ARRAY:
                self._take(4)  # an approximate count: the end marker decides
                return self._properties(depth + 1)
            return self._array(depth + 1)
        raise AMFError(f"unsupported AMF0 type {kind}")

    def _properties(self, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while True:
            key = self._str()
            if not key and self._pos < len(self._data) and self._data[self._pos] == OBJECT_END:
                self._pos += 1
                return result
            if len(result) >= MAX_ENTRIES:
                raise AMFError(f"AMF0 object with more than {MAX_ENTRIES} entries")
            result[key] = self._value(depth)

    def _array(self, depth: int) -> list[Any]:
        count = self._count(">I")
        if count > MAX_ENTRIES:
            raise AMFError(f"AMF0 array with more than {MAX_ENTRIES} entries")
        return [self._value(depth) for _ in range(count)]
