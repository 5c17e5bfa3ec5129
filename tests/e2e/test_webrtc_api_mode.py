"""Livepeer API mode with WebRTC playback: the WHEP URL comes from the playback info.

The local Livepeer fake follows the documented contract: `GET /playback/{playbackId}`
lists the stream's sources, the WebRTC one (type html5/video/h264) on an edge URL that
redirects (307) to the real WHEP endpoint, here the embedded origin's. What a user would
check: HLS and WebRTC are both measured, the WHEP offer followed the redirect, and the
test stream is deleted.
"""

from __future__ import annotations

import aiohttp
import pytest

from streamer.events import FanOut, FirstSegment, FramesPlayed, StreamLabels
from streamer.livepeer.client import LivepeerClient, Profile
from streamer.livepeer.provision import LivepeerProvisioner
from streamer.publish.flv import FlvClip
from streamer.session import Session, SessionSettings
from streamer.sinks.report import SessionReport
from streamer.testsignal.clip import Clip
from tests.support.embedded_origin import Origin
from tests.support.fake_livepeer import FakeLivepeer
from tests.support.session_run import Recorder

pytestmark = pytest.mark.e2e

API_KEY = "sk-live-apikey-webrtc-0123456789"


async def test_api_mode_plays_the_webrtc_source_of_the_playback_info(
    origin: Origin, clip: Clip, flv: FlvClip
) -> None:
    async with (
        FakeLivepeer(
            API_KEY,
            f"rtmp://127.0.0.1:{origin.rtmp_port}/live",
            origin.url("/hls"),
            playback_id_is_stream_key=True,
            webrtc_base=origin.url("/whep"),
        ) as fake,
        aiohttp.ClientSession() as http,
    ):
        provisioner = LivepeerProvisioner(
            LivepeerClient(fake.api_url, API_KEY, http),
            "api-webrtc",
            ingest_region="local",
            playback_region="local",
            ingest_base=fake.ingest_base,
            playback_base=fake.playback_base,
            profiles=(Profile("360p", 640, 360, 800_000, 30),),
            whep=True,
        )
        settings = SessionSettings(
            labels=StreamLabels("api-webrtc", "local", "local"),
            duration_seconds=8,
            startup_timeout_seconds=10,
            provisioner=provisioner,
            playback_protocols=("hls", "webrtc"),
        )
        recorder, report = Recorder(), SessionReport()
        await Session(settings, flv, clip.spec, FanOut([recorder, report])).run()

        assert report.outcome == "success", report.errors
        assert {e.labels.playback_protocol for e in recorder.of(FirstSegment)} == {"hls", "webrtc"}
        assert sum(len(e.latencies_seconds) for e in recorder.of(FramesPlayed)) > 100
        assert len(fake.calls_of("playback_info")) == 1
        (offer,) = fake.calls_of("webrtc")  # the edge URL, redirected to the origin
        assert offer.method == "POST"
        assert fake.streams == {}
