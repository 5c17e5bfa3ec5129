from __future__ import annotations

import pytest

from streamer.durations import parse_duration
from streamer.urls import InvalidURLError, mask_ingest, mask_playback, parse_ingest


def test_ingest_url_parts() -> None:
    ingest = parse_ingest("rtmps://eu-rtmp.example.com/live/abcd-1234-efgh")
    assert (ingest.host, ingest.port, ingest.app, ingest.stream_key) == (
        "eu-rtmp.example.com",
        443,
        "live",
        "abcd-1234-efgh",
    )
    assert parse_ingest("rtmp://h:1936/app/inst/key").app == "app/inst"


@pytest.mark.parametrize(
    "url",
    [
        "http://h/live/k",
        "rtmp:///live/k",
        "rtmp://h/key",
        "rtmp://h/live/",
        "rtmp://h:99999/live/k",
        "not a url",
    ],
)
def test_malformed_ingest_urls(url: str) -> None:
    with pytest.raises(InvalidURLError):
        parse_ingest(url)


def test_masking_hides_keys_and_tokens() -> None:
    key = "abcd-1234-efgh-5678"
    assert key not in mask_ingest(f"rtmp://user:pw@h/live/{key}")
    assert "pw" not in mask_ingest(f"rtmp://user:pw@h/live/{key}")
    assert mask_ingest(f"rtmp://h/live/{key}") == "rtmp://h/live/abcd****"
    masked = mask_playback(f"https://cdn/hls/{key}.m3u8?jwt=secret.token&x=1", (key,))
    assert key not in masked and "secret.token" not in masked and "x=1" in masked


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2m", 120), ("90s", 90), ("1h", 3600), ("1m30s", 90), ("45", 45), (12, 12), ("500ms", 0.5)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["two minutes", "5x", "-3", "1m 2q"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
