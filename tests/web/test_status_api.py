"""The status page's HTTP side, through a real aiohttp server and client on loopback."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from streamer.config import ConfigError
from streamer.events import StreamLabels
from streamer.sinks.status import StatusStore
from streamer.web.status import (
    DEFAULT_MAX_SSE_CLIENTS,
    StatusSettings,
    add_status_routes,
)
from tests.support.aio import serve_local
from tests.support.status_events import (
    ALPHA,
    BETA,
    Clock,
    check_failed,
    ended,
    play_session,
    started,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> StatusStore:
    store = StatusStore(clock=clock)
    store.register_stream(ALPHA)
    store.register_stream(BETA)
    return store


@pytest.fixture
async def client(store: StatusStore) -> AsyncIterator[aiohttp.ClientSession]:
    # served like the monitor serves it (AppRunner: handlers are not cancelled on disconnect)
    app = web.Application()
    add_status_routes(app, store)
    async with serve_local(app) as server, aiohttp.ClientSession(server.url()) as client:
        yield client


async def get_json(client: aiohttp.ClientSession, path: str, status: int = 200) -> Any:
    response = await client.get(path)
    assert response.status == status
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    return await response.json()


async def test_page_is_self_contained_with_a_strict_csp(client: aiohttp.ClientSession) -> None:
    response = await client.get("/")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/html")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    html = await response.text()
    assert "<table" in html and 'id="streams"' in html
    # no inline script, no external asset
    for attrs, body in re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S):
        assert 'src="/static/' in attrs and body.strip() == ""
    for url in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert url.startswith("/static/"), url
    assert "on" + "load=" not in html and "onclick" not in html


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/static/app.js", "text/javascript"),
        ("/static/style.css", "text/css"),
        ("/static/vendor/uPlot.iife.min.js", "text/javascript"),
        ("/static/vendor/uPlot.min.css", "text/css"),
        ("/static/vendor/uPlot.LICENSE", "text/plain"),
    ],
)
async def test_assets_come_from_package_data(
    client: aiohttp.ClientSession, path: str, content_type: str
) -> None:
    response = await client.get(path)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith(content_type)
    packaged = resources.files("streamer.web").joinpath("static", *path.split("/")[2:])
    assert await response.read() == packaged.read_bytes()
    again = await client.get(path, headers={"If-None-Match": response.headers["ETag"]})
    assert again.status == 304


@pytest.mark.parametrize(
    "path", ["/static/nope.js", "/static/../status.py", "/static/%2e%2e/status.py", "/static/"]
)
async def test_unknown_assets_are_404(client: aiohttp.ClientSession, path: str) -> None:
    response = await client.get(path)
    assert response.status == 404


async def test_stream_list(client: aiohttp.ClientSession, store: StatusStore, clock: Clock) -> None:
    play_session(store, ALPHA, "s1", clock.now - 100, seconds=60, clock=clock)
    clock.now += 5
    body = await get_json(client, "/api/streams")
    assert body["now"] == pytest.approx(clock.now)
    alpha, beta = body["streams"]
    assert alpha["name"] == "alpha" and alpha["state"] == "grace"
    assert alpha["last_outcome"] == "success"
    assert (alpha["ingest_region"], alpha["playback_region"]) == ("eu-west", "us-east")
    assert [r["name"] for r in alpha["renditions"]] == ["360p", "144p"]
    assert beta == {**beta, "name": "beta", "state": "idle", "session_id": None}


async def test_stream_detail_has_chart_series_sessions_and_errors(
    client: aiohttp.ClientSession, store: StatusStore, clock: Clock
) -> None:
    play_session(store, ALPHA, "s1", clock.now, seconds=60, end=None, clock=clock)
    store.handle(check_failed(ALPHA, "s1", clock.now, detail="<b>bad</b>"))
    body = await get_json(client, "/api/streams/alpha")
    assert body["name"] == "alpha" and body["state"] == "playing"
    assert body["ingest"].endswith("****")  # masked by the session, shown as is
    latency = body["latency"]
    assert len(latency["t"]) >= 5
    assert {s["rendition"] for s in latency["series"]} == {"360p", "144p"}
    assert all(len(s["mean"]) == len(latency["t"]) for s in latency["series"])
    assert [s["session_id"] for s in body["sessions"]] == ["s1"]
    assert body["errors"][0]["detail"] == "<b>bad</b>"  # data, not markup
    sessions = await get_json(client, "/api/streams/alpha/sessions")
    assert sessions["name"] == "alpha" and sessions["sessions"] == body["sessions"]


async def test_unknown_stream_is_404_json(client: aiohttp.ClientSession) -> None:
    assert await get_json(client, "/api/streams/nope", 404) == {
        "error": "unknown stream",
        "name": "nope",
    }
    body = await get_json(client, "/api/streams/nope/sessions", 404)
    assert body["error"] == "unknown stream"


async def test_names_needing_escapes_round_trip(
    client: aiohttp.ClientSession, store: StatusStore, clock: Clock
) -> None:
    odd = StreamLabels("café live #1?", "eu", "eu")
    store.handle(started(odd, "s1", clock.now))
    body = await get_json(client, "/api/streams/caf%C3%A9%20live%20%231%3F")
    assert body["name"] == "café live #1?" and body["state"] == "publishing"


# -- Server-Sent Events -------------------------------------------------------------------


async def read_event(response: aiohttp.ClientResponse, timeout: float = 5.0) -> dict[str, str]:
    """The next SSE event with an `event:` field (comments and retry lines skipped)."""
    fields: dict[str, str] = {}
    async with asyncio.timeout(timeout):
        while True:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line == "":
                if "event" in fields:
                    return fields
                fields = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                fields[key] = value.strip()


async def test_events_push_a_change_notice(
    client: aiohttp.ClientSession, store: StatusStore, clock: Clock
) -> None:
    response = await client.get("/api/events")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    await wait_for(lambda: store.listener_count == 1)
    store.handle(started(ALPHA, "s1", clock.now))
    event = await read_event(response)
    assert event["event"] == "changed"
    assert json.loads(event["data"]) == {"streams": ["alpha"]}
    response.close()


async def test_events_are_throttled_and_coalesced(
    client: aiohttp.ClientSession, store: StatusStore, clock: Clock
) -> None:
    response = await client.get("/api/events")
    await wait_for(lambda: store.listener_count == 1)
    began = time.monotonic()
    notices: list[list[str]] = []
    seen: set[str] = set()
    store.handle(started(ALPHA, "s1", clock.now))
    notices.append(json.loads((await read_event(response))["data"])["streams"])
    for i in range(200):  # a burst of changes in two streams
        store.handle(started(BETA if i % 2 else ALPHA, f"b{i}", clock.now + i))
    while seen != {"alpha", "beta"}:
        streams = json.loads((await read_event(response))["data"])["streams"]
        notices.append(streams)
        if len(notices) > 1:
            seen.update(streams)
    elapsed = time.monotonic() - began
    # 201 changes became a few notices, no faster than 2 per second
    assert len(notices) <= 3
    assert elapsed >= 0.5 * (len(notices) - 1) - 0.05
    response.close()


async def test_a_disconnected_client_leaves_nothing_behind(
    client: aiohttp.ClientSession, store: StatusStore, clock: Clock
) -> None:
    tasks_before = len(asyncio.all_tasks())
    responses = [await client.get("/api/events") for _ in range(3)]
    await wait_for(lambda: store.listener_count == 3)
    for response in responses:
        response.close()
    # no change comes to make a write fail: the idle feeds notice on their own
    await wait_for(lambda: store.listener_count == 0, timeout=5)
    await wait_for(lambda: len(asyncio.all_tasks()) <= tasks_before, timeout=5)


async def test_shutdown_ends_open_event_streams_promptly(store: StatusStore) -> None:
    app = web.Application()
    add_status_routes(app, store)
    async with aiohttp.ClientSession() as session:
        async with serve_local(app) as server:
            response = await session.get(server.url("/api/events"))
            await wait_for(lambda: store.listener_count == 1)
            began = time.monotonic()
        # leaving serve_local ran the app's shutdown, with an open event stream
        assert time.monotonic() - began < 2
        assert store.listener_count == 0
        response.close()


async def test_event_clients_are_capped_with_503_and_retry_after(store: StatusStore) -> None:
    app = web.Application()
    add_status_routes(app, store, StatusSettings(max_sse_clients=3))
    async with serve_local(app) as server, aiohttp.ClientSession(server.url()) as client:
        # Five pages at once: three get the feed, two are told to come back later.
        responses = await asyncio.gather(*(client.get("/api/events") for _ in range(5)))
        accepted = [r for r in responses if r.status == 200]
        refused = [r for r in responses if r.status != 200]
        assert len(accepted) == 3
        for response in refused:
            assert response.status == 503
            assert response.headers["Retry-After"] == "30"
            assert response.headers["Content-Type"].startswith("application/json")
            assert (await response.json())["error"] == "too many live feed clients"
        await wait_for(lambda: store.listener_count == 3)
        # The JSON API is not capped, and the accepted feeds work.
        assert len((await get_json(client, "/api/streams"))["streams"]) == 2
        store.handle(started(ALPHA, "s1", store.now()))
        for response in accepted:
            assert json.loads((await read_event(response))["data"]) == {"streams": ["alpha"]}
        # A page that leaves frees its slot.
        accepted.pop().close()
        await wait_for(lambda: store.listener_count == 2, timeout=5)
        again = await client.get("/api/events")
        assert again.status == 200
        over = await client.get("/api/events")
        assert over.status == 503
        for response in [*accepted, again]:
            response.close()
        await wait_for(lambda: store.listener_count == 0, timeout=5)


async def test_event_client_cap_comes_from_the_environment(
    store: StatusStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the repository
    (tmp_path / ".env").write_text("STATUS_MAX_SSE_CLIENTS=0\n")  # 0: no live feed at all
    app = web.Application()
    add_status_routes(app, store)
    async with serve_local(app) as server, aiohttp.ClientSession(server.url()) as client:
        assert (await client.get("/api/events")).status == 503
        assert (await client.get("/api/streams")).status == 200


def test_status_settings_from_env() -> None:
    assert StatusSettings.from_env({}).max_sse_clients == DEFAULT_MAX_SSE_CLIENTS == 32
    assert StatusSettings.from_env({"STATUS_MAX_SSE_CLIENTS": " 8 "}).max_sse_clients == 8
    for bad in ("many", "-1", "2.5"):
        with pytest.raises(ConfigError, match="STATUS_MAX_SSE_CLIENTS"):
            StatusSettings.from_env({"STATUS_MAX_SSE_CLIENTS": bad})


async def wait_for(condition: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_failed_session_is_reported_in_the_list(
    client: aiohttp.ClientSession, store: StatusStore, clock: Clock
) -> None:
    store.handle(started(ALPHA, "s1", clock.now))
    store.handle(ended(ALPHA, "s1", clock.now + 9, "failure", failed_kinds=("startup",)))
    [alpha, _] = (await get_json(client, "/api/streams"))["streams"]
    assert (alpha["state"], alpha["last_outcome"]) == ("failed", "failure")
