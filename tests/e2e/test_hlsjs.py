"""hls.js (pinned, from npm) in headless Chromium plays the embedded origin's LL-HLS at the
live edge: low-latency mode, parts loaded, `hls.latency` under 1.5 s on loopback, and no
stall over 30 s of playing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from streamer.testsignal.clip import Clip
from tests.e2e.test_origin import Origin, ffmpeg_publish, get, start_origin, stop_origin
from tests.support.aio import serve_local
from tests.support.browser import chromium, open_page
from tests.support.hlsjs import HLSJS_VERSION, hlsjs_script

pytestmark = pytest.mark.e2e

KEY = "k1hlsjs-secret-key"
PLAY_SECONDS = 30.0

PAGE = """<!doctype html>
<html><body>
<video id="video" muted autoplay playsinline></video>
<script src="/hls.min.js"></script>
<script>
const video = document.getElementById("video");
const state = {parts: 0, fragments: 0, stalls: [], errors: [], waitingSince: null,
               latencies: [], playing: false};
window.state = state;
// As low-latency deployments configure it: catch up to the target latency (PART-HOLD-BACK)
// by playing slightly faster when behind.
const hls = new Hls({lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.5});
window.hls = hls;
hls.on(Hls.Events.FRAG_LOADED, (_, data) => {
  if (data.part) { state.parts += 1; } else { state.fragments += 1; }
});
hls.on(Hls.Events.ERROR, (_, data) => {
  state.errors.push(`${data.type}:${data.details}:${data.fatal}`);
});
video.addEventListener("playing", () => {
  if (state.waitingSince !== null) {
    state.stalls.push((performance.now() - state.waitingSince) / 1000);
    state.waitingSince = null;
  }
  state.playing = true;
});
video.addEventListener("waiting", () => {
  if (state.playing && state.waitingSince === null) { state.waitingSince = performance.now(); }
});
setInterval(() => { if (state.playing && hls.latency) { state.latencies.push(hls.latency); } },
            250);
hls.loadSource(SOURCE);
hls.attachMedia(video);
video.play().catch(() => {});
</script>
</body></html>
"""


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[Origin]:
    running = start_origin(tmp_path / "origin.log")
    yield running
    if running.process.poll() is None:
        stop_origin(running)


async def test_hlsjs_plays_the_ll_stream_at_the_live_edge(origin: Origin, clip: Clip) -> None:
    script = hlsjs_script()
    source = origin.url(f"/hls/{KEY}/ll/index.m3u8")
    page_html = PAGE.replace("SOURCE", json.dumps(source))

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=page_html, content_type="text/html")

    async def player(_: web.Request) -> web.FileResponse:
        return web.FileResponse(script)

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/hls.min.js", player)
    with ffmpeg_publish(clip, origin.ingest_url(KEY), PLAY_SECONDS + 25) as publisher:
        for _ in range(200):  # the master appears once every rendition has its first part
            if get(source).status == 200:
                break
            await asyncio.sleep(0.1)
        async with serve_local(app) as server, chromium() as browser:
            page = await open_page(browser, server.url("/"))
            for _ in range(100):
                if await page.evaluate("window.state.playing"):
                    break
                await asyncio.sleep(0.1)
            # Settled at the live edge, then watched for PLAY_SECONDS.
            await asyncio.sleep(3)
            await page.evaluate("window.state.stalls = []; window.state.latencies = []")
            parts_before = await page.evaluate("window.state.parts")
            await asyncio.sleep(PLAY_SECONDS)
            state = await page.evaluate("window.state")
            low_latency = await page.evaluate("window.hls.lowLatencyMode")
            version = await page.evaluate("Hls.version")
            target = await page.evaluate("window.hls.targetLatency")
        publisher.kill()
        publisher.communicate(timeout=10)
    assert version == HLSJS_VERSION
    assert state["playing"] and low_latency, state
    # hls.js loaded parts, not only whole segments: about 3 a second.
    assert state["parts"] - parts_before >= 2 * PLAY_SECONDS, state["parts"]
    latencies = sorted(state["latencies"])
    assert latencies, state
    median = latencies[len(latencies) // 2]
    assert median < 1.5, (latencies, target)
    assert state["stalls"] == [] and state["waitingSince"] is None, state
    fatal = [e for e in state["errors"] if e.endswith(":true")]
    assert fatal == [], state["errors"]
