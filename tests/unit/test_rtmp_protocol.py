from __future__ import annotations

import asyncio
import time

import pytest

from streamer.publish import amf0
from streamer.publish.amf0 import MAX_DEPTH, MAX_ENTRIES, MAX_VALUES
from streamer.publish.errors import PublishError
from streamer.publish.rtmp import (
    COMMAND_AMF0,
    HANDSHAKE_SIZE,
    RTMPPublishConnection,
    chunk_message,
)
from streamer.urls import parse_ingest


def test_amf0_round_trip() -> None:
    values = [
        "connect",
        1.0,
        {"app": "live", "tcUrl": "rtmp://h/live", "n": 2.5, "b": True},
        None,
        "x" * 70_000,
    ]
    assert amf0.decode(amf0.encode(*values)) == values


@pytest.mark.parametrize("data", [b"\x02\x00\x05ab", b"\x00\x01", b"\x03\x00\x01a", b"\x42"])
def test_amf0_malformed_input_raises_amf_error(data: bytes) -> None:
    with pytest.raises(amf0.AMFError):
        amf0.decode(data)


def test_chunking_splits_at_chunk_size_with_type3_headers() -> None:
    payload = bytes(range(256)) * 40  # 10240 bytes
    data = chunk_message(6, 9, 1234, 1, payload, chunk_size=4096)
    assert data[0] == 6  # fmt 0, csid 6
    assert int.from_bytes(data[1:4], "big") == 1234
    assert int.from_bytes(data[4:7], "big") == len(payload)
    assert data[7] == 9
    body = data[12:]
    assert body[4096] == 0xC6 and body[4096 * 2 + 1] == 0xC6
    assert body[:4096] + body[4097:8193] + body[8194:] == payload


def test_extended_timestamps_repeat_on_continuation_chunks() -> None:
    data = chunk_message(4, 8, 0x01000000, 1, b"a" * 200, chunk_size=128)
    assert data[1:4] == b"\xff\xff\xff"
    assert data[12:16] == (0x01000000).to_bytes(4, "big")
    continuation = data[16 + 128 :]
    assert continuation[0] == 0xC4 and continuation[1:5] == (0x01000000).to_bytes(4, "big")


# -- a hostile ingest: a real TCP server on loopback that speaks the handshake, then lies --

KEY = "hostile-secret-key-1234"


def _nested(depth: int) -> bytes:
    """An AMF0 object `depth` levels deep: {"a": {"a": ... {} ...}}."""
    opening = bytes([amf0.OBJECT]) + b"\x00\x01a"
    closing = b"\x00\x00" + bytes([amf0.OBJECT_END])
    return opening * depth + closing * (depth + 1)


def _command(*parts: bytes) -> bytes:
    return chunk_message(3, COMMAND_AMF0, 0, 0, b"".join(parts), chunk_size=128)


class HostileIngest:
    """Answers each client command, in order, with the next scripted message."""

    def __init__(self, script: list[tuple[bytes, bytes]]) -> None:
        self._script = script  # (wait for this in the client's bytes, then send this)
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> HostileIngest:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readexactly(1 + HANDSHAKE_SIZE)  # C0 C1
            writer.write(b"\x03" + bytes(HANDSHAKE_SIZE) * 2)  # S0 S1 S2
            await reader.readexactly(HANDSHAKE_SIZE)  # C2
            received = b""
            for wanted, answer in self._script:
                while wanted not in received:
                    received += await reader.read(4096)
                writer.write(answer)
                await writer.drain()
            await reader.read()  # until the client gives up
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def connect(self, within: float = 5.0) -> str:
        """Connects and publishes; returns the PublishError's reason and checks its speed."""
        connection = RTMPPublishConnection(parse_ingest(f"rtmp://127.0.0.1:{self.port}/live/{KEY}"))
        started = time.monotonic()
        with pytest.raises(PublishError) as caught:
            await connection.connect(within)
        assert time.monotonic() - started < within / 2, "ended by the answer, not a timeout"
        await connection.close()
        reason = caught.value.reason
        assert KEY not in reason and "\n" not in reason and "\x1b" not in reason
        return reason


CONNECTED = _command(
    amf0.encode("_result", 1.0, None, {"level": "status", "code": "NetConnection.Connect.Success"})
)
STREAM_CREATED = _command(amf0.encode("_result", 4.0, None, 1.0))


async def test_a_deeply_nested_connect_answer_fails_the_publish_with_a_reason() -> None:
    answer = _command(amf0.encode("_result", 1.0), _nested(5000))
    async with HostileIngest([(b"connect", answer)]) as ingest:
        reason = await ingest.connect()
    assert reason == ("malformed answer from the ingest: AMF0 values nested deeper than 32 levels")


async def test_an_array_claiming_billions_of_entries_is_refused_at_once() -> None:
    answer = _command(amf0.encode("_result", 1.0), bytes([amf0.STRICT_ARRAY]) + b"\xff" * 4)
    async with HostileIngest([(b"connect", answer)]) as ingest:
        reason = await ingest.connect()
    assert reason == "malformed answer from the ingest: AMF0 array with more than 1024 entries"


async def test_a_hostile_rejection_code_is_escaped_clipped_and_keyless() -> None:
    code = (
        f"NetConnection.Connect.Rejected\n2026-01-01 INFO fake log line\x1b[2J {KEY} " + "x" * 500
    )
    answer = _command(amf0.encode("_error", 1.0, None, {"level": "error", "code": code}))
    async with HostileIngest([(b"connect", answer)]) as ingest:
        reason = await ingest.connect()
    assert reason.startswith(
        "connect rejected: NetConnection.Connect.Rejected\\n2026-01-01 INFO fake log line\\x1b[2J "
        "****"
    )
    assert reason.endswith("…") and len(reason) <= len("connect rejected: ") + 101


async def test_a_hostile_publish_status_is_escaped() -> None:
    status = _command(
        amf0.encode("onStatus", 0.0, None, {"level": "error", "code": "Bad\rName\u202e"})
    )
    script = [(b"connect", CONNECTED), (b"createStream", STREAM_CREATED), (b"publish", status)]
    async with HostileIngest(script) as ingest:
        reason = await ingest.connect()
    assert reason == "publish rejected: Bad\\rName\\u202e"


@pytest.mark.parametrize(
    "data",
    [
        _nested(MAX_DEPTH + 1),
        bytes([amf0.STRICT_ARRAY]) + (MAX_ENTRIES + 1).to_bytes(4, "big"),
        amf0.encode({f"k{i}": 1.0 for i in range(MAX_ENTRIES + 1)}),
        amf0.encode(*([None] * (MAX_VALUES + 1))),
    ],
)
def test_amf0_bounds(data: bytes) -> None:
    with pytest.raises(amf0.AMFError):
        amf0.decode(data)


def test_amf0_within_bounds_still_decodes() -> None:
    value: dict[str, object] = {}
    for _ in range(MAX_DEPTH - 1):
        value = {"a": value}
    assert amf0.decode(amf0.encode(value)) == [value]
