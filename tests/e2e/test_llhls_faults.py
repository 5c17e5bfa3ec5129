"""Every LL-HLS failure kind, proven against the embedded origin's LL-HLS with the fault
injected by the chaos proxy; and the faults that must stay counted, never failing.

One real session per scenario, one after another (each publishes to the origin, which
transcodes it: running them at once would measure the machine's load instead). Each test
asserts one scenario's events: the kind, for the rendition the fault hit, and nothing the
fault does not explain.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from streamer.events import CheckFailed, PartObserved, PlaybackAnomaly, StreamLabels
from streamer.playback.follower import UNHELD_BLOCKING_RELOAD
from streamer.playback.llhls import HINT_NOT_LISTED
from streamer.publish.flv import FlvClip
from streamer.session import SessionSettings
from streamer.testsignal.clip import Clip, ClipSpec
from tests.support.chaos import (
    ChaosProxy,
    DelayBlocking,
    FailOnePart,
    Fault,
    FreezeParts,
    Rewrite,
)
from tests.support.embedded_origin import Origin, start_origin, stop_origin
from tests.support.session_run import Recorder, run_session

pytestmark = pytest.mark.e2e

LABELS = StreamLabels("e2e-llhls-faults", "local", "local")
HIGH, LOW = "640x360", "256x144"
HIGH_PLAYLIST, LOW_PLAYLIST = "/ll/360p/index.m3u8", "/ll/144p/index.m3u8"


@dataclass(frozen=True)
class Scenario:
    faults: Callable[[], list[Fault]]
    allowed: frozenset[str] = frozenset()  # kinds the fault explains
    ignore_blocking: bool = False
    duration: float = 10.0


SCENARIOS = {
    "healthy": Scenario(list),
    "frozen_parts": Scenario(
        lambda: [FreezeParts(HIGH_PLAYLIST, after_seconds=5.0, for_seconds=1.4)],
        # A freeze that long may also delay a segment past stale_playlist's limit.
        frozenset({"part_late", "stale_playlist"}),
    ),
    "held_reload": Scenario(
        lambda: [DelayBlocking(HIGH_PLAYLIST, after_seconds=3.0, responses=1, seconds=7.0)],
        frozenset({"blocking_reload_violation", "part_late", "stale_playlist", "rendition_drift"}),
        duration=16.0,
    ),
    "hints": Scenario(
        lambda: [
            # A part, hinted then listed, is never served.
            FailOnePart("/ll/360p/part_", after_seconds=5.0),
            # Hints that name parts never made: allowed by the spec, counted.
            Rewrite(LOW_PLAYLIST, pattern=r'PRELOAD-HINT:TYPE=PART,URI="', replacement=r"\g<0>x"),
        ],
        frozenset({"preload_hint_miss"}),
    ),
    "part_rules": Scenario(
        lambda: [
            Rewrite(HIGH_PLAYLIST, pattern=r"PART-HOLD-BACK=[0-9.]+,?", replacement=""),
            Rewrite(
                LOW_PLAYLIST,
                after_seconds=5.0,
                pattern=r"#EXT-X-PART:DURATION=[0-9.]+",
                replacement="#EXT-X-PART:DURATION=0.60000",
            ),
        ],
        frozenset({"playlist_error", "part_duration_mismatch"}),
    ),
    "part_inf": Scenario(
        lambda: [
            Rewrite(HIGH_PLAYLIST, pattern=r"#EXT-X-PART-INF:[^\n]*\n", replacement=""),
            Rewrite(
                LOW_PLAYLIST, pattern=r"PART-HOLD-BACK=[0-9.]+", replacement="PART-HOLD-BACK=0.5"
            ),
        ],
        frozenset({"playlist_error"}),
    ),
    "ignored_blocking": Scenario(list, ignore_blocking=True),
}


@dataclass
class Run:
    recorder: Recorder
    report: dict[str, Any]
    requests: dict[str, int] = field(default_factory=dict)

    @property
    def failures(self) -> list[CheckFailed]:
        return self.recorder.of(CheckFailed)

    @property
    def kinds(self) -> set[str]:
        return {f.kind for f in self.failures}

    def anomalies(self, rendition: str) -> list[str]:
        return [a.anomaly for a in self.recorder.of(PlaybackAnomaly) if a.rendition == rendition]

    def parts(self, rendition: str) -> list[PartObserved]:
        return [p for p in self.recorder.of(PartObserved) if p.rendition == rendition]

    def summary(self) -> list[tuple[str, str | None, str]]:
        return [(f.kind, f.rendition, f.detail) for f in self.failures]

    def reported(self, kind: str, rendition: str | None, fragment: str = "") -> bool:
        return any(
            fragment in f.detail
            for f in self.failures
            if f.kind == kind and f.rendition == rendition
        )


async def run_scenario(scenario: Scenario, origin: Origin, flv: FlvClip, spec: ClipSpec) -> Run:
    key = "llchaos" + uuid.uuid4().hex[:12]
    proxy = ChaosProxy(origin.url(""), scenario.faults(), ignore_blocking=scenario.ignore_blocking)
    async with proxy:
        settings = SessionSettings(
            labels=LABELS,
            ingest_url=origin.ingest_url(key),
            playback_url=proxy.url(f"/hls/{key}/ll/index.m3u8"),
            duration_seconds=scenario.duration,
            drain_timeout_seconds=3.0,
            startup_timeout_seconds=15.0,
        )
        recorder, report = await run_session(settings, flv, spec)
    return Run(recorder, report, dict(proxy.requests))


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, flv: FlvClip, clip: Clip
) -> Iterator[dict[str, Run]]:
    origin = start_origin(Path(tmp_path_factory.mktemp("llhls")) / "origin.log")
    try:

        async def run_all() -> dict[str, Run]:
            return {
                name: await run_scenario(scenario, origin, flv, clip.spec)
                for name, scenario in SCENARIOS.items()
            }

        yield asyncio.run(run_all())
    finally:
        stop_origin(origin)


@pytest.mark.parametrize(
    ("kind", "scenario", "rendition", "fragment"),
    [
        ("part_late", "frozen_parts", HIGH, "no new part for"),
        ("blocking_reload_violation", "held_reload", HIGH, "was held"),
        ("preload_hint_miss", "hints", HIGH, "hinted, listed, then HTTP 404"),
        ("playlist_error", "part_rules", HIGH, "without PART-HOLD-BACK"),
        ("part_duration_mismatch", "part_rules", LOW, "over PART-TARGET"),
        ("part_duration_mismatch", "part_rules", LOW, "parts add up to"),
        ("playlist_error", "part_inf", HIGH, "without EXT-X-PART-INF"),
        ("playlist_error", "part_inf", LOW, "below 2 x PART-TARGET"),
    ],
)
def test_fault_is_reported(
    runs: dict[str, Run], kind: str, scenario: str, rendition: str, fragment: str
) -> None:
    run = runs[scenario]
    assert run.reported(kind, rendition, fragment), (kind, rendition, run.summary())
    assert run.report["outcome"] == "failure"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_faults_cause_nothing_they_do_not_explain(runs: dict[str, Run], scenario: str) -> None:
    run = runs[scenario]
    assert run.kinds <= SCENARIOS[scenario].allowed, run.summary()


def test_a_healthy_ll_stream_is_measured_part_by_part(runs: dict[str, Run]) -> None:
    run = runs["healthy"]
    assert run.summary() == [] and run.report["outcome"] == "success"
    for rendition in (HIGH, LOW):
        parts = run.parts(rendition)
        assert len(parts) >= 18, len(parts)
        # Most parts are requested from the preload hint, before they are listed.
        assert sum(p.hinted for p in parts) >= 0.8 * len(parts)
        latencies = sorted(p.part_latency_seconds for p in parts if p.part_latency_seconds)
        assert latencies and latencies[len(latencies) // 2] < 0.5, latencies


def test_hints_never_listed_are_counted_not_failed(runs: dict[str, Run]) -> None:
    run = runs["hints"]
    assert HINT_NOT_LISTED in run.anomalies(LOW)
    assert not [f for f in run.failures if f.rendition == LOW], run.summary()
    assert len(run.parts(LOW)) >= 18  # fetched once listed instead


def test_a_server_ignoring_blocking_reloads_is_polled_not_stormed(runs: dict[str, Run]) -> None:
    run = runs["ignored_blocking"]
    assert run.summary() == [], run.summary()
    for rendition in (HIGH, LOW):
        # Answers at once without a new part are counted; three in a row, and the follower
        # polls instead (one at once with a new part, there already, breaks a row).
        assert 3 <= run.anomalies(rendition).count(UNHELD_BLOCKING_RELOAD) <= 8
        assert len(run.parts(rendition)) >= 18
    # Polling every half part: about 2 playlist requests per part, each rendition.
    parts = len(run.parts(HIGH)) + len(run.parts(LOW))
    assert run.requests["index.m3u8"] <= 4 * parts, (run.requests, parts)
