"""/healthz: 200 while every stream's loop makes progress, 503 once one is stuck."""

from __future__ import annotations

import time

from aiohttp.test_utils import TestClient, TestServer

from streamer.config import MonitorConfig
from streamer.events import FanOut
from streamer.monitor import Monitor
from streamer.sinks.metrics import MetricsSink
from streamer.web.server import build_app


def _monitor() -> Monitor:
    config = MonitorConfig.model_validate(
        {
            "streams": [
                {
                    "name": "s",
                    "duration": "30s",
                    "grace_period": "10s",
                    "injest_url": "rtmp://h/live/k",
                    "playback_url": "http://h/a.m3u8",
                }
            ]
        }
    )
    metrics = MetricsSink()
    return Monitor(config, FanOut([metrics]), metrics)


async def test_healthz_turns_503_when_a_stream_loop_is_stuck() -> None:
    monitor = _monitor()
    app = build_app(MetricsSink().registry, monitor.healthy)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/healthz")).status == 200  # nothing started yet
        monitor._progress["s"] = time.monotonic()
        assert (await client.get("/healthz")).status == 200
        # Longer than a session, its grace, start-up, drain and connect could ever take.
        monitor._progress["s"] = time.monotonic() - 1000
        response = await client.get("/healthz")
        assert response.status == 503
        assert "'s'" in (await response.json())["detail"]
        assert (await client.get("/readyz")).status == 200
