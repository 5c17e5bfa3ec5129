"""Every failure kind, proven against a real origin with the fault injected.

Each scenario of the catalogue (tests/support/fault_catalog.py) is one real session against
a real nginx-rtmp origin, faults injected at the chaos proxy or the publisher. All scenarios
run at once, on one origin of each kind, so the module costs about one session's time.
Every test then asserts on one scenario's events: the right kind, for the right rendition,
and, for faults, nothing the fault does not explain (no false positives).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamer.events import SegmentObserved
from streamer.publish.flv import FlvClip
from streamer.testsignal.clip import Clip
from tests.support.fault_catalog import (
    EXPECTED,
    SCENARIOS,
    STALL_LIMIT,
    TICK,
    Run,
    reported,
    run_all,
)
from tests.support.nginx import NginxOrigin

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def origins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[bool, NginxOrigin]]:
    with (
        NginxOrigin(Path(tmp_path_factory.mktemp("copy"))) as copy,
        NginxOrigin(Path(tmp_path_factory.mktemp("ladder")), ladder=True) as ladder,
    ):
        yield {False: copy, True: ladder}


@pytest.fixture(scope="module")
def runs(origins: dict[bool, NginxOrigin], flv: FlvClip, clip: Clip) -> dict[str, Run]:
    return asyncio.run(run_all(origins, flv, clip.spec))


@pytest.mark.parametrize(
    ("kind", "scenario", "rendition", "fragment"),
    EXPECTED,
    ids=[f"{kind}-{scenario}-{rendition}" for kind, scenario, rendition, _ in EXPECTED],
)
def test_fault_is_reported(
    runs: dict[str, Run], kind: str, scenario: str, rendition: str | None, fragment: str
) -> None:
    run = runs[scenario]
    assert reported(run, kind, rendition, fragment), (kind, rendition, run.summary())
    # What the probe report shows and what becomes streamer_errors_total{kind,rendition}.
    assert run.report["outcome"] == "failure"
    assert {"kind": kind, "rendition": rendition} in [
        {"kind": e["kind"], "rendition": e["rendition"]} for e in run.report["errors"]
    ]


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if not s.startswith("healthy")])
def test_faults_cause_nothing_they_do_not_explain(runs: dict[str, Run], scenario: str) -> None:
    run = runs[scenario]
    assert run.kinds <= SCENARIOS[scenario].allowed, run.summary()


@pytest.mark.parametrize(
    ("scenario", "renditions"),
    [("healthy_copy", {"source"}), ("healthy_ladder", {"640x360", "256x144"})],
)
def test_healthy_stream_reports_no_errors(
    runs: dict[str, Run], scenario: str, renditions: set[str]
) -> None:
    run = runs[scenario]
    assert run.summary() == []
    assert run.report["outcome"] == "success"
    counts = {r["name"]: r["segments"] for r in run.report["renditions"]}
    assert set(counts) == renditions and min(counts.values()) >= 4, counts


def test_stall_is_reported_within_the_limit_plus_one_tick(runs: dict[str, Run]) -> None:
    run = runs["stale"]
    last = max(e.listed_at for e in run.recorder.of(SegmentObserved))
    (stall,) = [f for f in run.failures if f.kind == "stale_playlist"]
    # Listed at the moment the poll's answer arrived; decided on the session's tick.
    assert STALL_LIMIT < stall.at - last <= STALL_LIMIT + TICK + 0.1, stall.at - last
