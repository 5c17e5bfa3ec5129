"""The status page of a real monitor process, in Debian's Chromium.

One `streamer monitor --config streams.yaml` runs against a real nginx-rtmp origin with two
streams: "eu healthy" publishes and plays through nginx; "hostile cdn" publishes to nginx too,
but its playback URL points at a tiny local HTTP server whose playlist carries an
`#EXT-X-ERROR` tag full of markup, so its sessions fail with that text as the error detail.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Locator, Page, expect

from tests.support.aio import LocalServer
from tests.support.browser import chromium, open_page
from tests.support.nginx import NginxOrigin
from tests.support.ports import free_port, wait_for_port

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
HEALTHY = "eu healthy"  # a space: names are URL-encoded in links and API paths
BROKEN = "hostile cdn"
STATES = {"idle", "publishing", "waiting", "playing", "grace", "failed"}


class PlaylistServer:
    """An aiohttp server on a free loopback port, in its own thread, serving one playlist for
    every path: a live media playlist without segments whose `#EXT-X-ERROR` is `error`."""

    def __init__(self, error: str) -> None:
        self.body = (
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
            f"#EXT-X-ERROR:{error}\n"
        )
        self.paths: list[str] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: LocalServer | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _playlist(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        return web.Response(text=self.body, content_type="application/vnd.apple.mpegurl")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/{path:.*}", self._playlist)
        self._server = await LocalServer.start(app)
        self.port = self._server.port

    def __enter__(self) -> PlaylistServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@dataclass
class LiveMonitor:
    base_url: str
    secrets: list[str]  # the stream keys in the configuration
    log: Path
    playlist_server: PlaylistServer
    started: float = field(default_factory=time.monotonic)

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=5) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def get_json(self, path: str, status: int = 200) -> Any:
        code, headers, body = self.get(path)
        assert code == status, (path, code, body[:200])
        assert headers["Content-Type"].startswith("application/json")
        assert headers["Cache-Control"] == "no-store"
        self.assert_no_secret(body, path)
        return json.loads(body)

    def assert_no_secret(self, body: bytes | str, where: str) -> None:
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        for secret in self.secrets:
            assert secret not in text, f"a stream key appears in {where}"
            assert secret[-12:] not in text, f"part of a stream key appears in {where}"

    def wait_for(self, what: str, condition: Callable[[], bool], timeout: float = 40) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-3000:]
                pytest.fail(f"{what}: not within {timeout:g}s; monitor log:\n{tail}")
            time.sleep(0.25)

    def stream(self, name: str) -> dict[str, Any]:
        streams = self.get_json("/api/streams")["streams"]
        found: dict[str, Any] = next(s for s in streams if s["name"] == name)
        return found


@pytest.fixture(scope="module")
def monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveMonitor]:
    tmp_path = tmp_path_factory.mktemp("status-live")
    healthy_key = "keyhealthy" + uuid.uuid4().hex
    broken_key = "keyhostile" + uuid.uuid4().hex
    with NginxOrigin(tmp_path / "nginx") as origin, PlaylistServer(HOSTILE) as playlists:
        config = tmp_path / "streams.yaml"
        # The hostile playback URL names the stream key, as nginx-rtmp's do: it is masked too.
        config.write_text(f"""
streams:
  - name: "{HEALTHY}"
    duration: 10s
    grace_period: 6s
    drain_timeout: 4s
    ingest_region: eu-west
    playback_region: eu-central
    ingest_url: "{origin.ingest_url(healthy_key)}"
    playback_url: "{origin.playback_url(healthy_key)}"
  - name: "{BROKEN}"
    duration: 8s
    grace_period: 4s
    drain_timeout: 2s
    ingest_region: us-east
    playback_region: us-west
    ingest_url: "{origin.ingest_url(broken_key)}"
    playback_url: "{playlists.url(f"/hls/{broken_key}/index.m3u8")}"
