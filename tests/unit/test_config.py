from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from streamer import cli
from streamer.config import (
    ClipSettings,
    ConfigError,
    from_environment,
    load_file,
    parse_listen_address,
)
from streamer.testsignal.clip import ClipSpec


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "streams.yaml"
    path.write_text(text)
    return path


def test_original_environment_names() -> None:
    config = from_environment(
        {
            "INJEST_URL": "rtmp://h/live/k",
            "PLAYBACK_URL": "http://h/a.m3u8",
            "REGION": "fra",
            "DURATION": "2m",
            "GRACE_PERIOD": "90s",
        }
    )
    assert config is not None
    (stream,) = config.streams
    assert (stream.ingest_url, stream.duration, stream.grace_period) == ("rtmp://h/live/k", 120, 90)
    assert stream.ingest_region == stream.playback_region == "fra"
    assert config.metrics_addr == "0.0.0.0:9090"
    alias = from_environment({"INGEST_URL": "rtmp://h/live/k", "PLAYBACK_URL": "http://h/a.m3u8"})
    assert alias is not None and alias.streams[0].ingest_url == "rtmp://h/live/k"


def test_nothing_configured_means_the_embedded_default() -> None:
    assert from_environment({}) is None
    assert from_environment({"INJEST_URL": ""}) is None


def test_api_mode_from_the_environment() -> None:
    config = from_environment(
        {
            "LIVEPEER_API_KEY": "k",
            "LIVEPEER_PLAYBACK_POLICY": "jwt",
            "LIVEPEER_INGEST_BASE": "rtmp://{region}-rtmp.example/live",
        }
    )
    assert config is not None
    livepeer = config.streams[0].livepeer
    assert livepeer is not None and livepeer.playback_policy == "jwt"
    assert livepeer.ingest_base == "rtmp://{region}-rtmp.example/live"


def test_yaml_in_helm_shape_with_env_expansion_and_region(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
streams:
  - name: eu
    duration: 2m
    injest_region: eu-west
    injest_url: "${EU_INGEST}"
    playback_url: https://cdn/hls/x/index.m3u8
  - name: us
    ingest_url: rtmp://us/live/k2
    playback_url: https://cdn/hls/y/index.m3u8
    checks:
      stale_playlist: {factor: 2.0}
      frame_drop: {enabled: false}
""",
    )
    config = load_file(path, {"EU_INGEST": "rtmp://eu/live/k1", "REGION": "global"})
    eu, us = config.streams
    assert eu.ingest_url == "rtmp://eu/live/k1"
    assert (eu.ingest_region, eu.playback_region) == ("eu-west", "global")
    assert (us.ingest_region, us.playback_region) == ("global", "global")
    assert us.checks["stale_playlist"] == {"factor": 2.0}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "streams:\n  - name: a\n    injest_url: ${NOPE}\n    playback_url: http://h/a.m3u8\n",
            "NOPE",
        ),
        ("streams:\n  - name: a\n    playback_url: http://h/a.m3u8\n", "injest_url"),
        (
            "streams:\n  - name: a\n    injest_url: rtmp://h/live/k\n    playback_url: http://h/a\n"
            "    checks: {no_such_check: {}}\n",
            "no_such_check",
        ),
        (
            "streams:\n  - name: a\n    injest_url: rtmp://h/live/k\n    playback_url: http://h/a\n"
            "    checks: {stale_playlist: {factor: -1}}\n",
            "stale_playlist",
        ),
        (
            "streams:\n  - name: a\n    injest_url: rtmp://h/live/k\n    playback_url: http://h/a\n"
            "  - name: a\n    injest_url: rtmp://h/live/k\n    playback_url: http://h/a\n",
            "unique",
        ),
        (
            "streams:\n  - name: a\n    injest_url: rtmp://h/live/k\n    playback_url: http://h/a\n"
            "    colour: blue\n",
            "colour",
        ),
        ("just text", "streams"),
    ],
)
def test_bad_yaml_names_stream_and_field(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_file(_write(tmp_path, body), {})


def test_listen_address() -> None:
    assert parse_listen_address("0.0.0.0:9090") == ("0.0.0.0", 9090)
    assert parse_listen_address(":9091") == ("0.0.0.0", 9091)
    with pytest.raises(ConfigError, match="METRICS_ADDR"):
        parse_listen_address("9090")


_STREAM = (
    "streams:\n  - name: {name}\n    injest_url: rtmp://h/live/k\n    playback_url: http://h/a\n"
)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ("clip: {width: 641}", "clip.width: must be even"),
        ("clip: {height: 359}", "clip.height: must be even"),
        ("clip: {gop: 7}", "clip.gop: 7s at 30 fps does not divide the 60s test clip"),
        ("clip: {fps: 25, gop: 0.01}", "clip.gop: 0.01s at 25 fps"),
        ("livepeer: {api_url: livepeer.studio/api}", "livepeer.api_url: must be an http"),
        ("livepeer: {api_url: 'ftp://h/api'}", "livepeer.api_url: must be an http"),
        ("livepeer: {api_url: 'https://h:99999/api'}", "livepeer.api_url: malformed URL"),
    ],
)
def test_settings_that_would_fail_at_start_up_are_configuration_errors(
    tmp_path: Path, settings: str, field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Caught before anything starts, with exit code 2, naming the stream and the field:
    found at start-up instead, one stream's setting used to stop every stream."""
    path = _write(tmp_path, _STREAM.format(name="cam-7") + f"    {settings}\n")
    assert cli.main(["monitor", "--config", str(path)]) == 2
    error = capsys.readouterr().err
    assert "streams[0] ('cam-7'): " + field in error


def test_the_api_url_variable_is_named() -> None:
    with pytest.raises(ConfigError, match="LIVEPEER_API_URL: must be an http"):
        from_environment({"LIVEPEER_API_KEY": "k", "LIVEPEER_API_URL": "studio/api"})


@pytest.mark.parametrize("fps", [1, 7, 24, 25, 30, 50, 60])
def test_every_clip_the_configuration_accepts_can_be_made(fps: int) -> None:
    """The configuration's clip rules and ClipSpec's agree: no accepted setting fails at
    start-up, and none that would work is refused."""
    for gop in (0.01, 0.04, 0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9, 10):
        for width in (64, 65, 640, 641):
            settings = {"fps": fps, "gop": gop, "width": width}
            try:
                spec = ClipSpec(width=width, fps=fps, gop_seconds=gop)
            except ValueError:
                spec = None
            try:
                ClipSettings.model_validate(settings)
                accepted = True
            except ValidationError:
                accepted = False
            assert accepted == (spec is not None), settings
