"""A whole session through an independent WebRTC server: streamer publishes into a Janus
VideoRoom over WHIP and plays the same room back over WHEP.

Janus (Debian, 1.1) runs on 127.0.0.1 in the test's own network namespace
(tests/support/netns.py), behind the WHIP/WHEP front of tests/support/janus_whip.py;
Janus does all the ICE, DTLS, SRTP and RTP, both ways. Its VideoRoom offers to
subscribers, so the viewer meets a server offer (406, answer by PATCH:
playback/whep_offer.py). What a user would check: every played frame gets a sane
glass-to-glass latency, nothing fails on a healthy run (no freeze, no dropped frame),
the connect time is reported, and both WebRTC sessions are deleted at the end.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from pathlib import Path

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
from tests.support.aio import serve_local
from tests.support.janus import JanusServer
from tests.support.janus_whip import JanusWhip
from tests.support.netns import INTERFACE, private_loopback
from tests.support.session_run import run_session

pytestmark = pytest.mark.e2e

ROOM = "janus-whep-room"
SESSION_SECONDS = 12.0


@pytest.fixture
def janus(tmp_path: Path) -> Iterator[JanusServer]:
    with private_loopback(), JanusServer(tmp_path / "janus", ice_interface=INTERFACE) as server:
        yield server


async def test_whip_in_and_whep_out_of_janus_are_measured_frame_by_frame(
    janus: JanusServer, clip: Clip, flv: FlvClip
) -> None:
    front = JanusWhip(janus.api_url, janus.recordings)
    async with serve_local(front.app()) as server:
        whep = server.url(f"/whep/{ROOM}")
        target = Target(
            ingest_url="whip+" + server.url(f"/whip/{ROOM}"), playback_url=whep, whep_url=whep
        )
        settings = SessionSettings(
            labels=StreamLabels("janus", "local", "local", ingest_protocol="whip"),
            duration_seconds=SESSION_SECONDS,
            provisioner=FixedTarget(target),
            playback_protocols=("webrtc",),
            startup_timeout_seconds=15,
        )
        recorder, report = await run_session(settings, flv, clip.spec)
        deleted = sorted(path.split("/")[1] for path in front.deleted)

    failures = recorder.of(CheckFailed)
    assert not failures, [(f.kind, f.detail) for f in failures]
    assert report["outcome"] == "success"
    assert deleted == ["whep", "whip"]  # both resources DELETEd at the end

    latencies = [x for e in recorder.of(FramesPlayed) for x in e.latencies_seconds]
    # About 10 s of video at 30 fps after the viewer's first keyframe.
    assert len(latencies) > 200
    # Loopback through Janus, H.264 forwarded as it is: sane, and well ahead of HLS.
    assert min(latencies) > 0 and statistics.median(latencies) < 0.15
    (first,) = recorder.of(FirstSegment)
    assert first.labels.playback_protocol == "webrtc"
    connects = [
        e.measurement
        for e in recorder.of(PlaybackMeasured)
        if isinstance(e.measurement, ConnectTime)
    ]
    assert len(connects) == 1 and connects[0].seconds < 2.0
