"""Benchmark 3: how long after a fault the monitor reports it.

Each fault is injected by the chaos proxy (tests/support/chaos.py) between a real session
and a real nginx-rtmp origin, from segment 5 on (the follower has locked on to the segment
rhythm by then). The four sessions run at the same time: three on the copy path, one on the
transcode ladder (a rendition can only be dropped from a master playlist).

- frozen playlist: the proxy keeps serving one version; measured from when the origin
  published the newest segment that version lists (ground truth: the playlist's mtime) to
  the `stale_playlist` event.
- 503 on the media playlist, 404 on segments: from the proxy's first failed answer to the
  `http_error` event (the fetcher retries twice first, 0.25 s and 0.5 s apart).
- rendition dropped from the master: from the proxy's first master without it to the
  `rendition_missing` event (and, in the JSON, from the fault's onset: the session
  re-reads the master every 5 s).

Baseline: the Livepeer stream tester gives up on a stream after 32 s without a new segment.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.chaos import ChaosProxy, DropVariant, Fault, Freeze, Request, Status
from tests.support.nginx import NginxOrigin
from tests.support.session_run import Recorder

from benchmarks.common import LABELS, clip, new_key
from benchmarks.table import Figure, Target
from benchmarks.truth import PlaylistTruth
from streamer.events import CheckFailed
from streamer.events import FanOut as Fan
from streamer.playback.fetch import FetchPolicy
from streamer.playback.poller import PollScheduler
from streamer.session import Session, SessionSettings

FROM_SEQUENCE = 5
TARGET_DURATION = 2.0
STREAM_TESTER_LIMIT = 32.0
STALE_FACTOR = 1.5  # stale_playlist's default


def _retry_budget(policy: FetchPolicy) -> float:
    return sum(policy.retry_delay_seconds * attempt for attempt in range(1, policy.retries + 1))


def _poll_interval() -> float:
    """The follower's slowest poll while a segment is overdue."""
    scheduler = PollScheduler(TARGET_DURATION)
    return scheduler.max_step_fraction * TARGET_DURATION


@dataclass
class _Timed:
    """The time of the first answer a fault changed."""

    first_at: float | None = None

    def mark(self) -> None:
        if self.first_at is None:
            self.first_at = time.time()


@dataclass
class TimedStatus(Status):
    timing: _Timed = field(default_factory=_Timed)

    async def apply(self, proxy: ChaosProxy, request: Request) -> Any:
        self.timing.mark()
        return await super().apply(proxy, request)


@dataclass
class TimedFreeze(Freeze):
    timing: _Timed = field(default_factory=_Timed)
    frozen_newest: int | None = None

    async def apply(self, proxy: ChaosProxy, request: Request) -> Any:
        self.timing.mark()
        if self.frozen_newest is None:
            self.frozen_newest = request.progress
        return await super().apply(proxy, request)


@dataclass
class TimedDrop(DropVariant):
    timing: _Timed = field(default_factory=_Timed)

    async def apply(self, proxy: ChaosProxy, request: Request) -> Any:
        self.timing.mark()
        return await super().apply(proxy, request)


@dataclass
class Scenario:
    name: str
    kind: str  # the failure kind that must be reported
    rendition: str | None
    ladder: bool
    key: str
    fault: Fault
    timing: _Timed
    recorder: Recorder = field(default_factory=Recorder)
    truth: PlaylistTruth | None = None


async def _session(scenario: Scenario, origin: NginxOrigin, seconds: float) -> None:
    spec, flv, _ = clip()
    upstream = f"http://127.0.0.1:{origin.http_port}"
    async with ChaosProxy(upstream, [scenario.fault]) as proxy:
        settings = SessionSettings(
            labels=LABELS,
            ingest_url=origin.ingest_url(scenario.key),
            playback_url=proxy.url(f"/hls/{scenario.key}.m3u8"),
            duration_seconds=seconds,
        )
        await Session(settings, flv, spec, Fan([scenario.recorder])).run()


