"""Benchmark 4: whether the verdicts can be trusted.

- **False failures.** Healthy sessions, at the default check settings, against every real
  origin the suite can start: nginx-rtmp's copy path and its transcode ladder, FFmpeg's own
  HLS muxer (MPEG-TS; fMP4/CMAF with a two-rendition master, 1 s segments; a fresh FFmpeg
  per publish into the same directory, as a script around it would run), and the embedded
  origin (FFmpeg's libraries, a two-rendition ladder). One key per origin, reused from
  session to session as a monitor with fixed URLs does. A session of a healthy origin that
  ends `failure` is a false failure: target 0.
- **Faults caught.** Every fault of the fault catalogue (tests/support/fault_catalog.py:
  HTTP errors, timeouts, broken playlists, sequence faults, stalls, undecodable, silent or
  foreign segments, dropped frames, A/V shift, missing and drifting renditions), injected
  at the chaos proxy or the publisher, one real session per scenario, all at once: reported
  with the right kind and rendition, out of injected (target 100 %).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.fault_catalog import EXPECTED, SCENARIOS, reported, run_all
from tests.support.ffmpeg_origin import LADDER as FFMPEG_LADDER
from tests.support.ffmpeg_origin import FfmpegHlsOrigin
from tests.support.nginx import NginxOrigin
from tests.support.session_run import Recorder

from benchmarks.common import LABELS, clip, new_key
from benchmarks.table import Figure, Target
from streamer.events import CheckFailed, FanOut, SessionEnded
from streamer.origin.embedded import EmbeddedOrigin
from streamer.session import Session, SessionSettings

SESSION_SECONDS = 16.0


# One session's (ingest URL, playback URL), held for the session's publish.
Endpoint = Callable[[], contextlib.AbstractAsyncContextManager[tuple[str, str]]]


@dataclass(frozen=True)
class HealthyOrigin:
    name: str
    endpoint: Endpoint


@dataclass(frozen=True)
class Verdict:
    origin: str
    outcome: str
    failures: tuple[str, ...]  # "kind [rendition]: detail"


def _fixed(ingest: str, playback: str) -> Endpoint:
    @contextlib.asynccontextmanager
    async def endpoint() -> AsyncIterator[tuple[str, str]]:
        yield ingest, playback

    return endpoint


def _ffmpeg(origin: FfmpegHlsOrigin) -> Endpoint:
    key = new_key("healthy")

    @contextlib.asynccontextmanager
    async def endpoint() -> AsyncIterator[tuple[str, str]]:
        # A new FFmpeg per publish; starting and finishing it blocks, so not on the loop
        # that measures the other origins' sessions at the same time.
        listening = origin.listen(key)
        ingest = await asyncio.to_thread(listening.__enter__)
        try:
            yield ingest, origin.playback_url(key)
        finally:
            await asyncio.to_thread(listening.__exit__, None, None, None)

    return endpoint


@contextlib.asynccontextmanager
async def _healthy_origins(workdir: Path) -> AsyncIterator[list[HealthyOrigin]]:
    embedded = EmbeddedOrigin()
    copy_key, ladder_key, embedded_key = (new_key("healthy") for _ in range(3))
    with (
        NginxOrigin(workdir / "copy") as copy,
        NginxOrigin(workdir / "ladder", ladder=True) as ladder,
        FfmpegHlsOrigin(workdir / "ffmpeg-ts") as ffmpeg_ts,
        FfmpegHlsOrigin(
            workdir / "ffmpeg-fmp4", fmp4=True, renditions=FFMPEG_LADDER, segment_seconds=1
        ) as ffmpeg_fmp4,
    ):
        await embedded.start()
        try:
            yield [
                HealthyOrigin(
                    "nginx-rtmp copy",
                    _fixed(copy.ingest_url(copy_key), copy.playback_url(copy_key)),
                ),
                HealthyOrigin(
                    "nginx-rtmp ladder",
                    _fixed(ladder.ingest_url(ladder_key), ladder.playback_url(ladder_key)),
                ),
                HealthyOrigin("ffmpeg hls mpegts", _ffmpeg(ffmpeg_ts)),
                HealthyOrigin("ffmpeg hls fmp4 master", _ffmpeg(ffmpeg_fmp4)),
                HealthyOrigin(
                    "embedded origin",
                    _fixed(embedded.ingest_url(embedded_key), embedded.playback_url(embedded_key)),
                ),
            ]
        finally:
            await embedded.stop()


async def _healthy_session(origin: HealthyOrigin) -> Verdict:
    spec, flv, _ = clip()
    recorder = Recorder()
    async with origin.endpoint() as (ingest, playback):
        settings = SessionSettings(
            labels=LABELS,
            ingest_url=ingest,
            playback_url=playback,
            duration_seconds=SESSION_SECONDS,
        )
        await Session(settings, flv, spec, FanOut([recorder])).run()
    (ended,) = recorder.of(SessionEnded)
    failures = tuple(
        f"{e.kind} [{e.rendition or '-'}]: {e.detail}" for e in recorder.of(CheckFailed)
    )
    return Verdict(origin.name, ended.outcome, failures)


async def _healthy_runs(workdir: Path, rounds: int) -> list[Verdict]:
    verdicts: list[Verdict] = []
    async with _healthy_origins(workdir) as origins:
        for _ in range(rounds):
            verdicts += await asyncio.gather(*(_healthy_session(o) for o in origins))
    return verdicts


async def _fault_figures(workdir: Path) -> list[Figure]:
    spec, flv, _ = clip()
    with (
        NginxOrigin(workdir / "faults-copy") as copy,
        NginxOrigin(workdir / "faults-ladder", ladder=True) as ladder,
    ):
        runs = await run_all({False: copy, True: ladder}, flv, spec)
    missed = [
        f"{kind} [{rendition or '-'}] in {scenario}"
        for kind, scenario, rendition, fragment in EXPECTED
        if not reported(runs[scenario], kind, rendition, fragment)
    ]
    unexplained = {
        name: sorted(run.kinds - SCENARIOS[name].allowed)
        for name, run in runs.items()
        if run.kinds - SCENARIOS[name].allowed
    }
    caught = len(EXPECTED) - len(missed)
    return [
        Figure(
            "verdicts",
            "faults caught: reported with the right kind and rendition",
            100.0 * caught / len(EXPECTED),
            "%",
            Target(">=", 100.0),
            note=f"{caught} of {len(EXPECTED)} injected faults"
            + (f"; missed: {', '.join(missed)}" if missed else ""),
            details={"missed": missed, "injected": len(EXPECTED)},
        ),
        Figure(
            "verdicts",
            "fault sessions with failures the fault does not explain",
            float(len(unexplained)),
            "",
            Target("<=", 0.0),
            note="; ".join(f"{name}: {', '.join(kinds)}" for name, kinds in unexplained.items()),
            details={"unexplained": unexplained, "scenarios": len(runs)},
        ),
    ]


def _false_failure_figure(verdicts: list[Verdict]) -> Figure:
    failed = [v for v in verdicts if v.outcome != "success"]
    per_origin = Counter(v.origin for v in verdicts)
    return Figure(
        "verdicts",
        "false failures: healthy sessions that failed",
        float(len(failed)),
        "",
        Target("<=", 0.0),
        note=f"{len(failed)} of {len(verdicts)} sessions ({SESSION_SECONDS:g} s each) on "
        + ", ".join(f"{name} x{count}" for name, count in per_origin.items())
        + (f"; first: {failed[0].origin}: {failed[0].failures[:1]}" if failed else ""),
        details={
            "sessions": len(verdicts),
            "failed": [
                {"origin": v.origin, "outcome": v.outcome, "failures": list(v.failures)}
                for v in failed
            ],
        },
    )


async def run(workdir: Path, quick: bool = False) -> list[Figure]:
    workdir.mkdir(parents=True, exist_ok=True)
    verdicts = await _healthy_runs(workdir, rounds=1 if quick else 2)
    faults = await _fault_figures(workdir)
    return [_false_failure_figure(verdicts), *faults]
