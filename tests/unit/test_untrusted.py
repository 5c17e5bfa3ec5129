"""Text the platform chose (status codes, EXT-X-ERROR, API messages, reason phrases) reaches
logs and pages as one bounded, inert line."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from streamer.events import CheckFailed, StreamLabels
from streamer.livepeer.client import LivepeerAPIError, LivepeerClient
from streamer.playback.playlist import parse
from streamer.sinks.logs import JsonFormatter, LogSink, TextFormatter
from streamer.untrusted import escape_controls, quote_untrusted
from tests.support.fake_livepeer import FakeLivepeer

FORGED = "down\n12:00:00 INFO  eu  session ended: success\x1b[2J\x1b]0;pwned\x07\u202ecod.exe"
API_KEY = "sk-live-0123456789abcdef-SECRET"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("NetStream.Publish.BadName", "NetStream.Publish.BadName"),
        ("a\nb\r\tc", "a\\nb\\r\\tc"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("left\u202eright\u200b\u2028", "left\\u202eright\\u200b\\u2028"),
        ("\x00\x7f\x85", "\\x00\\x7f\\x85"),
        ("café 日本 🎥 <b>\"'\\", "café 日本 🎥 <b>\"'\\"),  # printable text is left alone
        (503, "503"),
    ],
)
def test_quote_untrusted_escapes_controls(text: object, shown: str) -> None:
    assert quote_untrusted(text) == shown


def test_quote_untrusted_clips_with_an_ellipsis_escapes_included() -> None:
    assert quote_untrusted("x" * 10, limit=10) == "x" * 10
    assert quote_untrusted("x" * 11, limit=10) == "x" * 10 + "…"
    assert quote_untrusted("\n" * 100, limit=10) == "\\n" * 5 + "…"
    huge = quote_untrusted("\x1b" * 10_000_000)
    assert len(huge) <= 201 and huge.endswith("…")
    assert escape_controls("\x1b" * 3) == "\\x1b" * 3  # unclipped, for log lines


def _record(message: str, *args: object, stream: str = "eu") -> logging.LogRecord:
    record = logging.LogRecord(
        "streamer.session", logging.WARNING, __file__, 1, message, args, None
    )
    record.stream = stream
    return record


@pytest.mark.parametrize("colour", [True, False])
def test_text_log_lines_cannot_be_forged_or_drive_the_terminal(colour: bool) -> None:
    line = TextFormatter(colour=colour).format(
        _record("playlist_error: %s", FORGED, stream="s\x1b[2J")
    )
    assert "\n" not in line and "\x07" not in line and "\u202e" not in line
    ours = {"\x1b[33m", "\x1b[0m", "\x1b[1m"} if colour else set()
    for sequence in ours:
        line = line.replace(sequence, "")
    assert "\x1b" not in line
    assert "down\\n12:00:00 INFO" in line and "\\x1b[2J" in line


def test_json_log_lines_stay_one_valid_document() -> None:
    line = JsonFormatter().format(_record("playlist_error: %s", FORGED))
    assert "\n" not in line and "\x1b" not in line
    assert json.loads(line)["msg"] == f"playlist_error: {FORGED}"


def test_a_hostile_check_detail_is_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    labels = StreamLabels("eu", "eu-west", "eu-west")
    with caplog.at_level(logging.WARNING):
        LogSink().handle(
            CheckFailed(
                labels=labels,
                session_id="s1",
                kind="playlist_error",
                rendition=None,
                detail=FORGED,
                at=time.time(),
            )
        )
    (record,) = caplog.records
    assert "\n" not in TextFormatter(colour=False).format(record)


def test_ext_x_error_text_is_escaped_and_clipped() -> None:
    playlist = (
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\na.ts\n"
        f"#EXT-X-ERROR:transcoder\x1b[2J down \u202e{'x' * 500}\n"
    )
    error = parse(playlist, "http://o/a.m3u8").error
    assert error is not None
    assert error.startswith("transcoder\\x1b[2J down \\u202exxx") and error.endswith("…")
    assert len(error) == 201


@pytest.fixture
async def fake() -> AsyncIterator[FakeLivepeer]:
    async with FakeLivepeer(
        api_key=API_KEY,
        ingest_base="rtmp://127.0.0.1:19350/live",
        playback_base="http://127.0.0.1:18080/hls",
    ) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_livepeer_api_messages_are_escaped_clipped_and_keyless(
    fake: FakeLivepeer, http: aiohttp.ClientSession
) -> None:
    client = LivepeerClient(fake.api_url, API_KEY, http, 5.0)
    fake.fail_next("list_streams", status=500, message=f"{FORGED} {API_KEY} " + "y" * 1000)
    with pytest.raises(LivepeerAPIError) as info:
        await client.list_streams()
    message = info.value.message
    assert message.startswith("down\\n12:00:00 INFO") and "\\x1b]0;pwned\\x07" in message
    assert API_KEY not in message and message.endswith("…") and len(message) <= 301
    # Entries that are not text do not reach the message (nor str() on them).
    body = json.dumps({"errors": [{"message": "quota"}, [[["deep"]]], {"x": 1}, "later"]})
    fake.fail_next("list_streams", status=429, body=body)
    with pytest.raises(LivepeerAPIError, match=r"^list_streams: 429 quota; later$"):
        await client.list_streams()


async def test_a_hostile_http_reason_phrase_is_escaped(http: aiohttp.ClientSession) -> None:
    reason = b"Unavailable\x1b[2J\x1b[31m" + b"z" * 400

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 503 " + reason + b"\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = LivepeerClient(f"http://127.0.0.1:{port}/api", API_KEY, http, 5.0)
        with pytest.raises(LivepeerAPIError) as info:
            await client.list_streams()
    finally:
        server.close()
    assert info.value.status == 503
    assert info.value.message.startswith("Unavailable\\x1b[2J\\x1b[31mzzz")
    assert "\x1b" not in info.value.message and info.value.message.endswith("…")
