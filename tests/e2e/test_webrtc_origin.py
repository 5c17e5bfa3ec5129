"""WebRTC playback (WHEP) of the embedded origin, beside its HLS, in one real session.

The origin runs as the monitor runs it (a child process); streamer publishes over RTMP
and plays the same stream over HLS and WHEP at once. What a user would check: both
protocols are measured under their own label, every WebRTC frame gets a latency, the
WebRTC path is far ahead of HLS, nothing fails on a healthy origin, and the WHEP session
is deleted at the end.
"""

from __future__ import annotations

import statistics

import pytest

from streamer.events import (
    CheckFailed,
    ConnectTime,
    FirstSegment,
    FramesPlayed,
    PlaybackMeasured,
    StreamLabels,
)
from streamer.publish.flv import FlvClip
from streamer.session import SessionSettings
from streamer.targets import FixedTarget, Target
from streamer.testsignal.clip import Clip
from tests.support.embedded_origin import Origin
from tests.support.session_run import run_session

pytestmark = pytest.mark.e2e

KEY = "webrtc-origin-key"


def settings_for(origin: Origin, protocols: tuple[str, ...], seconds: float) -> SessionSettings:
    target = Target(
        ingest_url=origin.ingest_url(KEY),
        playback_url=origin.url(f"/hls/{KEY}/index.m3u8"),
        whep_url=origin.url(f"/whep/{KEY}"),
    )
    return SessionSettings(
        labels=StreamLabels("webrtc", "local", "local"),
        duration_seconds=seconds,
        provisioner=FixedTarget(target),
        playback_protocols=protocols,
        startup_timeout_seconds=15,
    )


async def test_hls_and_webrtc_of_one_stream_are_both_measured(
    origin: Origin, clip: Clip, flv: FlvClip
) -> None:
    recorder, report = await run_session(
        settings_for(origin, ("hls", "webrtc"), 12.0), flv, clip.spec
    )

    failures = recorder.of(CheckFailed)
    assert not failures, [(f.labels.playback_protocol, f.kind, f.detail) for f in failures]
    by_protocol = {e.labels.playback_protocol for e in recorder.of(FirstSegment)}
    assert by_protocol == {"hls", "webrtc"}

    latencies = [x for e in recorder.of(FramesPlayed) for x in e.latencies_seconds]
    assert all(e.labels.playback_protocol == "webrtc" for e in recorder.of(FramesPlayed))
    # About 10 s of video after the first keyframe the viewer could start at.
    assert len(latencies) > 200
    # Loopback, H.264 forwarded as it is: well under the 100 ms target at p50.
    assert statistics.median(latencies) < 0.1
    startup = {
        e.labels.playback_protocol: e.startup_latency_seconds for e in recorder.of(FirstSegment)
    }
    # HLS waits for a whole 2 s segment; WebRTC for the next keyframe at most.
    assert startup["webrtc"] < startup["hls"]
    connects = [
        e.measurement
        for e in recorder.of(PlaybackMeasured)
        if isinstance(e.measurement, ConnectTime)
    ]
    assert len(connects) == 1 and connects[0].seconds < 2.0
    assert report["outcome"] == "success"
    assert "WHEP viewer of key webr**** joined" in origin.log()
