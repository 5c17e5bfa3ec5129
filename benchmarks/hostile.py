"""Benchmark: the monitor stays responsive while one stream's platform is hostile.

Two runs on one real nginx-rtmp origin (copy path), each with eight healthy sessions:

- baseline: the healthy sessions alone;
- hostile: the same, plus one session that publishes to the origin but plays from a hostile
  server on loopback. Its master lists 5,000 variants; of the 16 followed (the cap), half
  claim CAN-BLOCK-RELOAD=YES and answer every blocking request at once, half are 1 MiB media
  playlists (about 36,000 segments) that change on every request, listing segments that
  404. The monitor's side runs in one event loop, as in `streamer monitor`; the hostile
  server runs in a process of its own, like a remote platform.

Measured in each run:

- event-loop lag: a timer due every 10 ms in the monitor's loop, and how late each wake-up
  came against its schedule (p99 and max): what every stream's polling and timing feels;
- the healthy streams' listed-time error against the origin's own playlist write times
  (benchmarks/truth.py): hostile must equal baseline, within noise.

Without the fixes, the same hostile server made the follower send 2,538 requests a second
and stalled the loop for about a second per 1 MiB playlist parsed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from tests.support.nginx import NginxOrigin
from tests.support.ports import free_port, wait_for_port
from tests.support.session_run import Recorder

from benchmarks.common import LABELS, REPO, clip, new_key, percentile, summary
from benchmarks.table import Figure, Target
from benchmarks.truth import PlaylistTruth
from streamer.events import (
    CheckFailed,
    FanOut,
    PlaybackAnomaly,
    RenditionDiscovered,
    RequestFailed,
)
from streamer.playback.playlist import MAX_PLAYLIST_BYTES
from streamer.session import Session, SessionSettings

# Eight: about 60 segments a run, so that a p95 is not one stream's single slow poll
# (with three, 24 segments, it swung from -46 to +32 ms between runs).
HEALTHY_STREAMS = 8
VARIANTS = 5000
TICK = 0.01
LAG_P99_TARGET_MS = 50.0
LAG_MAX_TARGET_MS = 250.0
ACCURACY_TOLERANCE_MS = 20.0  # p95 of the healthy streams' listed-time error, hostile - baseline


class LoopLag:
    """How late a periodic timer wakes up in the event loop it runs in."""

    def __init__(self, period: float = TICK) -> None:
        self.period = period
        self.lags: list[float] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.period
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            now = loop.time()
            self.lags.append(now - due)
            due = max(due + self.period, now)  # late wake-ups do not pile up


@dataclass
class HostileServer:
    """The hostile platform: a huge master, unheld blocking reloads, 1 MiB playlists."""

    requests: Counter[str] = field(default_factory=Counter)
    _sequence: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/stats", self._stats)
        app.router.add_get("/master.m3u8", self._master)
        app.router.add_get("/blocking/{n}.m3u8", self._blocking)
        app.router.add_get("/big/{n}.m3u8", self._big)
        app.router.add_get("/{tail:.*}", self._missing)
        return app

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.requests))

    async def _master(self, request: web.Request) -> web.Response:
        self.requests["master"] += 1
        lines = ["#EXTM3U"]
        for i in range(VARIANTS):
            kind = "blocking" if i % 2 == 0 else "big"
            lines += [f"#EXT-X-STREAM-INF:BANDWIDTH={100_000 + i},RESOLUTION=640x360"]
            lines += [f"{kind}/{i}.m3u8"]
        return web.Response(text="\n".join(lines) + "\n")

    async def _blocking(self, request: web.Request) -> web.Response:
        self.requests["blocking"] += 1
        return web.Response(
            text="#EXTM3U\n#EXT-X-TARGETDURATION:2\n"
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES\n"
            "#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.000,\nseg/0.ts\n"
        )

    async def _big(self, request: web.Request) -> web.Response:
        self.requests["big"] += 1
        self._sequence += 1  # a new version on every request: parsed every time
        head = f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{self._sequence}\n"
        one = "#EXTINF:2.000,\nseg/s.ts\n"
        count = (MAX_PLAYLIST_BYTES - len(head) - 64) // len(one)
        return web.Response(text=head + one * count)

    async def _missing(self, request: web.Request) -> web.Response:
        self.requests["other"] += 1
        return web.Response(status=404)


def _serve(port: int) -> None:
    web.run_app(HostileServer().app(), host="127.0.0.1", port=port, print=None, access_log=None)


@contextlib.contextmanager
def hostile_server() -> Iterator[int]:
    """The hostile server in a process of its own; yields its port."""
    port = free_port()
    code = f"from benchmarks.hostile import _serve; _serve({port})"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env)
    try:
        wait_for_port(port, timeout=30)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=5)


@dataclass
class RunResult:
    name: str
    lags_ms: list[float]
    errors_ms: list[float]  # healthy streams: listed time - origin's write time
    seconds: float
    hostile: dict[str, Any] = field(default_factory=dict)


def _healthy_settings(origin: NginxOrigin, key: str, seconds: float) -> SessionSettings:
    return SessionSettings(
        labels=LABELS,
        ingest_url=origin.ingest_url(key),
        playback_url=origin.playback_url(key),
        duration_seconds=seconds,
    )


async def _run(name: str, origin: NginxOrigin, seconds: float, hostile: bool) -> RunResult:
    keys = [new_key("healthy") for _ in range(HEALTHY_STREAMS)]
    truth = PlaylistTruth(origin.hls_dir).only({f"{k}.m3u8" for k in keys}).start()
    recorders = [Recorder() for _ in keys]
    lag = LoopLag()
    hostile_recorder = Recorder()
    served: dict[str, int] = {}
    with contextlib.ExitStack() as stack:
        port = stack.enter_context(hostile_server()) if hostile else 0
        lag_task = asyncio.create_task(lag.run())
        started = time.monotonic()
        try:
            await _sessions(origin, keys, recorders, hostile_recorder, port, seconds)
            if hostile:
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(f"http://127.0.0.1:{port}/stats") as response,
                ):
                    served = await response.json()
        finally:
            lag_task.cancel()
            truth.stop()
    elapsed = time.monotonic() - started
    errors: list[float] = []
    for key, recorder in zip(keys, recorders, strict=True):
        for event in recorder.segments:
            listed = truth.listed_at(f"{key}.m3u8", event.sequence)
            if listed is not None:
                errors.append((event.listed_at - listed) * 1000)
    result = RunResult(name, [x * 1000 for x in lag.lags], errors, elapsed)
    if hostile:
        failures = Counter(e.kind for e in hostile_recorder.of(CheckFailed))
        result.hostile = {
            "server_requests": served,
            "server_requests_per_second": round(sum(served.values()) / elapsed, 1),
            "renditions_followed": len(hostile_recorder.of(RenditionDiscovered)),
            "failed_requests_counted": len(hostile_recorder.of(RequestFailed)),
            "failures_reported": dict(failures),
            "anomalies": dict(Counter(e.anomaly for e in hostile_recorder.of(PlaybackAnomaly))),
        }
    return result


async def _sessions(
    origin: NginxOrigin,
    keys: list[str],
    recorders: list[Recorder],
    hostile_recorder: Recorder,
    hostile_port: int,
    seconds: float,
) -> None:
    spec, flv, _ = clip()
    sessions = [
        Session(_healthy_settings(origin, key, seconds), flv, spec, recorder)
        for key, recorder in zip(keys, recorders, strict=True)
    ]
    if hostile_port:
        settings = SessionSettings(
            labels=LABELS,
            ingest_url=origin.ingest_url(new_key("hostile")),
            playback_url=f"http://127.0.0.1:{hostile_port}/master.m3u8",
            duration_seconds=seconds,
            drain_timeout_seconds=2.0,
        )
        sessions.append(Session(settings, flv, spec, FanOut([hostile_recorder])))
    await asyncio.gather(*(s.run() for s in sessions))


async def run(workdir: Path, quick: bool = False) -> list[Figure]:
    workdir.mkdir(parents=True, exist_ok=True)
    seconds = 12.0 if quick else 18.0
    origin = NginxOrigin(workdir / "origin").start()
    try:
        baseline = await _run("baseline", origin, seconds, hostile=False)
        hostile = await _run("hostile", origin, seconds, hostile=True)
    finally:
        origin.stop()
    return figures(baseline, hostile)


def figures(baseline: RunResult, hostile: RunResult) -> list[Figure]:
    details = {
        "baseline": {
            "loop_lag_ms": summary(baseline.lags_ms),
            "listed_error_ms": summary(baseline.errors_ms),
        },
        "hostile": {
            "loop_lag_ms": summary(hostile.lags_ms),
            "listed_error_ms": summary(hostile.errors_ms),
            **hostile.hostile,
        },
        "healthy_streams": HEALTHY_STREAMS,
        "tick_ms": TICK * 1000,
    }
    p95_base = percentile(baseline.errors_ms, 95)
    p95_hostile = percentile(hostile.errors_ms, 95)
    shift = p95_hostile - p95_base if not math.isnan(p95_base + p95_hostile) else None
    what = "a 5,000-variant master, unheld blocking reloads and 1 MiB playlists"
    return [
        Figure(
            "hostile",
            "event-loop lag p99 while one stream is hostile",
            percentile(hostile.lags_ms, 99),
            "ms",
            Target("<=", LAG_P99_TARGET_MS),
            percentile(baseline.lags_ms, 99),
            "same streams, none hostile",
            note=f"One stream of {HEALTHY_STREAMS + 1} plays from a server serving {what}; "
            "a timer due every 10 ms in the monitor's event loop, lateness of its wake-ups.",
            details=details,
        ),
        Figure(
            "hostile",
            "event-loop lag max while one stream is hostile",
            max(hostile.lags_ms, default=math.nan),
            "ms",
            Target("<=", LAG_MAX_TARGET_MS),
            max(baseline.lags_ms, default=math.nan),
            "same streams, none hostile",
        ),
        Figure(
            "hostile",
            "healthy streams' listed-time error p95: change with a hostile stream",
            shift,
            "ms",
            Target("<=", ACCURACY_TOLERANCE_MS),
            p95_base,
            "p95 without the hostile stream",
            note="Listed time minus the origin's own playlist write time, every segment of "
            f"the {HEALTHY_STREAMS} healthy streams ({len(baseline.errors_ms)} and "
            f"{len(hostile.errors_ms)} segments); measured minus baseline p95.",
        ),
    ]
