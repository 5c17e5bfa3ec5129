"""A minimal RTMP publishing client on asyncio streams (TCP or verified TLS).

Why not FFmpeg's RTMP client (through PyAV)? It holds the GIL while it connects and
handshakes, freezing every other stream in the process; it cannot verify RTMPS
certificates; and it cannot be interrupted. This client does only what publishing needs:
the simple handshake, connect / createStream / publish, chunked audio, video and data
messages, and the control messages a server sends back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from streamer.publish import amf0
from streamer.publish.errors import PublishError
from streamer.untrusted import quote_untrusted
from streamer.urls import IngestURL

_log = logging.getLogger(__name__)

HANDSHAKE_SIZE = 1536
OUT_CHUNK_SIZE = 4096
MAX_IN_CHUNK_SIZE = 1 << 24  # a larger Set Chunk Size is a broken or hostile server
MAX_MESSAGE_SIZE = 1 << 22

# Message type ids
SET_CHUNK_SIZE, ABORT, ACK, USER_CONTROL, WINDOW_ACK_SIZE, PEER_BANDWIDTH = 1, 2, 3, 4, 5, 6
AUDIO, VIDEO, DATA_AMF0, COMMAND_AMF3, COMMAND_AMF0 = 8, 9, 18, 17, 20

# Chunk stream ids
CSID_CONTROL, CSID_COMMAND, CSID_STREAM_COMMAND, CSID_AUDIO, CSID_VIDEO = 2, 3, 8, 4, 6

_PING_REQUEST, _PING_RESPONSE = 6, 7


@dataclass
class _InboundChunkStream:
    timestamp: int = 0
    delta: int = 0
    length: int = 0
    type_id: int = 0
    stream_id: int = 0
    extended: bool = False
    buffer: bytearray = field(default_factory=bytearray)


def chunk_message(
    csid: int,
    type_id: int,
    timestamp: int,
    stream_id: int,
    payload: bytes,
    chunk_size: int = OUT_CHUNK_SIZE,
) -> bytes:
    """One message as RTMP chunks: a type-0 header, then type-3 continuation chunks."""
    timestamp &= 0xFFFFFFFF
    extended = timestamp >= 0xFFFFFF
    ts_field = 0xFFFFFF if extended else timestamp
    ext = struct.pack(">I", timestamp) if extended else b""
    header = (
        bytes([csid])
        + ts_field.to_bytes(3, "big")
        + len(payload).to_bytes(3, "big")
        + bytes([type_id])
        + struct.pack("<I", stream_id)
        + ext
    )
    continuation = bytes([0xC0 | csid]) + ext
    parts = [header, payload[:chunk_size]]
    for offset in range(chunk_size, len(payload), chunk_size):
        parts.append(continuation)
        parts.append(payload[offset : offset + chunk_size])
    return b"".join(parts)


class RTMPPublishConnection:
    """One publish: connect, then send media messages, then close."""

    def __init__(
        self,
        ingest: IngestURL,
        *,
        tls_context: ssl.SSLContext | None = None,
        io_timeout: float = 10.0,
    ) -> None:
        self._ingest = ingest
        self._tls_context = tls_context
        self._io_timeout = io_timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._media: list[bytes] = []  # media messages not yet handed to the socket
        self._read_task: asyncio.Task[None] | None = None
        self._in_chunk_size = 128
        self._in_streams: dict[int, _InboundChunkStream] = {}
        self._window_ack_size = 0
        self._received = 0
        self._last_ack = 0
        self._pending: dict[float, asyncio.Future[list[Any]]] = {}
        self._next_txn = 1
        self._publish_status: asyncio.Future[str] | None = None
        self.stream_id = 0
        self.failure: PublishError | None = None  # set when the ingest ends the publish

    # -- connecting -------------------------------------------------------------------------

    async def connect(self, within: float) -> None:
        """Connects, handshakes and starts publishing; raises PublishError."""
        try:
            async with asyncio.timeout(within):
                await self._open_socket()
                await self._handshake()
                self._read_task = asyncio.create_task(self._read_loop(), name="rtmp-reader")
                await self._start_publish()
        except TimeoutError:
            await self.close()
            raise PublishError(
                f"timed out after {within:g}s connecting to {self._ingest.host}:{self._ingest.port}"
            ) from None
        except PublishError:
            await self.close()
            raise
        except (OSError, asyncio.IncompleteReadError, amf0.AMFError) as exc:
            await self.close()
            raise PublishError(f"connection failed during handshake: {_describe(exc)}") from None

    async def _open_socket(self) -> None:
        host, port = self._ingest.host, self._ingest.port
        tls: ssl.SSLContext | None = None
        if self._ingest.secure:
            tls = self._tls_context or ssl.create_default_context()
        loop = asyncio.get_running_loop()
        try:
            await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror:
            raise PublishError(f"unknown host {host}") from None
        try:
            self._reader, self._writer = await asyncio.open_connection(
                host, port, ssl=tls, server_hostname=host if tls else None
            )
        except ssl.SSLCertVerificationError as exc:
            raise PublishError(f"TLS certificate rejected: {exc.verify_message}") from None
        except ssl.SSLError as exc:
            raise PublishError(f"TLS handshake failed: {exc.reason or exc}") from None
        except ConnectionRefusedError:
            raise PublishError(f"connection refused by {host}:{port}") from None
        except OSError as exc:
            raise PublishError(f"cannot connect to {host}:{port}: {_describe(exc)}") from None

    async def _handshake(self) -> None:
        assert self._reader is not None and self._writer is not None
        c1 = struct.pack(">II", int(time.monotonic() * 1000) & 0xFFFFFFFF, 0)
        c1 += os.urandom(HANDSHAKE_SIZE - 8)
        self._writer.write(b"\x03" + c1)
        s0 = await self._reader.readexactly(1)
        if s0[0] != 3:
            raise PublishError(f"not an RTMP server (handshake version {s0[0]})")
        s1 = await self._reader.readexactly(HANDSHAKE_SIZE)
        self._writer.write(s1)  # C2 echoes S1
        await self._reader.readexactly(HANDSHAKE_SIZE)  # S2
        await self._writer.drain()

    async def _start_publish(self) -> None:
        ingest = self._ingest
        self._send(CSID_CONTROL, SET_CHUNK_SIZE, 0, 0, struct.pack(">I", OUT_CHUNK_SIZE))
        result = await self._call(
            "connect",
            {
                "app": ingest.app,
                "type": "nonprivate",
                "flashVer": "FMLE/3.0 (compatible; streamer)",
                "tcUrl": ingest.tc_url(),
            },
        )
        info = result[1] if len(result) > 1 and isinstance(result[1], dict) else {}
        if result[0] == "_error":
            raise PublishError(f"connect rejected: {self._shown(info.get('code', 'no code'))}")
        key = ingest.stream_key
        self._send_command("releaseStream", self._transaction(), None, key)
        self._send_command("FCPublish", self._transaction(), None, key)
        created = await self._call("createStream", None)
        if created[0] == "_error" or len(created) < 2 or not isinstance(created[1], float):
            raise PublishError("createStream rejected")
        self.stream_id = int(created[1])
        self._publish_status = asyncio.get_running_loop().create_future()
        self._send_command(
            "publish", 0, None, key, "live", csid=CSID_STREAM_COMMAND, stream_id=self.stream_id
        )
        code = await self._publish_status
        if code != "NetStream.Publish.Start":
            # Only the status code: descriptions often repeat the stream key.
            raise PublishError(f"publish rejected: {self._shown(code)}")
        assert self._writer is not None
        await self._writer.drain()

    # -- sending ----------------------------------------------------------------------------

    def _send(
        self, csid: int, type_id: int, timestamp: int, stream_id: int, payload: bytes
    ) -> None:
        assert self._writer is not None
        self._flush_media()  # keeps the order of messages
        self._writer.write(chunk_message(csid, type_id, timestamp, stream_id, payload))

    def _flush_media(self) -> None:
        if self._media and self._writer is not None:
            self._writer.write(b"".join(self._media))
            self._media.clear()

    def _send_command(
        self, name: str, txn: float, *args: Any, csid: int = CSID_COMMAND, stream_id: int = 0
    ) -> None:
        self._send(csid, COMMAND_AMF0, 0, stream_id, amf0.encode(name, txn, *args))

    async def _call(self, name: str, *args: Any) -> list[Any]:
        txn = self._transaction()
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending[txn] = future
        self._send_command(name, txn, *args)
        return await future

    def _transaction(self) -> float:
        self._next_txn += 1
        return float(self._next_txn - 1)

    def send_media(self, type_id: int, timestamp_ms: int, payload: bytes) -> None:
        """Queues one audio, video or data message; `drain()` sends what is queued (and
        reports failures)."""
        if self.failure is not None:
            raise self.failure
        if self._writer is None or self._writer.is_closing():
            raise PublishError("ingest connection closed")
        csid = {AUDIO: CSID_AUDIO, VIDEO: CSID_VIDEO}.get(type_id, CSID_STREAM_COMMAND)
        # Media is written to the socket in one go per drain(): one system call per
        # wake-up of the publisher, not one per message.
        self._media.append(chunk_message(csid, type_id, timestamp_ms, self.stream_id, payload))

    async def drain(self) -> None:
        assert self._writer is not None
        self._flush_media()
        transport = self._writer.transport
        if (
            self.failure is None
            and not transport.is_closing()
            and transport.get_write_buffer_size() == 0
        ):
            return  # all handed to the kernel: nothing to wait for
        try:
            async with asyncio.timeout(self._io_timeout):
                await self._writer.drain()
        except TimeoutError:
            raise PublishError(f"ingest stopped reading for {self._io_timeout:g}s") from None
        except OSError as exc:
            raise PublishError(f"connection reset ({_describe(exc)})") from None
        if self.failure is not None:
            raise self.failure

    async def close(self) -> None:
        """Ends the publish politely when possible, then closes the socket."""
        writer = self._writer
        if writer is not None and not writer.is_closing() and self.stream_id:
            with contextlib.suppress(Exception):
                self._send_command("FCUnpublish", 0, None, self._ingest.stream_key)
                self._send_command("deleteStream", 0, None, float(self.stream_id))
                async with asyncio.timeout(1):
                    await writer.drain()
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._read_task
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await writer.wait_closed()
        self._writer = None

    # -- receiving --------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            while True:
                await self._read_chunk()
        except asyncio.CancelledError:
            raise
        except asyncio.IncompleteReadError:
            self._fail(PublishError("ingest closed the connection"))
        except OSError as exc:
            self._fail(PublishError(f"connection reset ({_describe(exc)})"))
        except ValueError as exc:  # AMFError among them: the reason is ours, the data theirs
            self._fail(PublishError(f"malformed answer from the ingest: {quote_untrusted(exc)}"))
        except Exception as exc:
            # Whatever the server sends, the publish ends with a reason: a reader that died
            # silently would leave connect() waiting for its timeout.
            _log.warning("RTMP reader stopped on an unexpected error", exc_info=True)
            self._fail(PublishError(f"malformed answer from the ingest ({type(exc).__name__})"))

    def _shown(self, text: object) -> str:
        """A status code from the server, as safe to show: clipped, escaped, keyless."""
        return quote_untrusted(str(text).replace(self._ingest.stream_key, "****"), 100)

    def _fail(self, error: PublishError) -> None:
        if self.failure is None:
            self.failure = error
        for future in [*self._pending.values(), self._publish_status]:
            if future is not None and not future.done():
                future.set_exception(error)

    async def _read(self, size: int) -> bytes:
        assert self._reader is not None
        data = await self._reader.readexactly(size)
        self._received += size
        if self._window_ack_size and self._received - self._last_ack >= self._window_ack_size:
            self._last_ack = self._received
            self._send(CSID_CONTROL, ACK, 0, 0, struct.pack(">I", self._received & 0xFFFFFFFF))
        return data

    async def _read_chunk(self) -> None:
        fmt, csid = await self._read_basic_header()
        state = self._in_streams.setdefault(csid, _InboundChunkStream())
        await self._read_message_header(fmt, state)
        needed = min(self._in_chunk_size, state.length - len(state.buffer))
        state.buffer += await self._read(needed)
        if len(state.buffer) >= state.length:
            payload = bytes(state.buffer)
            state.buffer.clear()
            self._dispatch(state.type_id, state.timestamp, payload)

    async def _read_basic_header(self) -> tuple[int, int]:
        """The chunk's header type (0 to 3) and its chunk stream id (in 1 to 3 bytes)."""
        first = (await self._read(1))[0]
        fmt, csid = first >> 6, first & 0x3F
        if csid == 0:
            csid = 64 + (await self._read(1))[0]
        elif csid == 1:
            b = await self._read(2)
            csid = 64 + b[0] + b[1] * 256
        return fmt, csid

    async def _read_message_header(self, fmt: int, state: _InboundChunkStream) -> None:
        """Updates the chunk stream's message state: header types 0 to 2 carry a timestamp
        (type 0 absolute, else a delta), 0 and 1 the length and type, 0 the stream id;
        type 3 carries nothing and repeats the previous delta."""
        if fmt == 3:
            if state.extended:
                await self._read(4)
            elif not state.buffer:
                state.timestamp += state.delta
            return
        header = await self._read((11, 7, 3)[fmt])
        ts = int.from_bytes(header[0:3], "big")
        if fmt <= 1:
            state.length = int.from_bytes(header[3:6], "big")
            state.type_id = header[6]
            if state.length > MAX_MESSAGE_SIZE:
                raise ValueError("message too large")
        if fmt == 0:
            state.stream_id = struct.unpack("<I", header[7:11])[0]
        state.extended = ts == 0xFFFFFF
        if state.extended:
            ts = struct.unpack(">I", await self._read(4))[0]
        if fmt == 0:
            state.timestamp = ts
        else:
            state.delta = ts
            if not state.buffer:
                state.timestamp += ts

    def _dispatch(self, type_id: int, timestamp: int, payload: bytes) -> None:
        if type_id == SET_CHUNK_SIZE and len(payload) >= 4:
            size = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
            if not 1 <= size <= MAX_IN_CHUNK_SIZE:
                raise ValueError("bad chunk size")
            self._in_chunk_size = size
        elif type_id == WINDOW_ACK_SIZE and len(payload) >= 4:
            self._window_ack_size = struct.unpack(">I", payload[:4])[0]
        elif type_id == USER_CONTROL and len(payload) >= 6:
            event = struct.unpack(">H", payload[:2])[0]
            if event == _PING_REQUEST:
                self._send(
                    CSID_CONTROL,
                    USER_CONTROL,
                    0,
                    0,
                    struct.pack(">H", _PING_RESPONSE) + payload[2:6],
                )
        elif type_id in (COMMAND_AMF0, COMMAND_AMF3):
            self._on_command(amf0.decode(payload[1:] if type_id == COMMAND_AMF3 else payload))

    def _on_command(self, values: list[Any]) -> None:
        if len(values) < 2 or not isinstance(values[0], str):
            return
        name, txn, rest = values[0], values[1], values[2:]
        if name in ("_result", "_error"):
            future = self._pending.pop(txn, None) if isinstance(txn, float) else None
            if future is not None and not future.done():
                future.set_result([name, *rest[1:]] if rest else [name])
        elif name == "onStatus":
            info = next((v for v in rest if isinstance(v, dict)), {})
            code = str(info.get("code", "unknown"))
            status = self._publish_status
            if status is not None and not status.done():
                if code.startswith("NetStream.Publish.") or info.get("level") == "error":
                    status.set_result(code)
            elif info.get("level") == "error" or code in (
                "NetStream.Publish.Stop",
                "NetStream.Unpublish.Success",
            ):
                self._fail(PublishError(f"ingest ended the publish: {self._shown(code)}"))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return exc.__class__.__name__
