"""Reads the stream name out of an RTMP publisher's bytes, without answering it.

FFmpeg's RTMP listener accepts any stream name and does not tell its caller which one
arrived. The origin relays each publisher's bytes to a private FFmpeg listener and feeds
the same bytes to this parser on the way, which decodes the client->server chunk stream
just far enough to see the `publish` command.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from streamer.publish import amf0

HANDSHAKE_BYTES = 1 + 1536 + 1536  # C0 + C1 + C2
MAX_SNIFF_BYTES = 1 << 20  # a publisher that has not said `publish` by then is not one
MAX_CHUNK_SIZE = 1 << 24
MAX_MESSAGE_SIZE = 1 << 20  # commands are small; media messages are skipped chunk by chunk
SET_CHUNK_SIZE, COMMAND_AMF3, COMMAND_AMF0 = 1, 17, 20


class SniffError(ValueError):
    """The bytes are not an RTMP publish."""


@dataclass
class _ChunkStream:
    timestamp_extended: bool = False
    length: int = 0
    type_id: int = 0
    received: int = 0  # bytes of the current message so far
    buffer: bytearray = field(default_factory=bytearray)  # kept for commands only


@dataclass
class _Header:
    csid: int
    size: int  # bytes of basic + message header + extended timestamp
    length: int
    type_id: int
    extended: bool


class PublishSniffer:
    """Feed it the client's bytes in order; `stream_name` is set once `publish` was seen."""

    def __init__(self) -> None:
        self.app: str | None = None
        self.stream_name: str | None = None
        self._handshake_left = HANDSHAKE_BYTES
        self._buffer = bytearray()
        self._seen = 0
        self._chunk_size = 128
        self._streams: dict[int, _ChunkStream] = {}

    @property
    def done(self) -> bool:
        return self.stream_name is not None

    def feed(self, data: bytes) -> None:
        """Consumes `data`; raises SniffError when the bytes cannot be an RTMP publish."""
        if self.done:
            return
        self._seen += len(data)
        if self._seen > MAX_SNIFF_BYTES:
            raise SniffError("no publish command in the first MiB")
        if self._handshake_left:
            if self._handshake_left == HANDSHAKE_BYTES and data and data[0] != 3:
                raise SniffError(f"not RTMP (handshake version {data[0]})")
            skipped = min(self._handshake_left, len(data))
            self._handshake_left -= skipped
            data = data[skipped:]
        self._buffer += data
        while not self.done and self._next_chunk():
            pass

    def _next_chunk(self) -> bool:
        """Parses one whole chunk from the buffer; False when more bytes are needed."""
        header = self._header()
        if header is None:
            return False
        state = self._streams.setdefault(header.csid, _ChunkStream())
        length = header.length if header.length >= 0 else state.length
        type_id = header.type_id if header.length >= 0 else state.type_id
        keep = type_id in (SET_CHUNK_SIZE, COMMAND_AMF0, COMMAND_AMF3)
        if keep and length > MAX_MESSAGE_SIZE:
            raise SniffError("command message too large")
        take = min(self._chunk_size, length - state.received)
        end = header.size + take
        if len(self._buffer) < end:
            return False
        if keep:
            state.buffer += self._buffer[header.size : end]
        del self._buffer[:end]
        state.length, state.type_id = length, type_id
        state.timestamp_extended = header.extended
        state.received += take
        if state.received >= state.length:
            message = bytes(state.buffer)
            state.buffer.clear()
            state.received = 0
            if keep:
                self._on_message(type_id, message)
        return True

    def _header(self) -> _Header | None:
        buf = self._buffer
        if not buf:
            return None
        fmt, csid, pos = buf[0] >> 6, buf[0] & 0x3F, 1
        if csid in (0, 1):
            extra = 1 if csid == 0 else 2
            if len(buf) < 1 + extra:
                return None
            csid = 64 + buf[1] + (buf[2] * 256 if extra == 2 else 0)
            pos += extra
        fields = (11, 7, 3, 0)[fmt]
        if len(buf) < pos + fields:
            return None
        state = self._streams.get(csid)
        if fmt == 3:
            if state is None:
                raise SniffError("continuation chunk without a header")
            extended = state.timestamp_extended
        else:
            extended = int.from_bytes(buf[pos : pos + 3], "big") == 0xFFFFFF
        length, type_id = -1, 0
        if fmt <= 1:
            length = int.from_bytes(buf[pos + 3 : pos + 6], "big")
            type_id = buf[pos + 6]
        elif state is None:
            raise SniffError("chunk header refers to an unknown chunk stream")
        size = pos + fields + (4 if extended else 0)
        if len(buf) < size:
            return None
        return _Header(csid, size, length, type_id, extended)

    def _on_message(self, type_id: int, payload: bytes) -> None:
        if type_id == SET_CHUNK_SIZE:
            if len(payload) < 4:
                raise SniffError("short Set Chunk Size")
            size = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
            if not 1 <= size <= MAX_CHUNK_SIZE:
                raise SniffError("bad chunk size")
            self._chunk_size = size
            return
        body = payload[1:] if type_id == COMMAND_AMF3 else payload
        try:
            values = amf0.decode(body)
        except amf0.AMFError as exc:
            raise SniffError(f"malformed command: {exc}") from None
        self._on_command(values)

    def _on_command(self, values: list[Any]) -> None:
        if not values or not isinstance(values[0], str):
            return
        name = values[0]
        if name == "connect" and len(values) > 2 and isinstance(values[2], dict):
            app = values[2].get("app")
            self.app = app if isinstance(app, str) else None
        elif name == "publish":
            stream = values[3] if len(values) > 3 else None
            if not isinstance(stream, str):
                raise SniffError("publish without a stream name")
            self.stream_name = stream
