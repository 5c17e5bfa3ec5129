"""A real browser as an independent WHEP client of the embedded origin.

Headless Chromium plays the origin's WHEP output in a <video> element from a small test
page (the WHEP exchange written as a browser does it: offer, POST, answer), while streamer
publishes. What a user would check: frames are decoded and shown at the source size, and
the browser's own statistics (getStats) see the H.264 stream.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from streamer.events import StreamLabels
from streamer.publish.flv import FlvClip
from streamer.session import SessionSettings
from streamer.targets import FixedTarget, Target
from streamer.testsignal.clip import Clip
from tests.support.aio import serve_local
from tests.support.browser import WEBRTC_LOOPBACK_ARGS, chromium, open_page
from tests.support.embedded_origin import Origin
from tests.support.session_run import run_session

pytestmark = pytest.mark.e2e

KEY = "browser-whep-key"
PAGE = """<!doctype html>
<html><body>
<video id="v" muted autoplay playsinline></video>
<script>
async function play(url) {
  const pc = new RTCPeerConnection({iceServers: []});
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.addTransceiver("audio", {direction: "recvonly"});
  const video = document.getElementById("v");
  pc.ontrack = (event) => {
    if (event.track.kind === "video") video.srcObject = new MediaStream([event.track]);
  };
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== "complete") {
    await new Promise((done) => pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") done();
    }));
  }
  const answer = await fetch(url, {
    method: "POST", headers: {"Content-Type": "application/sdp"}, body: pc.localDescription.sdp,
  });
  if (answer.status !== 201) throw new Error("WHEP answered " + answer.status);
  window.whepLocation = answer.headers.get("Location");
  await pc.setRemoteDescription({type: "answer", sdp: await answer.text()});
  window.pc = pc;
}
async function inboundVideo() {
  const stats = await window.pc.getStats();
  let found = null;
  stats.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") found = s; });
  const codec = found && stats.get(found.codecId);
  return found && {framesDecoded: found.framesDecoded, packetsLost: found.packetsLost,
                   mimeType: codec && codec.mimeType, width: found.frameWidth};
}
</script>
</body></html>
"""


async def test_chromium_plays_the_embedded_origins_whep_output(
    origin: Origin, clip: Clip, flv: FlvClip
) -> None:
    settings = SessionSettings(
        labels=StreamLabels("browser", "local", "local"),
        duration_seconds=12.0,
        provisioner=FixedTarget(
            Target(
                ingest_url=origin.ingest_url(KEY),
                playback_url=origin.url(f"/hls/{KEY}/index.m3u8"),
            )
        ),
    )

    async def page_handler(_: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page_handler)
    publishing = asyncio.create_task(run_session(settings, flv, clip.spec))
    try:
        await asyncio.sleep(1.5)  # the publish is accepted
        async with serve_local(app) as server, chromium(WEBRTC_LOOPBACK_ARGS) as browser:
            problems: list[str] = []
            page = await open_page(browser, server.url("/"), problems=problems)
            await page.evaluate("url => play(url)", origin.url(f"/whep/{KEY}"))
            await page.wait_for_function(
                "document.getElementById('v').videoWidth > 0", timeout=10_000
            )
            await asyncio.sleep(3.0)
            stats: dict[str, Any] = await page.evaluate("inboundVideo()")
            size = await page.evaluate("[v.videoWidth, v.videoHeight]")
            location = await page.evaluate("window.whepLocation")
        assert size == [640, 360]
        assert stats["mimeType"].lower() == "video/h264"
        assert stats["framesDecoded"] > 60  # about 3 s at 30 fps, and more
        assert location.startswith(f"/whep/{KEY}/")
        assert not [p for p in problems if "Failed to load resource" not in p], problems
    finally:
        await publishing