""")
        port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("INJEST_URL", "INGEST_URL", "PLAYBACK_URL", "STREAMER_CONFIG")
        }
        env.update({"METRICS_ADDR": f"127.0.0.1:{port}", "LOG_FORMAT": "json"})
        log = tmp_path / "monitor.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "streamer", "monitor", "--config", str(config)],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_port(port, timeout=30)
            yield LiveMonitor(f"http://127.0.0.1:{port}", [healthy_key, broken_key], log, playlists)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert process.returncode == 0, log.read_text(errors="replace")[-3000:]
    LiveMonitor("", [healthy_key, broken_key], log, playlists).assert_no_secret(
        log.read_bytes(), "the monitor's log"
    )


def _row(page: Page, stream: str) -> Locator:
    return page.locator("#streams tbody tr").filter(
        has=page.locator("td:first-child a", has_text=re.compile(f"^{re.escape(stream)}$"))
    )


async def _chart_points(page: Page) -> list[int]:
    """Non-null values per uPlot series of the latency chart (empty without a chart)."""
    points: list[int] = await page.evaluate(
        """() => {
            const u = window.__charts && window.__charts.latency;
            return u ? u.data.slice(1).map((d) => d.filter((v) => v !== null).length) : [];
        }"""
    )
    return points


async def test_live_page_follows_a_real_monitor(monitor: LiveMonitor) -> None:
    problems: list[str] = []
    async with chromium() as browser:
        page = await open_page(browser, monitor.base_url + "/", problems=problems)
        # both configured streams, in configuration order, with their regions and a state
        rows = page.locator("#streams tbody tr")
        await expect(rows).to_have_count(2)
        await expect(rows.nth(0).locator("td").first).to_have_text(HEALTHY)
        await expect(rows.nth(1).locator("td").first).to_have_text(BROKEN)
        await expect(_row(page, HEALTHY)).to_contain_text("eu-west")
        await expect(_row(page, HEALTHY)).to_contain_text("eu-central")
        await expect(_row(page, BROKEN)).to_contain_text("us-west")
        for name in (HEALTHY, BROKEN):
            state = await _row(page, name).get_attribute("data-state")
            assert state in STATES

        # The first stream is selected: its session rows and renditions come from the monitor.
        await expect(page.locator("#detail-name")).to_have_text(HEALTHY)
        await expect(_row(page, HEALTHY)).to_have_attribute("data-state", "playing", timeout=30_000)
        await expect(page.locator("#detail-state")).to_have_text("playing")
        sessions = page.locator("#sessions tbody tr")
        await expect(sessions.first).to_have_attribute("data-outcome", "running")
        await expect(page.locator("#renditions tbody tr").first).to_contain_text("640x360")
        # Its playback protocol's figures (the one it plays: HLS, latency per segment).
        hls = page.locator('#protocols tbody tr[data-protocol="hls"]')
        await expect(hls.locator("td").nth(2)).to_contain_text("per segment")
        await expect(page.locator("#detail-meta")).to_contain_text("rtmp://127.0.0.1:")
        await expect(page.locator("#detail-meta")).to_contain_text("****")

        # the latency chart has measured points (one mean and one max line per rendition)
        await page.wait_for_function(
            """() => {
                const u = window.__charts && window.__charts.latency;
                return u && u.data[1].some((v) => v !== null);
            }""",
            timeout=30_000,
        )
        points = await _chart_points(page)
        assert len(points) == 2 and all(n >= 1 for n in points), points
        assert await page.locator("#chart canvas").count() == 1
        assert await page.locator("#chart-empty").is_hidden()

        # The page follows the monitor without a reload: the running session ends (grace or
        # failed), then a new one starts and becomes the newest row.
        await page.evaluate("() => { window.__marker = 'no reload' }")
        first_session = await sessions.first.get_attribute("data-session")
        assert first_session
        ended = page.locator(f'#sessions tbody tr[data-session="{first_session}"]')
        await expect(ended).not_to_have_attribute("data-outcome", "running", timeout=30_000)
        await expect(ended).to_have_attribute("data-outcome", "success")
        # pushed by the SSE feed, not found by the page's 30 s fallback refresh
        shown_at = time.time()
        await expect(page.locator("#feed")).to_have_text("live")
        history = monitor.get_json(f"/api/streams/{urllib.parse.quote(HEALTHY)}/sessions")
        ended_at = next(
            s["ended_at"] for s in history["sessions"] if s["session_id"] == first_session
        )
        assert shown_at - ended_at < 4.0
        # in the pause between sessions (6 s): state grace, "ended … ago"
        await expect(_row(page, HEALTHY)).to_have_attribute("data-state", "grace")
        await expect(page.locator("#detail-state")).to_have_text("grace")
        await expect(_row(page, HEALTHY).locator("td").nth(4)).to_have_text(
            re.compile(r"^ended \ds ago$")
        )
        await expect(_row(page, HEALTHY)).to_contain_text("success")
        await expect(sessions.first).not_to_have_attribute(
            "data-session", first_session, timeout=30_000
        )
        await expect(sessions.first).to_have_attribute("data-outcome", "running")
        assert await sessions.count() >= 2
        await expect(_row(page, HEALTHY)).to_have_attribute("data-state", "playing", timeout=30_000)
        await expect(page.locator("#renditions tbody tr").first).to_contain_text("640x360")
        assert await page.evaluate("() => window.__marker") == "no reload"
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "status-page-live.png"), full_page=True)

        # The hostile stream: its failed sessions, and the EXT-X-ERROR text shown as text.
        await _row(page, BROKEN).locator("a").click()
        await expect(page.locator("#detail-name")).to_have_text(BROKEN)
        assert await page.evaluate("() => window.__marker") == "no reload"
        failed = page.locator('#sessions tbody tr[data-outcome="failure"]').first
        await expect(failed).to_contain_text("playlist_error", timeout=30_000)
        await expect(_row(page, BROKEN)).to_contain_text("failure")
        detail = page.locator("#errors tbody tr td:nth-child(4)", has_text="EXT-X-ERROR").first
        await expect(detail).to_have_text(f"EXT-X-ERROR: {HOSTILE}")
        assert await page.evaluate("() => typeof window.__pwned") == "undefined"
        assert await page.locator("main img").count() == 0
        assert await page.locator("script").count() == 2  # uPlot and app.js
        await expect(page.locator("#detail-meta")).to_contain_text(
            monitor.playlist_server.url("/hls/keyh****/index.m3u8")
        )
        await page.screenshot(path=str(ARTIFACTS / "status-page-live-hostile.png"), full_page=True)

        # nothing on the page, as rendered, shows a stream key
        monitor.assert_no_secret(await page.content(), "the rendered page")
        assert problems == []
    assert monitor.playlist_server.paths  # the monitor really played the hostile playlist


def test_json_api_of_a_real_monitor(monitor: LiveMonitor) -> None:
    listing = monitor.get_json("/api/streams")
    assert [s["name"] for s in listing["streams"]] == [HEALTHY, BROKEN]
    assert abs(listing["now"] - time.time()) < 5
    by_name = {s["name"]: s for s in listing["streams"]}
    assert (by_name[HEALTHY]["ingest_region"], by_name[HEALTHY]["playback_region"]) == (
        "eu-west",
        "eu-central",
    )
    assert all(s["state"] in STATES for s in listing["streams"])

    # a session of each stream ends: the healthy one succeeds, the hostile one fails
    monitor.wait_for(
        "a finished session of each stream",
        lambda: all(monitor.stream(n)["last_outcome"] is not None for n in (HEALTHY, BROKEN)),
    )
    healthy, broken = monitor.stream(HEALTHY), monitor.stream(BROKEN)
    assert healthy["last_outcome"] == "success"
    assert healthy["last_startup_latency_seconds"] is not None
    assert broken["last_outcome"] == "failure"
    assert broken["error_count"] >= 1

    for name in (HEALTHY, BROKEN):
        quoted = urllib.parse.quote(name)
        sessions = monitor.get_json(f"/api/streams/{quoted}/sessions")
        assert sessions["name"] == name
        assert 1 <= len(sessions["sessions"]) <= 20
        finished = [s for s in sessions["sessions"] if s["outcome"] is not None]
        assert finished, sessions
        starts = [s["started_at"] for s in sessions["sessions"]]
        assert starts == sorted(starts, reverse=True)  # newest first
        for session in finished:
            assert session["duration_seconds"] == pytest.approx(
                session["ended_at"] - session["started_at"], abs=0.01
            )
        detail = monitor.get_json(f"/api/streams/{quoted}")
        assert detail["name"] == name
        assert detail["ingest"].startswith("rtmp://127.0.0.1:") and "****" in detail["ingest"]
        assert "****" in detail["playback"]
    assert {s["outcome"] for s in finished} == {"failure"}  # the hostile stream's
    assert all("playlist_error" in s["failed_kinds"] for s in finished)
    errors = monitor.get_json(f"/api/streams/{urllib.parse.quote(BROKEN)}")["errors"]
    assert f"EXT-X-ERROR: {HOSTILE}" in {e["detail"] for e in errors}
    healthy_detail = monitor.get_json(f"/api/streams/{urllib.parse.quote(HEALTHY)}")
    series = healthy_detail["latency"]["series"]
    assert [s["rendition"] for s in series] == ["source"]
    assert any(v is not None and 0 < v < 10 for v in series[0]["mean"])

    # unknown streams
    for path in ("/api/streams/nope", "/api/streams/nope/sessions"):
        assert monitor.get_json(path, status=404) == {"error": "unknown stream", "name": "nope"}

    # No stream key in anything the page is made of (get_json checks the API responses).
    for path in ("/", "/static/app.js", "/static/style.css"):
        status, _, body = monitor.get(path)
        assert status == 200
        monitor.assert_no_secret(body, path)
    assert "script-src 'self'" in monitor.get("/")[1]["Content-Security-Policy"]
    # and the SSE feed names streams only
    with urllib.request.urlopen(monitor.base_url + "/api/events", timeout=20) as feed:
        lines = [feed.readline().decode() for _ in range(6)]
    assert "event: changed\n" in lines
    data = json.loads(next(x for x in lines if x.startswith("data: "))[6:])
    assert set(data["streams"]) <= {HEALTHY, BROKEN}
