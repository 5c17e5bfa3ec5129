"""Decodes an RTMP chunk stream (after the handshake) into messages, incrementally.

The origin reads both directions with it: the publisher's commands up to `publish`, and
the transcoder's answers, which it passes on to the publisher re-chunked. It keeps the
payloads of the message types it is asked for and skips the others chunk by chunk, so
that media passes without being buffered whole.
"""

from __future__ import annotations

import struct
from collections.abc import Collection
from dataclasses import dataclass, field

MAX_CHUNK_SIZE = 1 << 24
MAX_MESSAGE_SIZE = 1 << 20  # kept messages (commands, control) are small
SET_CHUNK_SIZE, ABORT, ACK, USER_CONTROL, WINDOW_ACK_SIZE, PEER_BANDWIDTH = 1, 2, 3, 4, 5, 6
AUDIO, VIDEO, DATA_AMF0, COMMAND_AMF3, COMMAND_AMF0 = 8, 9, 18, 17, 20
COMMANDS = frozenset({COMMAND_AMF0, COMMAND_AMF3})


class ChunkError(ValueError):
    """The bytes are not a valid RTMP chunk stream."""


@dataclass(frozen=True, kw_only=True)
class Message:
    csid: int
    type_id: int
    stream_id: int
    payload: bytes


@dataclass
class _ChunkStream:
    timestamp_extended: bool = False
    length: int = 0
    type_id: int = 0
    stream_id: int = 0
    received: int = 0  # bytes of the current message so far
    buffer: bytearray = field(default_factory=bytearray)  # kept messages only


@dataclass
class _Header:
    csid: int
    size: int  # bytes of basic + message header + extended timestamp
    length: int  # -1: same as the chunk stream's previous message
    type_id: int
    stream_id: int | None  # None: same as the chunk stream's previous message
    extended: bool


class ChunkReader:
    """Feed it one direction's bytes in order; `feed` returns the whole messages of the
    kept types. Set Chunk Size is always obeyed (and returned when kept)."""

    def __init__(self, keep: Collection[int] | None = None) -> None:
        self._keep = keep  # None: every type
        self._buffer = bytearray()
        self._chunk_size = 128
        self._streams: dict[int, _ChunkStream] = {}

    def feed(self, data: bytes) -> list[Message]:
        """Consumes `data`; raises ChunkError when the bytes cannot be RTMP chunks."""
        self._buffer += data
        messages: list[Message] = []
        while self._next_chunk(messages):
            pass
        return messages

    def _kept(self, type_id: int) -> bool:
        return type_id == SET_CHUNK_SIZE or self._keep is None or type_id in self._keep

    def _next_chunk(self, messages: list[Message]) -> bool:
        """Parses one whole chunk (adding the message it completes, if kept); False when
        more bytes are needed."""
        header = self._header()
        if header is None:
            return False
        state = self._streams.setdefault(header.csid, _ChunkStream())
        length = header.length if header.length >= 0 else state.length
        type_id = header.type_id if header.length >= 0 else state.type_id
        stream_id = header.stream_id if header.stream_id is not None else state.stream_id
        keep = self._kept(type_id)
        if keep and length > MAX_MESSAGE_SIZE:
            raise ChunkError(f"message of type {type_id} too large ({length} bytes)")
        take = min(self._chunk_size, length - state.received)
        end = header.size + take
        if len(self._buffer) < end:
            return False
        if keep:
            state.buffer += self._buffer[header.size : end]
        del self._buffer[:end]
        state.length, state.type_id, state.stream_id = length, type_id, stream_id
        state.timestamp_extended = header.extended
        state.received += take
        if state.received < state.length:
            return True
        payload = bytes(state.buffer)
        state.buffer.clear()
        state.received = 0
        if keep:
            if type_id == SET_CHUNK_SIZE:
                self._set_chunk_size(payload)
            if self._keep is None or type_id in self._keep:
                messages.append(
                    Message(csid=header.csid, type_id=type_id, stream_id=stream_id, payload=payload)
                )
        return True

    def _set_chunk_size(self, payload: bytes) -> None:
        if len(payload) < 4:
            raise ChunkError("short Set Chunk Size")
        size = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
        if not 1 <= size <= MAX_CHUNK_SIZE:
            raise ChunkError("bad chunk size")
        self._chunk_size = size

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
                raise ChunkError("continuation chunk without a header")
            extended = state.timestamp_extended
        else:
            extended = int.from_bytes(buf[pos : pos + 3], "big") == 0xFFFFFF
        length, type_id, stream_id = -1, 0, None
        if fmt <= 1:
            length = int.from_bytes(buf[pos + 3 : pos + 6], "big")
            type_id = buf[pos + 6]
        elif state is None:
            raise ChunkError("chunk header refers to an unknown chunk stream")
        if fmt == 0:
            stream_id = struct.unpack("<I", buf[pos + 7 : pos + 11])[0]
        size = pos + fields + (4 if extended else 0)
        if len(buf) < size:
            return None
        return _Header(csid, size, length, type_id, stream_id, extended)
