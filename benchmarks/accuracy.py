"""Benchmark 1: how exact the monitor's "listed" time is, what it costs, and latency methods.

Two runs against a real nginx-rtmp origin on loopback, one real session each:

- copy path (`hls on`, one rendition): the session, plus three more followers of the same
  stream: fixed 500 ms polling (the Livepeer stream tester's way, the baseline) and two
  through a proxy that withholds every playlist version for D = 1 s and 3 s;
- transcode ladder (nginx `exec ffmpeg`, 360p + 144p, master playlist): the session, plus a
  fixed 500 ms follower per rendition.

Ground truth is the origin's own files (benchmarks/truth.py): the modification time of the
first playlist version that listed each segment, on the same clock as the monitor.

Latency methods: the session places every segment's newest frame in time by the timecode
drawn in the picture and the publisher's send log. The PTS-mapping method (the stream
tester's) takes the first segment's first PTS as the first packet's send time and maps
every later PTS from there. Both are compared with the true listed latency (playlist
mtime - the true send time of the segment's newest frame) on the same segments.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.nginx import LADDER, NginxOrigin
from tests.support.session_run import Recorder

from benchmarks.common import (
    LABELS,
    ExtraFollower,
    FixedIntervalScheduler,
    ProbeRecord,
    clip,
    install_probe,
    new_key,
    percentile,
    probes_of,
    summary,
)
from benchmarks.delay_proxy import DelayProxy
from benchmarks.table import Figure, Target
from benchmarks.truth import PlaylistTruth, clock_granularity
from streamer.events import CheckFailed, RenditionDiscovered, SessionEnded
from streamer.events import FanOut as Fan
from streamer.playback.hls import HlsPlayback
from streamer.session import Session, SessionSettings

BASELINE_INTERVAL = 0.5
DELAYS = (1.0, 3.0)
TARGET_DURATION = 2.0


@dataclass
class RunResult:
    path: str  # "copy" or "ladder"
    errors_ms: list[float]  # listed time - truth, every segment of every rendition
    baseline_errors_ms: list[float]
    requests_per_td: dict[str, float]
    baseline_requests_per_td: dict[str, float]
    timecode_latency_error_ms: list[float]
    pts_latency_error_ms: list[float]
    delay_rise_ms: dict[float, list[float]]
    details: dict[str, Any]


def _settings(ingest: str, playback: str, seconds: float) -> SessionSettings:
    return SessionSettings(
        labels=LABELS, ingest_url=ingest, playback_url=playback, duration_seconds=seconds
    )


def _latency_errors(
    probes: list[ProbeRecord],
    truth: dict[str, dict[int, float]],
    names: dict[str, str],
    first_packet_at: float,
) -> tuple[list[float], list[float], dict[str, Any]]:
    """(timecode method errors, PTS method errors) in ms, against the true listed latency."""
    timecode: list[float] = []
    pts: list[float] = []
    origins: dict[str, float] = {}
    offsets: list[float] = []
    for rendition in sorted({p.rendition for p in probes}):
        own = sorted((p for p in probes if p.rendition == rendition), key=lambda p: p.sequence)
        if not own:
            continue
        # "PTS starts at the first packet": the first segment's first PTS is the first
        # packet's send time.
        origin_pts = own[0].first_pts
        origins[rendition] = origin_pts
        listed = truth.get(names[rendition], {})
        for probe in own:
            true_listed = listed.get(probe.sequence)
            if true_listed is None or probe.newest_sent_at is None:
                continue
            true_latency = true_listed - probe.newest_sent_at
            measured_timecode = probe.listed_at - probe.newest_sent_at
            estimated_sent = first_packet_at + (probe.last_pts - origin_pts)
            measured_pts = probe.listed_at - estimated_sent
            timecode.append((measured_timecode - true_latency) * 1000)
            pts.append((measured_pts - true_latency) * 1000)
            offsets.append((estimated_sent - probe.newest_sent_at) * 1000)
    return timecode, pts, {"pts_origin": origins, "pts_send_time_offset_ms": summary(offsets)}


async def _run(workdir: Path, ladder: bool, seconds: float, delays: tuple[float, ...]) -> RunResult:
    spec, flv, _ = clip()
    key = new_key("acc")
    origin = NginxOrigin(workdir, ladder=ladder).start()
    try:
        if ladder:
            names = {f"{size}": f"{key}{suffix}.m3u8" for suffix, size, _, _ in LADDER}
        else:
            names = {"source": f"{key}.m3u8"}
        truth = PlaylistTruth(origin.hls_dir).only(set(names.values())).start()
        recorder = Recorder()
        proxies = [await DelayProxy(origin.hls_dir, d).__aenter__() for d in delays]
        try:
            session = Session(
                _settings(origin.ingest_url(key), origin.playback_url(key), seconds),
                flv,
                spec,
                Fan([recorder]),
            )
            session_task = asyncio.create_task(session.run())
            extras: dict[str, ExtraFollower] = {}
            for rendition, name in names.items():
                url = f"{origin.playback_base}/{name}"
                extras[f"baseline:{rendition}"] = ExtraFollower(
                    f"baseline-{rendition}",
                    url,
                    FixedIntervalScheduler(BASELINE_INTERVAL),
                    poll_step=BASELINE_INTERVAL,
                ).start()
            for proxy in proxies:
                for rendition, name in names.items():
                    proxy.watch(name)
                    extras[f"delay{proxy.delay:g}:{rendition}"] = ExtraFollower(
                        f"delay-{proxy.delay:g}-{rendition}", proxy.url(name)
                    ).start()
            await session_task
            for label, extra in extras.items():
                if label.startswith("delay"):
                    continue
                await extra.stop()
            await asyncio.sleep(max(delays, default=0.0) + 1.0)
            for label, extra in extras.items():
                if label.startswith("delay"):
                    await extra.stop()
        finally:
            for proxy in proxies:
                await proxy.__aexit__(None, None, None)
        truth.stop()
    finally:
        origin.stop()
    return _evaluate(
        "ladder" if ladder else "copy", session, recorder, truth, names, extras, delays
    )


def _evaluate(
    path: str,
    session: Session,
    recorder: Recorder,
    truth: PlaylistTruth,
    names: dict[str, str],
    extras: dict[str, ExtraFollower],
    delays: tuple[float, ...],
) -> RunResult:
    ended = recorder.of(SessionEnded)
    end_at = ended[-1].at if ended else time.time()
    discovered = {e.rendition: e.at for e in recorder.of(RenditionDiscovered)}
    errors: list[float] = []
    per_rendition: dict[str, Any] = {}
    per_segment: dict[str, list[tuple[int, float]]] = {}
    missing_truth = 0
    for rendition, playlist_name in names.items():
        own = [e for e in recorder.segments if e.rendition == rendition]
        values = []
        for event in own:
            true_listed = truth.listed_at(playlist_name, event.sequence)
            if true_listed is None:
                missing_truth += 1
                continue
            values.append((event.listed_at - true_listed) * 1000)
            per_segment.setdefault(rendition, []).append((event.sequence, round(values[-1], 1)))
        errors.extend(values)
        per_rendition[rendition] = summary(values)
    requests = {}
    assert isinstance(session.playback, HlsPlayback)
    for rendition, follower in session.playback.followers.items():
        since = discovered.get(rendition, end_at)
        span = end_at - since
        requests[rendition] = (
            follower.playlist_requests / (span / TARGET_DURATION) if span > 0 else math.nan
        )
    first_listed = {
        rendition: min(truth.first_listed.get(name, {}).values(), default=end_at)
        for rendition, name in names.items()
    }
    baseline_errors: list[float] = []
    baseline_requests = {}
    for rendition, name in names.items():
        extra = extras[f"baseline:{rendition}"]
        for seen in extra.observer.segments.values():
            true_listed = truth.listed_at(name, seen.sequence)
            if true_listed is not None:
                baseline_errors.append((seen.listed_at - true_listed) * 1000)
        baseline_requests[rendition] = extra.requests_per_target_duration(
            TARGET_DURATION, first_listed[rendition]
        )
    rises: dict[float, list[float]] = {}
    rise_by_segment: dict[str, list[tuple[int, float]]] = {}
    direct = {(e.rendition, e.sequence): e.listed_at for e in recorder.segments}
    for delay in delays:
        values = []
        for rendition in names:
            extra = extras[f"delay{delay:g}:{rendition}"]
            for seen in extra.observer.segments.values():
                listed = direct.get((rendition, seen.sequence))
                if listed is not None:
                    values.append((seen.listed_at - listed) * 1000)
                    rise_by_segment.setdefault(f"{delay:g}", []).append(
                        (seen.sequence, round(values[-1], 1))
                    )
        rises[delay] = values
    first_packet_at = session.context.publish_started_at if session.context else None
    timecode_errors: list[float] = []
    pts_errors: list[float] = []
    method_details: dict[str, Any] = {}
    if first_packet_at is not None:
        timecode_errors, pts_errors, method_details = _latency_errors(
            probes_of(session.context), truth.first_listed, names, first_packet_at
        )
    # Cross-check of the ground truth: segment files close right before the playlist that
    # lists them is written.
    gaps = []
    for name in names.values():
        stem = name.removesuffix(".m3u8")
        for sequence, listed in truth.first_listed.get(name, {}).items():
            closed = truth.segment_mtimes.get(f"{stem}-{sequence}.ts")
            if closed is not None:
                gaps.append((listed - closed) * 1000)
    failures = [f"{e.kind}: {e.detail}" for e in recorder.of(CheckFailed)]
    details = {
        "listed_error_ms": per_rendition,
        "listed_error_ms_by_segment": per_segment,
        "segments_without_truth": missing_truth,
        "requests_per_target_duration": requests,
        "baseline_requests_per_target_duration": baseline_requests,
        "baseline_listed_error_ms": summary(baseline_errors),
        "delay_rise_ms": {f"{d:g}": summary(v) for d, v in rises.items()},
        "delay_rise_ms_by_segment": rise_by_segment,
        "latency_methods": method_details,
        "truth_playlist_minus_segment_mtime_ms": summary(gaps),
        "truth_playlist_versions": truth.versions,
        "session_failures": failures,
        "session_outcome": ended[-1].outcome if ended else None,
    }
    return RunResult(
        path,
        errors,
        baseline_errors,
        requests,
        baseline_requests,
        timecode_errors,
        pts_errors,
        rises,
        details,
    )


def _abs(values: list[float]) -> list[float]:
    return [abs(v) for v in values]


def figures(copy: RunResult, ladder: RunResult, granularity_ms: float) -> list[Figure]:
    out: list[Figure] = []
    for run in (copy, ladder):
        label = "copy path" if run.path == "copy" else "transcode ladder"
        baseline = f"fixed {BASELINE_INTERVAL * 1000:.0f} ms polling"
        for q, limit in ((50, 25.0), (99, 100.0)):
            out.append(
                Figure(
                    "accuracy",
                    f"listed-time error p{q}, {label}",
                    percentile(run.errors_ms, q),
                    "ms",
                    Target("<=", limit),
                    percentile(run.baseline_errors_ms, q),
                    baseline,
                    note=(
                        "The 500 ms baseline's error is set by its phase against the 2 s "
                        "segment rhythm: about constant within a run, anywhere from 0 to "
                        "500 ms from one run to the next."
                    )
                    if q == 50 and run.path == "copy"
                    else "",
                    details={"segments": len(run.errors_ms), **run.details} if q == 50 else {},
                )
            )
        worst = max(run.requests_per_td.values(), default=math.nan)
        out.append(
            Figure(
                "accuracy",
                f"playlist requests per target duration per rendition, {label}",
                worst,
                "req",
                Target("<=", 4.0),
                max(run.baseline_requests_per_td.values(), default=math.nan),
                baseline,
                note=(
                    "Whole follow time from the rendition's discovery to the session's end, "
                    "including the first segments (polls 80 ms apart until the first arrival "
                    "is bracketed) and the drain after publishing stops. In steady state the "
                    "scheduler costs 2 to 3 requests per segment."
                )
                if run.path == "copy"
                else "",
            )
        )
    for delay, rises in copy.delay_rise_ms.items():
        deviation = [abs(r - delay * 1000) for r in rises]
        out.append(
            Figure(
                "accuracy",
                f"known delay D={delay:g} s: |listed-latency rise - D| p95",
                percentile(deviation, 95),
                "ms",
                Target("<=", 50.0),
                details={"rise_ms": summary(rises), "segments": len(rises)},
            )
        )
    for run in (copy, ladder):
        label = "copy path" if run.path == "copy" else "transcode ladder"
        for q in (50, 99):
            out.append(
                Figure(
                    "accuracy",
                    f"latency error |p{q}|, timecode method, {label}",
                    percentile(_abs(run.timecode_latency_error_ms), q),
                    "ms",
                    None,
                    percentile(_abs(run.pts_latency_error_ms), q),
                    "PTS mapping",
                    note=(
                        "Error of the listed latency against the truth (playlist mtime - send "
                        "time of the segment's newest frame). PTS mapping: the first segment's "
                        "first PTS is taken as the first packet's send time (the stream "
                        "tester's assumption)."
                    )
                    if run.path == "copy" and q == 50
                    else "",
                    details={
                        "timecode_ms": summary(run.timecode_latency_error_ms),
                        "pts_ms": summary(run.pts_latency_error_ms),
                    }
                    if q == 50
                    else {},
                )
            )
    out.append(
        Figure(
            "accuracy",
            "ground-truth clock granularity (file mtime vs time.time())",
            granularity_ms,
            "ms",
        )
    )
    return out


async def run(workdir: Path, quick: bool = False) -> list[Figure]:
    install_probe()
    seconds = 24.0 if quick else 50.0
    workdir.mkdir(parents=True, exist_ok=True)
    granularity = clock_granularity(workdir) * 1000
    copy = await _run(workdir / "copy", ladder=False, seconds=seconds, delays=DELAYS)
    ladder = await _run(workdir / "ladder", ladder=True, seconds=seconds * 0.8, delays=())
    return figures(copy, ladder, granularity)
