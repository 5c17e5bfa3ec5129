from __future__ import annotations

import pytest

from streamer.publish import amf0
from streamer.publish.rtmp import chunk_message


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