def _scenarios() -> list[Scenario]:
    out = []
    key = new_key("frz")
    freeze = TimedFreeze(f"{key}.m3u8", from_sequence=FROM_SEQUENCE)
    out.append(
        Scenario("frozen playlist", "stale_playlist", "source", False, key, freeze, freeze.timing)
    )
    key = new_key("pl503")
    status = TimedStatus(f"{key}.m3u8", from_sequence=FROM_SEQUENCE, code=503)
    out.append(
        Scenario(
            "503 on the media playlist", "http_error", "source", False, key, status, status.timing
        )
    )
    key = new_key("seg404")
    status = TimedStatus(f"{key}.m3u8", on="segment", from_sequence=FROM_SEQUENCE, code=404)
    out.append(
        Scenario("404 on segments", "http_error", "source", False, key, status, status.timing)
    )
    key = new_key("drop")
    drop = TimedDrop(f"{key}.m3u8", from_sequence=FROM_SEQUENCE, uri_contains="_144p")
    out.append(
        Scenario(
            "rendition dropped from the master",
            "rendition_missing",
            "256x144",
            True,
            key,
            drop,
            drop.timing,
        )
    )
    return out


def _first_report(scenario: Scenario) -> CheckFailed | None:
    for event in scenario.recorder.of(CheckFailed):
        if event.kind == scenario.kind and (
            scenario.rendition is None or event.rendition in (scenario.rendition, None)
        ):
            return event  # type: ignore[no-any-return]
    return None


async def run(workdir: Path, quick: bool = False) -> list[Figure]:
    workdir.mkdir(parents=True, exist_ok=True)
    seconds = 24.0
    scenarios = _scenarios()
    copy = NginxOrigin(workdir / "copy").start()
    ladder = NginxOrigin(workdir / "ladder", ladder=True).start()
    try:
        for scenario in scenarios:
            origin = ladder if scenario.ladder else copy
            names = (
                {f"{scenario.key}_360p.m3u8", f"{scenario.key}_144p.m3u8"}
                if scenario.ladder
                else {f"{scenario.key}.m3u8"}
            )
            scenario.truth = PlaylistTruth(origin.hls_dir).only(names).start()
        await asyncio.gather(
            *(_session(s, ladder if s.ladder else copy, seconds) for s in scenarios)
        )
    finally:
        for scenario in scenarios:
            if scenario.truth is not None:
                scenario.truth.stop()
        copy.stop()
        ladder.stop()
    return figures(scenarios)


def figures(scenarios: list[Scenario]) -> list[Figure]:
    policy = FetchPolicy()
    retries = _retry_budget(policy)
    poll = _poll_interval()
    out = []
    for scenario in scenarios:
        report = _first_report(scenario)
        details: dict[str, Any] = {
            "reported": f"{report.kind}: {report.detail}" if report else None,
            "first_faulty_answer_at": scenario.timing.first_at,
            "other_failures": sorted(
                {e.kind for e in scenario.recorder.of(CheckFailed)} - {scenario.kind}
            ),
        }
        measured: float | None = None
        note = ""
        if scenario.kind == "stale_playlist":
            limit = STALE_FACTOR * TARGET_DURATION + poll
            target = Target(
                "<=",
                limit,
                text=f"≤ {limit:g} s (1.5 x {TARGET_DURATION:g} s + {poll:g} s poll)",
            )
            fault = scenario.fault
            assert isinstance(fault, TimedFreeze)
            last = fault.frozen_newest
            listed = (
                scenario.truth.listed_at(f"{scenario.key}.m3u8", last)
                if scenario.truth is not None and last is not None
                else None
            )
            details["last_segment"] = last
            if report is not None and listed is not None:
                measured = report.at - listed
            label = "frozen playlist: after the last segment"
        else:
            limit = TARGET_DURATION + retries
            target = Target(
                "<=",
                limit,
                text=f"≤ {limit:g} s ({TARGET_DURATION:g} s + {retries:g} s retries)",
            )
            if report is not None and scenario.timing.first_at is not None:
                measured = report.at - scenario.timing.first_at
            label = f"{scenario.name}: after the first failed request"
            if scenario.kind == "rendition_missing":
                onset = None
                if scenario.truth is not None:
                    onset = min(
                        (
                            listed.get(FROM_SEQUENCE, math.inf)
                            for listed in scenario.truth.first_listed.values()
                        ),
                        default=None,
                    )
                if report is not None and onset is not None and math.isfinite(onset):
                    details["after_fault_onset_seconds"] = report.at - onset
                note = (
                    "The proxy drops the variant from segment 5 on, but the session reads the "
                    "master only every 5 s: from the fault's onset the report can take up to "
                    "5 s more (see after_fault_onset_seconds in the JSON)."
                )
        out.append(
            Figure(
                "detection",
                label,
                measured,
                "s",
                target,
                STREAM_TESTER_LIMIT,
                "stream tester: 32 s without a new segment",
                note=note if report is not None else f"not reported: no {scenario.kind} event",
                details=details,
            )
        )
    return out
