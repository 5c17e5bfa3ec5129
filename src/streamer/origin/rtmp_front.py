"""The RTMP server a publisher meets first: it answers until `publish`, then hands over.

A transcoder (FFmpeg's RTMP listener in a worker thread) costs a thread, a port and
FFmpeg's buffers, so the origin starts one only for a publisher whose stream key it has
accepted. Until `publish`, this front plays the server itself: the handshake, `connect`,
`createStream`. It records what the publisher sent after the handshake. The hand-over
then handshakes with the transcoder and replays those bytes verbatim, so that the
transcoder reads exactly the publisher's chunk stream from there on; the transcoder's
own answers are read and dropped until its `NetStream.Publish.Start`, and everything it
sends later goes on to the publisher, re-chunked (`pass_downstream`).
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from dataclasses import dataclass
from typing import Any

from streamer.origin.rtmp_chunks import (
    ABORT,
    COMMAND_AMF0,
    COMMAND_AMF3,
    COMMANDS,
    PEER_BANDWIDTH,
    SET_CHUNK_SIZE,
    WINDOW_ACK_SIZE,
    ChunkError,
    ChunkReader,
    Message,
)
from streamer.publish import amf0
from streamer.publish.rtmp import chunk_message

HANDSHAKE_SIZE = 1536
MAX_PRE_PUBLISH_BYTES = 1 << 20  # a publisher that has not said `publish` by then is not one
READ_SIZE = 65536
OUT_CHUNK_SIZE = 4096  # announced to the publisher; everything sent to it is chunked so
WINDOW_SIZE = 5_000_000
PUBLISH_STREAM_ID = 1.0  # what `createStream` answers
CSID_CONTROL, CSID_COMMAND, CSID_STATUS = 2, 3, 5


class FrontError(Exception):
    """Not a publish the origin can take; the message is safe to log (no stream key)."""


class PublisherLeftError(FrontError):
    """The connection ended before `publish` (a port check, a player, a client giving up)."""


@dataclass(frozen=True, kw_only=True)
class PublishRequest:
    app: str | None
    stream_name: str  # the key, and maybe "?query": a secret
    stream_id: int  # the message stream the publisher publishes on
    recorded: bytes  # the publisher's bytes after the handshake, to replay


async def accept_publish(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bytes
) -> PublishRequest:
    """Answers as an RTMP server until the publisher sends `publish`; raises FrontError."""
    return await _PrePublish(reader, writer, first).run()


def refuse(writer: asyncio.StreamWriter, request: PublishRequest, description: str) -> None:
    """Tells the publisher its publish is refused (it then hangs up, or we do)."""
    _send_status(writer, request, "error", "NetStream.Publish.BadName", description)


def confirm(writer: asyncio.StreamWriter, request: PublishRequest) -> None:
    _send_status(writer, request, "status", "NetStream.Publish.Start", "Start publishing")


async def hand_over(
    request: PublishRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> ChunkReader:
    """Connects the publisher's recorded session to the transcoder at (reader, writer).

    Returns the reader of the transcoder's chunk stream, positioned after its
    Publish.Start; raises FrontError (or OSError, IncompleteReadError) when the
    transcoder does not take the publish."""
    c1 = struct.pack(">II", int(time.monotonic() * 1000) & 0xFFFFFFFF, 0)
    writer.write(b"\x03" + c1 + os.urandom(HANDSHAKE_SIZE - 8))
    s0s1s2 = await reader.readexactly(1 + 2 * HANDSHAKE_SIZE)
    if s0s1s2[0] != 3:
        raise FrontError(f"the transcoder is not an RTMP server (version {s0s1s2[0]})")
    writer.write(s0s1s2[1 : 1 + HANDSHAKE_SIZE])  # C2 echoes S1
    writer.write(request.recorded)
    await writer.drain()
    answers = ChunkReader()
    while True:
        data = await reader.read(READ_SIZE)
        if not data:
            raise FrontError("the transcoder closed the connection before publishing")
        for message in answers.feed(data):
            code = _publish_status(message)
            if code == "NetStream.Publish.Start":
                return answers
            if code is not None:
                raise FrontError(f"the transcoder refused the publish: {code}")


async def pass_downstream(
    reader: asyncio.StreamReader, answers: ChunkReader, writer: asyncio.StreamWriter
) -> None:
    """Transcoder -> publisher, message by message, in the front's chunking."""
    while data := await reader.read(READ_SIZE):
        for message in answers.feed(data):
            if message.type_id in (SET_CHUNK_SIZE, ABORT):
                continue  # chunking is ours on this side
            writer.write(_chunk(message.csid, message.type_id, message.stream_id, message.payload))
        await writer.drain()


