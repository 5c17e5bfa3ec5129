"""hls.js, a player nobody here wrote, for the browser tests: installed from the npm
registry with Debian's `npm`, pinned to one exact version, into a cache directory outside
the repository (never committed), once per machine."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.support.aio import serve_local
from tests.support.browser import chromium, open_page

HLSJS_VERSION = "1.5.20"


def hlsjs_script() -> Path:
    """The path of hls.min.js, installed first if needed; fails (never skips) without npm."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    prefix = base / "streamer-tests" / f"hlsjs-{HLSJS_VERSION}"
    script = prefix / "node_modules" / "hls.js" / "dist" / "hls.min.js"
    if script.exists():
        return script
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is missing: scripts/install-deps.sh test installs it")
    subprocess.run(
        [
            npm,
            "install",
            "--prefix",
            str(prefix),
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--no-save",
            f"hls.js@{HLSJS_VERSION}",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return script


# A page playing SOURCE with hls.js in low-latency mode, as LL deployments configure it
# (catching up to the target latency, PART-HOLD-BACK, by playing slightly faster when
# behind); window.state: parts and segments loaded, stalls, errors, `hls.latency` samples.
PLAYER_PAGE = """<!doctype html>
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


async def play_ll_hls(source: str, settle: float, seconds: float) -> dict[str, Any]:
    """Plays `source` in headless Chromium; after `settle` s of playing, watches `seconds`
    s and returns what hls.js reported then (window.state, plus `version`,
    `low_latency` and `target_latency`)."""
    script = hlsjs_script()
    page_html = PLAYER_PAGE.replace("SOURCE", json.dumps(source))

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=page_html, content_type="text/html")

    async def player(_: web.Request) -> web.FileResponse:
        return web.FileResponse(script)

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/hls.min.js", player)
    async with serve_local(app) as server, chromium() as browser:
        page = await open_page(browser, server.url("/"))
        for _ in range(150):
            if await page.evaluate("window.state.playing"):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(settle)
        await page.evaluate("window.state.stalls = []; window.state.latencies = []")
        parts_before = await page.evaluate("window.state.parts")
        await asyncio.sleep(seconds)
        state: dict[str, Any] = await page.evaluate("window.state")
        state["parts_watched"] = state["parts"] - parts_before
        state["version"] = await page.evaluate("Hls.version")
        state["low_latency"] = await page.evaluate("window.hls.lowLatencyMode")
        state["target_latency"] = await page.evaluate("window.hls.targetLatency")
    return state
