"""SRT ingest URLs: what is accepted, what is refused with which message, what is shown."""

from __future__ import annotations

import ctypes.util

import pytest

from streamer.config import ConfigError, from_environment
from streamer.publish import libsrt
from streamer.publish.registry import ingest_protocol
from streamer.publish.srt_ingest import SrtIngest
from streamer.publish.srt_url import mask_srt, parse_srt, srt_secrets
from streamer.urls import InvalidURLError

URL = "srt://ingest.example:2935?streamid=abcd-1234-efgh-5678&passphrase=secret-pass-phrase"


def test_parses_host_port_streamid_and_passphrase() -> None:
    parsed = parse_srt(URL + "&latency=200&pbkeylen=32")
    assert (parsed.host, parsed.port) == ("ingest.example", 2935)
    assert parsed.streamid == "abcd-1234-efgh-5678"
    assert parsed.passphrase == "secret-pass-phrase"
    assert parsed.latency_ms == 200
    assert parsed.pbkeylen == 32


def test_defaults_and_percent_encoded_access_control_streamid() -> None:
    parsed = parse_srt("srt://10.0.0.1:9000?streamid=%23%21%3A%3Ar%3Dlive%2Fkey%2Cm%3Dpublish")
    assert parsed.streamid == "#!::r=live/key,m=publish"
    assert parsed.passphrase is None
    assert parsed.latency_ms == 120  # libsrt's live default


def test_a_url_without_streamid_publishes_without_one() -> None:
    assert parse_srt("srt://127.0.0.1:9000").streamid is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("srt://host?streamid=k", "needs a port"),
        ("srt://:9000?streamid=k", "no host"),
        ("srt://host:9000/live/key", "takes no path"),
        ("srt://host:9000?streamid=", "streamid is empty"),
        ("srt://host:9000?streamid=k&passphrase=short", "10 to 79 characters"),
        ("srt://host:9000?streamid=k&passphrase=" + "x" * 80, "10 to 79 characters"),
        ("srt://host:9000?streamid=k&latency=0", "latency is in milliseconds"),
        ("srt://host:9000?streamid=k&latency=120000000", "divide by 1000"),
        ("srt://host:9000?streamid=k&latency=fast", "latency must be a whole number"),
        ("srt://host:9000?streamid=k&pbkeylen=20", "pbkeylen must be 16, 24 or 32"),
        ("srt://host:9000?streamid=k&mode=listener", "only mode=caller"),
        ("srt://host:9000?streamid=k&pkt_size=1316", "unsupported parameter 'pkt_size'"),
        ("srt://host:9000?streamid=a&streamid=b", "more than once"),
        ("srt://host:99999?streamid=k", "malformed SRT URL"),
    ],
)
def test_refuses_what_cannot_be_published_to(url: str, message: str) -> None:
    with pytest.raises(InvalidURLError, match=message):
        parse_srt(url)


def test_masks_streamid_and_passphrase() -> None:
    shown = mask_srt(URL + "&latency=200")
    assert shown == "srt://ingest.example:2935?streamid=abcd****&passphrase=****&latency=200"
    assert set(srt_secrets(URL)) == {"abcd-1234-efgh-5678", "secret-pass-phrase"}
    assert "phrase=secret" not in mask_srt("srt://h:1?passphrase=secret-pass-phrase&x=y")


def test_registry_routes_srt_urls() -> None:
    protocol = ingest_protocol(URL)
    assert protocol.name == "srt"
    protocol.validate(URL)  # libsrt is installed here: a valid URL passes
    assert protocol.mask(URL).count("****") == 2
    with pytest.raises(InvalidURLError, match="srt://"):
        ingest_protocol("udp://host:9000")


def test_a_bad_srt_url_in_the_environment_names_the_variable() -> None:
    env = {"INGEST_URL": "srt://host?streamid=k", "PLAYBACK_URL": "http://host/x.m3u8"}
    with pytest.raises(ConfigError, match=r"INJEST_URL.*needs a port"):
        from_environment(env)


def test_without_libsrt_an_srt_url_is_refused_naming_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A machine without the library: nothing under the names libsrt is looked up by.
    monkeypatch.setattr(libsrt, "_lib", None)
    monkeypatch.setattr(libsrt, "_SONAMES", ("libsrt-absent.so.0",))
    monkeypatch.setattr(ctypes.util, "find_library", lambda _name: None)
    with pytest.raises(InvalidURLError, match=r"install the Debian package libsrt1\.5-openssl"):
        SrtIngest().validate(URL)