class _PrePublish:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bytes
    ) -> None:
        self._reader, self._writer = reader, writer
        self._pending = bytearray(first)
        self._seen = len(first)
        self._app: str | None = None

    async def run(self) -> PublishRequest:
        await self._handshake()
        recorded = bytearray(self._pending)
        commands = ChunkReader(COMMANDS)
        data = bytes(self._pending)
        while True:
            try:
                messages = commands.feed(data)
            except ChunkError as exc:
                raise FrontError(f"not an RTMP publish: {exc}") from None
            for message in messages:
                stream_name = self._on_command(message)
                if stream_name is not None:
                    return PublishRequest(
                        app=self._app,
                        stream_name=stream_name,
                        stream_id=message.stream_id,
                        recorded=bytes(recorded),
                    )
            data = await self._read()
            recorded += data

    async def _read(self) -> bytes:
        data = await self._reader.read(READ_SIZE)
        if not data:
            raise PublisherLeftError("the connection ended before publishing")
        self._seen += len(data)
        if self._seen > MAX_PRE_PUBLISH_BYTES:
            raise FrontError("no publish command in the first MiB")
        return data

    async def _take(self, size: int) -> bytes:
        while len(self._pending) < size:
            self._pending += await self._read()
        taken = bytes(self._pending[:size])
        del self._pending[:size]
        return taken

    async def _handshake(self) -> None:
        c0c1 = await self._take(1 + HANDSHAKE_SIZE)
        if c0c1[0] != 3:
            raise FrontError(f"not RTMP (handshake version {c0c1[0]})")
        # S1: our time, zero version (the simple handshake), random bytes; S2 echoes C1.
        s1 = struct.pack(">II", int(time.monotonic() * 1000) & 0xFFFFFFFF, 0)
        self._writer.write(b"\x03" + s1 + os.urandom(HANDSHAKE_SIZE - 8) + c0c1[1:])
        await self._writer.drain()
        await self._take(HANDSHAKE_SIZE)  # C2

    def _on_command(self, message: Message) -> str | None:
        """Answers one command; returns the stream name once the publisher publishes."""
        values = _decode(message)
        if len(values) < 2 or not isinstance(values[0], str):
            return None
        name, txn = values[0], values[1] if isinstance(values[1], float) else 0.0
        if name == "connect":
            info = values[2] if len(values) > 2 and isinstance(values[2], dict) else {}
            app = info.get("app")
            self._app = app if isinstance(app, str) else None
            self._on_connect(txn)
        elif name == "createStream":
            self._send(CSID_COMMAND, 0, amf0.encode("_result", txn, None, PUBLISH_STREAM_ID))
        elif name in ("releaseStream", "FCPublish") and txn:
            self._send(CSID_COMMAND, 0, amf0.encode("_result", txn, None))
        elif name == "publish":
            stream_name = values[3] if len(values) > 3 else None
            if not isinstance(stream_name, str):
                raise FrontError("publish without a stream name")
            return stream_name
        return None

    def _on_connect(self, txn: float) -> None:
        control = (
            (WINDOW_ACK_SIZE, struct.pack(">I", WINDOW_SIZE)),
            (PEER_BANDWIDTH, struct.pack(">IB", WINDOW_SIZE, 2)),  # 2: dynamic
            (SET_CHUNK_SIZE, struct.pack(">I", OUT_CHUNK_SIZE)),
        )
        for type_id, payload in control:
            self._writer.write(_chunk(CSID_CONTROL, type_id, 0, payload, chunk_size=128))
        result = amf0.encode(
            "_result",
            txn,
            {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0},
            {
                "level": "status",
                "code": "NetConnection.Connect.Success",
                "description": "Connection succeeded.",
                "objectEncoding": 0.0,
            },
        )
        self._send(CSID_COMMAND, 0, result)

    def _send(self, csid: int, stream_id: int, payload: bytes) -> None:
        self._writer.write(_chunk(csid, COMMAND_AMF0, stream_id, payload))


def _send_status(
    writer: asyncio.StreamWriter, request: PublishRequest, level: str, code: str, text: str
) -> None:
    info = {"level": level, "code": code, "description": text}
    payload = amf0.encode("onStatus", 0.0, None, info)
    writer.write(_chunk(CSID_STATUS, COMMAND_AMF0, request.stream_id, payload))


def _chunk(
    csid: int, type_id: int, stream_id: int, payload: bytes, chunk_size: int = OUT_CHUNK_SIZE
) -> bytes:
    # One-byte basic headers only: a chunk stream id the transcoder picked above 63 is
    # carried on the command stream instead (every chunk here has a full header).
    return chunk_message(
        csid if 2 <= csid < 64 else CSID_COMMAND, type_id, 0, stream_id, payload, chunk_size
    )


def _decode(message: Message) -> list[Any]:
    body = message.payload[1:] if message.type_id == COMMAND_AMF3 else message.payload
    try:
        return amf0.decode(body)
    except (amf0.AMFError, RecursionError):
        raise FrontError("malformed command") from None


def _publish_status(message: Message) -> str | None:
    """The code of a publish's outcome (onStatus NetStream.Publish.*, an error status, or
    `_error`), or None for any other message."""
    if message.type_id not in COMMANDS:
        return None
    values = _decode(message)
    if not values or not isinstance(values[0], str):
        return None
    if values[0] == "_error":
        return "_error"
    if values[0] != "onStatus":
        return None
    info = next((v for v in values[1:] if isinstance(v, dict)), {})
    code = str(info.get("code", ""))
    if code.startswith("NetStream.Publish.") or info.get("level") == "error":
        return code or "error"
    return None
