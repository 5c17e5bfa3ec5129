"""Hostile platforms, playback side, proven with real sessions against a real origin.

Each scenario is one real session: the publisher feeds a real nginx-rtmp origin, and the
session plays it back through the chaos proxy, which turns the origin into a hostile
platform (a master of 5,000 variants, renditions whose BANDWIDTH changes on every refresh,
a run of 503 answers, TARGETDURATION:3600, blocking reloads answered at once). All
scenarios run at once on one origin. Every test asserts a clean, bounded outcome: what is
reported, how often, and nothing the hostility does not explain.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from streamer.events import (
    CheckFailed,
    FanOut,
    PlaybackAnomaly,
    RenditionDiscovered,
    RequestFailed,
    SegmentObserved,
    StreamLabels,
)
from streamer.playback.fetch import FetchPolicy
from streamer.playback.follower import UNHELD_BLOCKING_RELOAD
from streamer.playback.hls import RENDITIONS_OVER_CAP
from streamer.publish.flv import FlvClip
from streamer.session import Session, SessionSettings
from streamer.sinks.report import SessionReport
from streamer.testsignal.clip import Clip, ClipSpec
from tests.support.chaos import ChaosProxy, Fault, Freeze, InsertTag, Request, Status
from tests.support.nginx import NginxOrigin
from tests.support.session_run import Recorder

pytestmark = pytest.mark.e2e

LABELS = StreamLabels("e2e-hostile", "local", "local")
FETCH = FetchPolicy(timeout_seconds=1.5, connect_timeout_seconds=1.0)
VARIANTS = 5000


@dataclass
class ServeMaster(Fault):
    """Answers the (made-up) master path with a master playlist of its own making."""

    make: Callable[[ChaosProxy], str] = lambda proxy: ""

    async def apply(self, proxy: ChaosProxy, request: Request) -> Request | web.Response:
        return web.Response(text=self.make(proxy), content_type="application/vnd.apple.mpegurl")


@dataclass
class SetTargetDuration(Fault):
    """Rewrites EXT-X-TARGETDURATION (e.g. seconds written as milliseconds)."""

    seconds: int = 3600

    async def apply(self, proxy: ChaosProxy, request: Request) -> Request | web.Response:
        request.body = re.sub(
            rb"#EXT-X-TARGETDURATION:\d+", b"#EXT-X-TARGETDURATION:%d" % self.seconds, request.body
        )
        return request


def many_variants(key: str) -> list[Fault]:
    variants = "".join(
        f"#EXT-X-STREAM-INF:BANDWIDTH={900_000 + i},RESOLUTION=640x360\n{key}.m3u8?v={i}\n"
        for i in range(VARIANTS)
    )
    return [ServeMaster(f"{key}_master.m3u8", make=lambda _: "#EXTM3U\n" + variants)]


def churning_ladder(key: str) -> list[Fault]:
    def make(proxy: ChaosProxy) -> str:
        lines = ["#EXTM3U"]
        kept = ["a", "b"] if proxy.history.get(f"{key}.m3u8") else ["a", "b", "c"]
        for variant in kept:  # the same resolution, a new BANDWIDTH on every refresh
            bandwidth = random.randint(800_000, 1_000_000)
            lines += [f"#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},RESOLUTION=640x360"]
            lines += [f"{key}.m3u8?v={variant}"]
        return "\n".join(lines) + "\n"

    return [ServeMaster(f"{key}_master.m3u8", make=make)]


@dataclass(frozen=True)
class Scenario:
    faults: Callable[[str], list[Fault]]
    master: bool = False  # play `KEY_master.m3u8` (made up by a fault) instead of `KEY.m3u8`
    duration: float = 14.0
    allowed: frozenset[str] = frozenset()  # kinds the hostility explains


SCENARIOS: dict[str, Scenario] = {
    "many_variants": Scenario(many_variants, master=True),
    # The third variant leaves the master once the stream is live; the session must follow
    # it for a while, then retire its follower (15 s after it left).
    "churning_ladder": Scenario(
        churning_ladder, master=True, duration=24.0, allowed=frozenset({"rendition_missing"})
    ),
    "storm": Scenario(
        lambda key: [Status(f"{key}.m3u8", from_sequence=3, until_sequence=5, code=503)],
        # Nothing new is listed while the playlist fails.
        allowed=frozenset({"http_error", "stale_playlist"}),
    ),
    "absurd_target": Scenario(
        lambda key: [SetTargetDuration(f"{key}.m3u8"), Freeze(f"{key}.m3u8", from_sequence=3)],
        allowed=frozenset({"playlist_error", "stale_playlist"}),
    ),
    "unheld_blocking": Scenario(
        lambda key: [InsertTag(f"{key}.m3u8", tag="#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES")]
    ),
}


@dataclass
class Run:
    recorder: Recorder
    report: dict[str, Any]
    session: Session
    playlist_requests: int
    seconds: float
    followers: set[str] = field(default_factory=set)

    @property
    def failures(self) -> list[CheckFailed]:
        return self.recorder.of(CheckFailed)

    @property
    def kinds(self) -> set[str]:
        return {f.kind for f in self.failures}

    def summary(self) -> list[tuple[str, str | None, str]]:
        return [(f.kind, f.rendition, f.detail) for f in self.failures]


async def _run(scenario: Scenario, origin: NginxOrigin, flv: FlvClip, spec: ClipSpec) -> Run:
    key = "hostile" + uuid.uuid4().hex[:12]
    upstream = f"http://127.0.0.1:{origin.http_port}"
    async with ChaosProxy(upstream, scenario.faults(key)) as proxy:
        name = f"{key}_master.m3u8" if scenario.master else f"{key}.m3u8"
        settings = SessionSettings(
            labels=LABELS,
            ingest_url=origin.ingest_url(key),
            playback_url=proxy.url(f"/hls/{name}"),
            duration_seconds=scenario.duration,
            drain_timeout_seconds=3.0,
            startup_timeout_seconds=15.0,
            fetch=FETCH,
        )
        recorder, report = Recorder(), SessionReport()
        started = time.monotonic()
        session = Session(settings, flv, spec, FanOut([recorder, report]))
        await session.run()
        return Run(
            recorder,
            report.document(),
            session,
            proxy.requests.get(f"{key}.m3u8", 0),
            time.monotonic() - started,
            set(session.playback.renditions() if session.playback else ()),
        )


async def _run_all(origin: NginxOrigin, flv: FlvClip, spec: ClipSpec) -> dict[str, Run]:
    names = list(SCENARIOS)
    runs = await asyncio.gather(*(_run(SCENARIOS[name], origin, flv, spec) for name in names))
    return dict(zip(names, runs, strict=True))


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxOrigin]:
    with NginxOrigin(Path(tmp_path_factory.mktemp("hostile"))) as nginx:
        yield nginx


@pytest.fixture(scope="module")
def runs(origin: NginxOrigin, flv: FlvClip, clip: Clip) -> dict[str, Run]:
    return asyncio.run(_run_all(origin, flv, clip.spec))


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_hostility_causes_nothing_it_does_not_explain(runs: dict[str, Run], scenario: str) -> None:
    run = runs[scenario]
    assert run.kinds <= SCENARIOS[scenario].allowed, run.summary()
    assert run.recorder.of(SegmentObserved), "the stream was measured all the same"


def test_a_master_of_5000_variants_is_capped(runs: dict[str, Run]) -> None:
    run = runs["many_variants"]
    discovered = [e.rendition for e in run.recorder.of(RenditionDiscovered)]
    assert len(discovered) == len(set(discovered)) == 16, discovered
    assert discovered[:2] == ["640x360", "640x360-2"]
    (anomaly,) = run.recorder.of(PlaybackAnomaly)
    assert anomaly.anomaly == RENDITIONS_OVER_CAP and anomaly.rendition is None
    assert run.report["outcome"] == "success", run.summary()


def test_renditions_whose_bandwidth_changes_keep_their_followers(runs: dict[str, Run]) -> None:
    run = runs["churning_ladder"]
    discovered = [e.rendition for e in run.recorder.of(RenditionDiscovered)]
    assert discovered == ["640x360", "640x360-2", "640x360-3"]  # once each, whatever BANDWIDTH
    # The variant that left the master: reported missing once, its follower retired.
    missing = [f for f in run.failures if f.kind == "rendition_missing" and f.rendition]
    assert [f.rendition for f in missing] == ["640x360-3"], run.summary()
    assert run.followers == {"640x360", "640x360-2"}


def test_a_503_storm_is_one_error_with_a_count_and_a_duration(runs: dict[str, Run]) -> None:
    run = runs["storm"]
    errors = [f for f in run.failures if f.kind == "http_error"]
    assert [f.detail for f in errors[:1]] == ["media playlist: HTTP 503"], run.summary()
    (summary,) = errors[1:]
    match = re.fullmatch(
        r"media playlist: HTTP 503 x (\d+) over ([\d.]+) s, then recovered", summary.detail
    )
    assert match, summary.detail
    count, span = int(match.group(1)), float(match.group(2))
    # Every failed request counted, for the metric, though only two events say so.
    failed = run.recorder.of(RequestFailed)
    assert len(failed) == count >= 3
    assert all(
        (f.kind, f.source, f.rendition) == ("http_error", "media playlist", "source")
        for f in failed
    )
    # Backing off: at most about two requests a second while it lasts (after the first
    # failure's own retries).
    assert count <= 3 + 2 * span, (count, span)


def test_an_absurd_target_duration_is_reported_once_and_stalls_are_still_seen(
    runs: dict[str, Run],
) -> None:
    run = runs["absurd_target"]
    reports = [f.detail for f in run.failures if f.kind == "playlist_error"]
    assert len(reports) == 1 and "TARGETDURATION 3600s is far above" in reports[0], reports
    (stall,) = [f for f in run.failures if f.kind == "stale_playlist"]
    limit = float(re.search(r"limit ([\d.]+)s", stall.detail).group(1))  # type: ignore[union-attr]
    assert limit <= 4.5, stall.detail  # 1.5 x a 2-3 s working target, not 1.5 x 3600 s
    last = max(e.listed_at for e in run.recorder.of(SegmentObserved))
    assert stall.at - last <= limit + 0.5, (stall.at - last, stall.detail)


def test_blocking_reloads_answered_at_once_are_counted_not_hammered(runs: dict[str, Run]) -> None:
    run = runs["unheld_blocking"]
    assert run.report["outcome"] == "success", run.summary()
    anomalies = [e.anomaly for e in run.recorder.of(PlaybackAnomaly)]
    assert anomalies == [UNHELD_BLOCKING_RELOAD] * 3
    # Before: thousands of requests a second. Now: a plain poller's few per segment.
    assert run.playlist_requests <= 10 * run.seconds, (run.playlist_requests, run.seconds)
