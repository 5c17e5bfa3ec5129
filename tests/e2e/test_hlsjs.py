"""hls.js (pinned, from npm) in headless Chromium plays the embedded origin's LL-HLS at the
live edge: low-latency mode, parts loaded, `hls.latency` under 1.5 s on loopback, and no
stall over 30 s of playing."""

from __future__ import annotations

import asyncio

import pytest

from streamer.testsignal.clip import Clip
from tests.support.embedded_origin import Origin, ffmpeg_publish, get
from tests.support.hlsjs import HLSJS_VERSION, play_ll_hls

pytestmark = pytest.mark.e2e

KEY = "k1hlsjs-secret-key"
PLAY_SECONDS = 30.0


async def test_hlsjs_plays_the_ll_stream_at_the_live_edge(origin: Origin, clip: Clip) -> None:
    source = origin.url(f"/hls/{KEY}/ll/index.m3u8")
    with ffmpeg_publish(clip, origin.ingest_url(KEY), PLAY_SECONDS + 25) as publisher:
        for _ in range(200):  # the master appears once every rendition has its first part
            if get(source).status == 200:
                break
            await asyncio.sleep(0.1)
        state = await play_ll_hls(source, settle=3.0, seconds=PLAY_SECONDS)
        publisher.kill()
        publisher.communicate(timeout=10)
    assert state["version"] == HLSJS_VERSION
    assert state["playing"] and state["low_latency"], state
    # hls.js loaded parts, not only whole segments: about 3 a second.
    assert state["parts_watched"] >= 2 * PLAY_SECONDS, state["parts_watched"]
    latencies = sorted(state["latencies"])
    assert latencies, state
    median = latencies[len(latencies) // 2]
    assert median < 1.5, (latencies, state["target_latency"])
    assert state["stalls"] == [] and state["waitingSince"] is None, state
    fatal = [e for e in state["errors"] if e.endswith(":true")]
    assert fatal == [], state["errors"]
