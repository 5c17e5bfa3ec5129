"""/healthz and /readyz of the monitor: what Kubernetes' probes see.

/healthz: 200 while every stream's loop runs and makes progress and the embedded origin
serves; 503 naming the stream (or the origin) otherwise. /readyz: 200 once every stream
loop has started.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from streamer.config import MonitorConfig
from streamer.events import FanOut
from streamer.livepeer.mode import api_mode
from streamer.monitor import Monitor
from streamer.sinks.metrics import MetricsSink
from streamer.testsignal.clip import Clip, ClipSpec
from streamer.web.server import build_app
from tests.support.fake_livepeer import FakeLivepeer

# Nothing listens on port 1: sessions fail at once, which is all these tests need.
INGEST = "rtmp://127.0.0.1:1/live/unit-secret-key-0001"
PLAYBACK = "http://127.0.0.1:1/a.m3u8"
# A clip unlike any other test's, so that no cache (on disk or in the process) has it.
ODD_CLIP = {"bitrate": 777_000}


def _stream(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "duration": "30s",
        "grace_period": "1s",
        "injest_url": INGEST,
        "playback_url": PLAYBACK,
        **extra,
    }


def _monitor(*streams: dict[str, Any], components: Any = (), env: Any = None) -> Monitor:
    config = MonitorConfig.model_validate({"streams": list(streams)})
    metrics = MetricsSink()
    modes = {s.name: m for s in config.streams if (m := api_mode(s, env or {})) is not None}
    return Monitor(config, FanOut([metrics]), metrics, modes, components=components)


def _client(monitor: Monitor) -> TestClient[Any, Any]:
    app = build_app(MetricsSink().registry, monitor.healthy, monitor.ready)
    return TestClient(TestServer(app))


@pytest.fixture
def cache_dir(tmp_path: Path, clip: Clip, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clip cache with the default clip, and a corrupt entry for ODD_CLIP's clip."""
    directory = tmp_path / "cache"
    directory.mkdir()
    shutil.copy(clip.path, directory / clip.path.name)
    odd = ClipSpec(video_bitrate=ODD_CLIP["bitrate"])
    (directory / clip.path.name.replace(clip.spec.cache_key(), odd.cache_key())).write_bytes(
        b"not an mp4 file"
    )
    monkeypatch.setenv("STREAMER_CACHE_DIR", str(directory))
    return directory


async def _until(condition: Any, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def test_healthz_turns_503_when_a_stream_loop_is_stuck() -> None:
    monitor = _monitor(_stream("s"))
    async with _client(monitor) as client:
        assert (await client.get("/healthz")).status == 200  # nothing started yet
        monitor._progress["s"] = time.monotonic()
        assert (await client.get("/healthz")).status == 200
        # Longer than a session, its grace, start-up, drain and connect could ever take.
        monitor._progress["s"] = time.monotonic() - 1000
        response = await client.get("/healthz")
        assert response.status == 503
        assert "'s'" in (await response.json())["detail"]


async def test_a_dead_stream_loop_is_named_while_the_others_run(cache_dir: Path) -> None:
    monitor = _monitor(_stream("good"), _stream("broken", clip=ODD_CLIP))
    async with _client(monitor) as client:
        ready = await client.get("/readyz")
        assert ready.status == 503  # no loop has started yet
        assert "starting" in (await ready.json())["detail"]
        run = asyncio.create_task(monitor.run())
        try:
            await _until(lambda: "broken" in monitor.stopped and "good" in monitor._started)
            health = await client.get("/healthz")
            assert health.status == 503
            detail = (await health.json())["detail"]
            assert "stream 'broken' stopped" in detail and "InvalidDataError" in detail
            assert "'good'" not in detail
            ready = await client.get("/readyz")
            assert ready.status == 503 and "'broken'" in (await ready.json())["detail"]
            await asyncio.sleep(1.5)
            assert not run.done()  # the good stream goes on, session after session
            assert list(monitor.stopped) == ["broken"]
        finally:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)


async def test_run_returns_once_no_stream_loop_is_left(cache_dir: Path) -> None:
    monitor = _monitor(_stream("a", clip=ODD_CLIP), _stream("b", clip=ODD_CLIP))
    async with asyncio.timeout(30):
        await monitor.run()
    assert sorted(monitor.stopped) == ["a", "b"]
    ok, detail = monitor.healthy()
    assert not ok and "'a'" in detail and "'b'" in detail
    assert "unit-secret-key" not in detail


async def test_readyz_once_every_stream_loop_started(cache_dir: Path) -> None:
    monitor = _monitor(_stream("one"), _stream("two"))
    async with _client(monitor) as client:
        run = asyncio.create_task(monitor.run())
        try:
            await _until(lambda: monitor.ready()[0])
            ready = await client.get("/readyz")
            assert ready.status == 200
            assert (await ready.json()) == {"ready": True, "detail": "ok"}
            assert (await client.get("/healthz")).status == 200
        finally:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)


async def test_a_component_that_is_down_fails_healthz() -> None:
    state = {"up": True}

    def origin() -> tuple[bool, str]:
        return (True, "ok") if state["up"] else (False, "embedded origin down: killed by SIGKILL")

    monitor = _monitor(_stream("s"), components=[origin])
    async with _client(monitor) as client:
        assert (await client.get("/healthz")).status == 200
        state["up"] = False
        response = await client.get("/healthz")
        assert response.status == 503
        assert (await response.json())["detail"] == "embedded origin down: killed by SIGKILL"
        state["up"] = True
        assert (await client.get("/healthz")).status == 200


async def test_hostile_api_answers_at_start_up_stop_no_stream(cache_dir: Path) -> None:
    """Nested JSON during the start-up clean-up of leftovers is an api_error; the stream
    starts anyway, and so does every other."""
    async with FakeLivepeer(api_key="k", ingest_base="rtmp://127.0.0.1:1/live") as fake:
        fake.fail_next("list_streams", status=200, body="[" * 100_000 + "]" * 100_000)
        api = {"livepeer": {"api_url": fake.api_url, "api_key": "k"}, "grace_period": "1s"}
        monitor = _monitor(
            {"name": "api", "duration": "30s", **api},
            _stream("fixed"),
            env={"LIVEPEER_API_KEY": "k"},
        )
        run = asyncio.create_task(monitor.run())
        try:
            await _until(lambda: monitor.ready()[0])
            assert monitor.healthy() == (True, "ok")
            errors = monitor._metrics.registry.get_sample_value(
                "streamer_errors_total",
                {"stream": "api", "kind": "api_error", "rendition": ""}
                | {"ingest_region": "unknown", "playback_region": "unknown"}
                | {"ingest_protocol": "rtmp", "playback_protocol": "hls"},
            )
            assert errors == 1
        finally:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
