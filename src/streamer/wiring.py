"""From configuration to the objects a session needs: clips (shared) and session settings."""

from __future__ import annotations

from functools import cache

from streamer.config import ClipSettings, StreamConfig
from streamer.events import StreamLabels
from streamer.playback.fetch import FetchPolicy
from streamer.publish.flv import FlvClip, to_flv
from streamer.publish.registry import ingest_protocol
from streamer.session import SessionSettings
from streamer.targets import FixedTarget, Provisioner, Target
from streamer.testsignal.clip import ClipSpec, load_clip


def clip_spec(settings: ClipSettings) -> ClipSpec:
    return ClipSpec(
        width=settings.width,
        height=settings.height,
        fps=settings.fps,
        gop_seconds=settings.gop,
        video_bitrate=settings.bitrate,
    )


@cache
def flv_clip(spec: ClipSpec) -> FlvClip:
    """The clip's FLV tags, generated (or read from the cache) once per process."""
    return to_flv(load_clip(spec))


def labels(stream: StreamConfig) -> StreamLabels:
    if stream.ingest_url:
        ingest = ingest_protocol(stream.ingest_url).name
    elif stream.livepeer is not None:
        ingest = stream.livepeer.ingest_protocol  # API mode: the protocol it publishes with
    else:
        ingest = "rtmp"
    return StreamLabels(
        stream.name,
        stream.ingest_region,
        stream.playback_region,
        ingest_protocol=ingest,
        playback_protocol=stream.playback[0],
    )


def fixed_target(stream: StreamConfig) -> FixedTarget:
    """The configured URLs, the same for every session."""
    playback = stream.playback_url or stream.whep_url
    assert stream.ingest_url is not None and playback is not None
    return FixedTarget(
        Target(ingest_url=stream.ingest_url, playback_url=playback, whep_url=stream.whep_url)
    )


def session_settings(
    stream: StreamConfig, target: Provisioner, **overrides: object
) -> SessionSettings:
    values: dict[str, object] = {
        "labels": labels(stream),
        "provisioner": target,
        "duration_seconds": stream.duration,
        "startup_timeout_seconds": stream.startup_timeout,
        "connect_timeout_seconds": stream.connect_timeout,
        "drain_timeout_seconds": stream.drain_timeout,
        "tls_ca_file": stream.tls_ca_file,
        "expected_renditions": stream.expected_renditions,
        "max_renditions": stream.max_renditions,
        "checks": stream.checks,
        "fetch": FetchPolicy(allow=tuple(stream.fetch_allow), deny=tuple(stream.fetch_deny)),
        "playback_protocol": stream.playback[0],
        "playback_protocols": tuple(stream.playback),
        "ice_servers": tuple(stream.ice_servers),
        "freeze_ms": stream.freeze_ms,
    }
    values.update(overrides)
    return SessionSettings(**values)  # type: ignore[arg-type]
