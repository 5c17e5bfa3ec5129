from __future__ import annotations

from urllib.parse import quote, urlsplit

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
    masked = mask_playback(f"https://u:pw@cdn/hls/{key}.m3u8?jwt=secret.token&x=1#frag", (key,))
    assert masked == "https://cdn/hls/abcd****.m3u8?jwt=****&x=****"


S3_SIGNATURE = "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024"
S3_TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDx1Y2m+3n8zQ=="
CLOUDFRONT_SIGNATURE = (
    "nitfHRCrtziwO2HwPfWw~yYDhUF5EwRunQA-j19DzZrvDh6hQ73lDx~-ar3UocvvRQVw6EkC~GGAsCsnGr4yi6Z5U"
    "-bm9Y2sPxO1Y5MebpcWPhYfLupF0K~6a2lr0ayRV3kK8LfI~3Y4XuQXLx8VjWNoYUp~Ku7v4iWrSEzwTjxYV0r5n"
)
CLOUDFRONT_POLICY = (
    "eyJTdGF0ZW1lbnQiOlt7IlJlc291cmNlIjoiaHR0cHM6Ly9kMTExMTExYWJjZGVmOC5jbG91ZGZyb250Lm5ldC8"
    "qIiwiQ29uZGl0aW9uIjp7IkRhdGVMZXNzVGhhbiI6eyJBV1M6RXBvY2hUaW1lIjoxNzAwMDAzNjAwfX19XX0_"
)
AKAMAI_HMAC = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
WOWZA_HASH = "Kkg7YrNZ3tFQAc5Xz-XGUbPUKyMJXxe8j1bYwT8GUjU="
WMS_AUTH_SIGN = (
    "c2VydmVyX3RpbWU9MTEvMTgvMjAyNCAxMTo1NTowNiBBTSZoYXNoX3ZhbHVlPUJMMjJQeFVJRGR3QW1YUGNF"
    "Z0pDVFE9PSZ2YWxpZG1pbnV0ZXM9MjA="
)
JWT = (
    "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJmNWVlc2U5d3dsODhrNGc4IiwiZXhwIjoxNzAwMDAzNj"
    "AwfQ.MEUCIQDkPq7r2c1cN5kS9Zb8w_Tq-0vVh3mYp5yQx1hQ6QIgZ3d9"
)
SECURE_LINK_MD5 = "_e4Nc3iduzkWRm01TBBNYw"


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        (  # S3 presigned
            "https://bucket.s3.us-east-1.amazonaws.com/live/index.m3u8"
            "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240101%2Fus-east-1%2Fs3%2Faws4_request"
            "&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
            f"&X-Amz-Security-Token={S3_TOKEN.replace('/', '%2F').replace('+', '%2B')}"
            f"&X-Amz-Signature={S3_SIGNATURE}",
            ["AKIAIOSFODNN7EXAMPLE", S3_SIGNATURE, S3_TOKEN],
        ),
        (  # CloudFront canned and custom policy
            "https://d111111abcdef8.cloudfront.net/hls/index.m3u8?Expires=1700003600"
            f"&Signature={CLOUDFRONT_SIGNATURE}&Key-Pair-Id=K2JCJMDEHXQW5F&Policy={CLOUDFRONT_POLICY}",
            [CLOUDFRONT_SIGNATURE, "K2JCJMDEHXQW5F", CLOUDFRONT_POLICY],
        ),
        (  # Akamai token auth, in the query and in the path
            "https://example-i.akamaihd.net/hls/live/2000000/stream/master.m3u8"
            f"?hdnts=st=1700000000~exp=1700003600~acl=/hls/live/2000000/*~hmac={AKAMAI_HMAC}",
            [AKAMAI_HMAC],
        ),
        (
            "https://example-i.akamaihd.net/hls/live/2000000/"
            f"__token__=exp=1700003600~hmac={AKAMAI_HMAC}/master.m3u8",
            [AKAMAI_HMAC],
        ),
        (  # Wowza SecureToken and wmsAuthSign
            "https://wowza.example:1935/live/myStream/playlist.m3u8?wowzatokenstarttime=1700000000"
            f"&wowzatokenendtime=1700003600&wowzatokenhash={WOWZA_HASH}&wmsAuthSign={WMS_AUTH_SIGN}",
            [WOWZA_HASH, WMS_AUTH_SIGN],
        ),
        (  # nginx secure_link, in the query and in the path
            f"https://origin.example/hls/index.m3u8?md5={SECURE_LINK_MD5}&expires=2147483647",
            [SECURE_LINK_MD5],
        ),
        (
            f"https://origin.example/s/{SECURE_LINK_MD5}/2147483647/hls/index.m3u8",
            [SECURE_LINK_MD5],
        ),
        (  # Livepeer JWT playback, as a query value and as a path segment
            f"https://livepeercdn.studio/hls/f5eese9wwl88k4g8/index.m3u8?jwt={JWT}",
            [JWT, "f5eese9wwl88k4g8"],
        ),
        (f"https://cdn.example/{JWT}/hls/index.m3u8", [JWT]),
        ("https://cdn.example/hls/index.m3u8?access_token=ya29.a0AfH6SMBxQpR7tZ", ["ya29.a0AfH6"]),
        (  # a media id and a bare token
            "https://cdn.example/out/v1/3f2a1b4c5d6e4f708a9b0c1d2e3f4a5b/index.m3u8?Zm9vYmFyYmF6cXV4",
            ["3f2a1b4c5d6e4f708a9b0c1d2e3f4a5b", "Zm9vYmFyYmF6cXV4"],
        ),
    ],
)
def test_signed_cdn_urls_keep_no_secret(url: str, secrets: list[str]) -> None:
    masked = mask_playback(url)
    for secret in secrets:
        for encoded in {secret, quote(secret, safe="")}:
            # not even a piece of it: at most the 4 characters kept to tell streams apart
            pieces = {encoded[i : i + 8] for i in range(max(1, len(encoded) - 7))}
            assert not any(piece in masked for piece in pieces), (secret, masked)
    shown, original = urlsplit(masked), urlsplit(url)
    assert (shown.scheme, shown.netloc) == (original.scheme, original.netloc)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://cdn.example/hls/index.m3u8?_HLS_msn=12&_HLS_part=3&_HLS_skip=YES",
            "https://cdn.example/hls/index.m3u8?_HLS_msn=12&_HLS_part=3&_HLS_skip=YES",
        ),
        (
            "https://cdn.example/live/stream_1080p/chunklist_w1234.m3u8?format=m3u8-aapl",
            "https://cdn.example/live/stream_1080p/chunklist_w1234.m3u8?format=m3u8-aapl",
        ),
        (
            "https://cdn.example/live/live-event-2024-main/index.m3u8?region=eu&debug",
            "https://cdn.example/live/live-event-2024-main/index.m3u8?region=****&debug",
        ),
        (  # a Livepeer playback id: a viewer's capability in public mode, so masked too
            "https://livepeercdn.studio/hls/f5eese9wwl88k4g8/index.m3u8",
            "https://livepeercdn.studio/hls/f5ee****/index.m3u8",
        ),
        ("http://127.0.0.1:8080/hls/index.m3u8", "http://127.0.0.1:8080/hls/index.m3u8"),
        (  # an allow-listed name cannot carry a token through
            f"https://cdn.example/hls/index.m3u8?format={JWT}",
            "https://cdn.example/hls/index.m3u8?format=****",
        ),
    ],
)
def test_masking_keeps_what_is_harmless(url: str, expected: str) -> None:
    assert mask_playback(url) == expected


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
