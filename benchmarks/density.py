"""Benchmark 2: N streams in one `streamer monitor` process, against an ffmpeg baseline.

For each N, against one real nginx-rtmp origin (copy path, `hls on`), `repeats` draws,
each a monitor run followed by a baseline run (monitor, baseline, monitor, baseline, ...:
slow drifts of a shared machine hit both sides alike):

1. `streamer monitor` (benchmarks/monitor_proc.py: the real command plus a sink that writes
   what it reported, when, to a file) monitors N streams of the default clip (640x360,
   ~1 Mbit/s, 30 fps, 2 s GOP) with every check on and sessions long enough not to restart
   inside the window. After a warm-up (every stream has two segments reported by the
   monitor), its CPU time and RSS are read with psutil at the start and the end of a fixed
   window, and its event loop's lag is sampled by a timer inside it. Every segment the
   origin listed in the window is held against the origin's ground truth
   (benchmarks/truth.py). After the window the monitor keeps running (the drain, at most
   `DRAIN_LIMIT_SECONDS`) until it has reported every segment expected of it, then it is
   stopped.
2. Then N `ffmpeg -re -stream_loop -1 -i clip -c copy -f flv` processes, which only
   publish, over a window of the same length, once every publisher's playlist exists.

Expected segments: listed by the origin during the window, up to `SETTLE_SECONDS` before
its end (so that a healthy monitor has reported them by the end). "Late": reported only
after the window's end (the monitor was more than `SETTLE_SECONDS` behind); "missed":
never reported, even after the drain.

The table shows each figure's median over the draws with min-max; a target is met when
the median meets it. The JSON keeps every draw, and the host's load average, steal and idle
time over each window (what else was running).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml
from tests.support.nginx import NginxOrigin
from tests.support.ports import free_port

from benchmarks.common import REPO, clip, new_key, percentile, summary
from benchmarks.speed import Speed, SpeedProbe
from benchmarks.table import Figure, Target
from benchmarks.truth import PlaylistTruth
from benchmarks.usage import Usage, measure


@dataclass(frozen=True)
class Plan:
    counts: tuple[int, ...]
    repeats: int
    window: float  # seconds, monitor and baseline alike


QUICK = Plan((1, 10), repeats=2, window=10.0)
DEFAULT = Plan((10, 50, 100), repeats=3, window=20.0)  # `make bench`
FULL = Plan((1, 10, 50, 100), repeats=5, window=40.0)  # `make bench-full`

TARGET_N = 50  # the N whose CPU is held to the ffmpeg baseline
MISSED_TARGET_N = 100  # the N that must report every segment in time
WARMUP_LIMIT_SECONDS = 60.0
BASELINE_START_LIMIT_SECONDS = 30.0
DRAIN_LIMIT_SECONDS = 15.0
STOP_LIMIT_SECONDS = 15.0
# The streams' start spread: one segment period, so segment boundaries fall evenly.
START_SPREAD = "2s"
# The density run's decode mode (see streamer.playback.segment): every frame cannot be
# decoded for 50 streams on two cores; the table says which mode was used.
DECODE_MODE = "keyframe"
SETTLE_SECONDS = 4.0  # a segment listed this close to the window's end may still download
_NOT_REPORTED = "analysed, not reported"


# -- the monitor --------------------------------------------------------------------------


@dataclass
class MonitorRun:
    n: int
    usage: Usage
    errors_ms: list[float]  # listed time - truth, per expected segment reported
    backlog_ms: list[float]  # reported at the sink - truth listed time, same segments
    lag_ms: list[float]  # event loop timer lag samples in the window
    expected: int
    late: int  # reported after the window's end
    missed: int  # never reported, even after the drain
    failures: list[dict[str, Any]]
    details: dict[str, Any] = field(default_factory=dict)


class JsonLines:
    """Reads a JSON-lines file as it grows: complete lines only, each once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read_new(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        out = []
        for line in lines:
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
        return out


def _stream_config(origin: NginxOrigin, keys: list[str], metrics_port: int) -> dict[str, Any]:
    return {
        "metrics_addr": f"127.0.0.1:{metrics_port}",
        "streams": [
            {
                "name": f"s{i:03d}",
                "ingest_url": origin.ingest_url(key),
                "playback_url": origin.playback_url(key),
                "duration": "30m",  # no session restarts inside the window
                "grace_period": START_SPREAD,  # streams start spread over it
                "ingest_region": "local",
                "playback_region": "local",
            }
            for i, key in enumerate(keys)
        ],
    }


class _Reported:
    """What the monitor wrote to its events file so far."""

    def __init__(self, path: Path) -> None:
        self._lines = JsonLines(path)
        self.records: list[dict[str, Any]] = []
        self.segments: dict[tuple[str, int], dict[str, Any]] = {}
        self.fetched: dict[tuple[str, int], dict[str, Any]] = {}

    def update(self) -> None:
        for record in self._lines.read_new():
            self.records.append(record)
            if record["type"] == "segment":
                self.segments.setdefault((record["stream"], record["sequence"]), record)
            elif record["type"] == "fetched":
                self.fetched.setdefault((record["stream"], record["sequence"]), record)

    def count_by_stream(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for stream, _ in self.segments:
            counts[stream] = counts.get(stream, 0) + 1
        return counts


async def _warm_up(
    reported: _Reported, streams: list[str], process: subprocess.Popen[bytes]
) -> float:
    """Until every stream has two segments reported by the monitor: all sessions publish,
    their followers have found the segment rhythm, and start-up work is over."""
    started = time.monotonic()
    while time.monotonic() - started < WARMUP_LIMIT_SECONDS:
        if process.poll() is not None:
            raise RuntimeError(f"the monitor exited with {process.returncode}")
        reported.update()
        counts = reported.count_by_stream()
        if all(counts.get(stream, 0) >= 2 for stream in streams):
            break
        await asyncio.sleep(0.25)
    return time.monotonic() - started


def _expected(
    truth: dict[str, dict[int, float]],
    by_stream: dict[str, str],
    window_start: float,
    window_end: float,
) -> dict[tuple[str, int], float]:
    """(stream, sequence) -> truth listed time, for segments the monitor must report."""
    out = {}
    for stream, name in by_stream.items():
        for sequence, listed in truth.get(name, {}).items():
            if window_start <= listed <= window_end - SETTLE_SECONDS:
                out[(stream, sequence)] = listed
    return out


async def _drain(
    reported: _Reported, expected: dict[tuple[str, int], float], process: subprocess.Popen[bytes]
) -> float:
    started = time.monotonic()
    while time.monotonic() - started < DRAIN_LIMIT_SECONDS and process.poll() is None:
        reported.update()
        if all(key in reported.segments for key in expected):
            break
        await asyncio.sleep(0.25)
    return time.monotonic() - started


def _stop(process: subprocess.Popen[bytes]) -> tuple[float, bool]:
    """SIGTERM, then SIGKILL after STOP_LIMIT_SECONDS: (seconds to exit, killed)."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_LIMIT_SECONDS)
        return time.monotonic() - started, False
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return time.monotonic() - started, True


def _lag_samples(stats: Path, start: float, end: float) -> list[float]:
    return [
        lag * 1000
        for row in JsonLines(stats).read_new()
        for at, lag in row.get("lag", [])
        if start <= at <= end
    ]


async def _monitor(
    workdir: Path, origin: NginxOrigin, n: int, window: float, draw: int
) -> MonitorRun:
    keys = [new_key(f"n{n}d{draw}s{i}x") for i in range(n)]
    by_stream = {f"s{i:03d}": f"{key}.m3u8" for i, key in enumerate(keys)}
    tag = f"{n}-{draw}"
    config = workdir / f"streams-{tag}.yaml"
    config.write_text(yaml.safe_dump(_stream_config(origin, keys, free_port())))
    events, stats, log = (workdir / f"{kind}-{tag}.jsonl" for kind in ("events", "stats", "log"))
    truth = PlaylistTruth(origin.hls_dir, every=0.1).only(set(by_stream.values())).start()
    reported = _Reported(events)
    env = {
        **os.environ,
        "LOG_FORMAT": "json",
        # This checkout's code, whatever the interpreter has installed.
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
        "STREAMER_DECODE_MODE": DECODE_MODE,
    }
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.monitor_proc",
                str(events),
                str(stats),
                "--",
                "monitor",
                "--config",
                str(config),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
    drain = exit_seconds = 0.0
    killed = False
    try:
        warm_up = await _warm_up(reported, list(by_stream), process)
        usage = await measure([psutil.Process(process.pid)], window)
        window_start, window_end = usage.started_at, usage.ended_at
        # A snapshot: the watcher thread goes on adding to its dicts during the drain.
        listed = {name: dict(seqs) for name, seqs in list(truth.first_listed.items())}
        expected = _expected(listed, by_stream, window_start, window_end)
        drain = await _drain(reported, expected, process)
    finally:
        exit_seconds, killed = _stop(process)
        truth.stop()
    reported.update()
    return _score(
        n,
        usage,
        expected,
        reported,
        _lag_samples(stats, window_start, window_end),
        {
            "warm_up_seconds": round(warm_up, 1),
            "drain_seconds": round(drain, 1),
            "exit_seconds": round(exit_seconds, 1),
            "killed": killed,
            "tasks_max": max(
                (
                    row["tasks"]
                    for row in JsonLines(stats).read_new()
                    if window_start <= row["t"] <= window_end
                ),
                default=None,
            ),
        },
    )


def _score(
    n: int,
    usage: Usage,
    expected: dict[tuple[str, int], float],
    reported: _Reported,
    lag_ms: list[float],
    details: dict[str, Any],
) -> MonitorRun:
    window_start, window_end = usage.started_at, usage.ended_at
    errors, backlog = [], []
    late: list[str] = []
    missed: list[tuple[str, int]] = []
    for key, listed in sorted(expected.items()):
        record = reported.segments.get(key)
        if record is None:
            missed.append(key)
            continue
        errors.append((record["listed_at"] - listed) * 1000)
        backlog.append((record["reported_at"] - listed) * 1000)
        if record["reported_at"] > window_end:
            late.append(f"{key[0]}#{key[1]}")
    # Where each missed segment stopped: never handed over by its follower (not polled or
    # not downloaded), or handed over (downloaded and analysed, or failed) but not reported.
    handed_over = [key for key in missed if key in reported.fetched]
    errors_by_kind: dict[str, int] = {}
    for key in handed_over:
        kind = reported.fetched[key]["error"] or _NOT_REPORTED
        errors_by_kind[kind] = errors_by_kind.get(kind, 0) + 1
    failures = [
        r
        for r in reported.records
        if r["type"] == "failure" and window_start <= r["at"] <= window_end
    ]
    fetch_wait = [
        (f["downloaded_at"] - expected[key]) * 1000
        for key, f in reported.fetched.items()
        if key in expected and f["downloaded_at"] is not None
    ]
    analysis_wait = [
        (f["analysed_at"] - f["downloaded_at"]) * 1000
        for key, f in reported.fetched.items()
        if key in expected and f["downloaded_at"] is not None
    ]
    details = {
        **details,
        "threads": usage.threads,
        "fds": usage.fds,
        "expected": len(expected),
        "late_examples": late[:10],
        "missed_examples": [f"{s}#{q}" for s, q in missed[:10]],
        "missed_handed_over": errors_by_kind,
        "missed_never_handed_over": len(missed) - len(handed_over),
        "listed_to_downloaded_ms": summary(fetch_wait),
        "downloaded_to_analysed_ms": summary(analysis_wait),
        "failure_kinds": sorted({f["kind"] for f in failures}),
        "failure_examples": [f"{f['kind']}: {f['detail']}" for f in failures[:5]],
    }
    return MonitorRun(
        n, usage, errors, backlog, lag_ms, len(expected), len(late), len(missed), failures, details
    )


# -- the baseline -------------------------------------------------------------------------


async def _baseline(
    origin: NginxOrigin, clip_path: Path, n: int, window: float, draw: int
) -> Usage:
    keys = [new_key(f"ff{n}d{draw}x{i}x") for i in range(n)]
    processes = [
        subprocess.Popen(
            [
                "ffmpeg",
                "-hide_banner",
                "-nostdin",
                "-loglevel",
                "error",
                "-re",
                "-stream_loop",
                "-1",
                "-i",
                str(clip_path),
                "-c",
                "copy",
                "-f",
                "flv",
                origin.ingest_url(key),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for key in keys
    ]
    try:
        # Start-up (reading the clip, connecting) is not steady state: the window opens
        # once the origin has listed a segment of every publisher.
        started = time.monotonic()
        while time.monotonic() - started < BASELINE_START_LIMIT_SECONDS:
            if all((origin.hls_dir / f"{key}.m3u8").exists() for key in keys):
                break
            await asyncio.sleep(0.25)
        alive = [psutil.Process(p.pid) for p in processes if p.poll() is None]
        if len(alive) < n:
            raise RuntimeError(f"only {len(alive)} of {n} ffmpeg publishers are running")
        return await measure(alive, window)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- the points ---------------------------------------------------------------------------


@dataclass
class DensityPoint:
    n: int
    monitors: list[MonitorRun] = field(default_factory=list)
    baselines: list[Usage] = field(default_factory=list)
    error: str = ""  # why the point could not be measured (its draws are then dropped)


async def run_plan(workdir: Path, plan: Plan) -> tuple[list[DensityPoint], Speed]:
    """Every point of the plan, and the machine's speed all along (see benchmarks/speed.py)."""
    _, _, clip_path = clip()
    probe = SpeedProbe(workdir / "speed.txt").start()
    try:
        points = await _run_points(workdir, plan, clip_path)
    finally:
        probe.stop()
    return points, Speed(probe.samples())


async def _run_points(workdir: Path, plan: Plan, clip_path: Path) -> list[DensityPoint]:
    points = []
    for n in plan.counts:
        point = DensityPoint(n)
        origin = NginxOrigin(workdir / f"origin-{n}").start()
        try:
            for draw in range(plan.repeats):
                monitor = await _monitor(workdir, origin, n, plan.window, draw)
                await asyncio.sleep(1.0)
                baseline = await _baseline(origin, clip_path, n, plan.window, draw)
                point.monitors.append(monitor)
                point.baselines.append(baseline)
                _progress(n, draw, monitor, baseline)
        except Exception as exc:  # one point that cannot run must not cost the others
            traceback.print_exc()
            point.error = f"{type(exc).__name__}: {exc}"
        finally:
            origin.stop()
        points.append(point)
    return points


def _progress(n: int, draw: int, monitor: MonitorRun, baseline: Usage) -> None:
    host = monitor.usage.host
    print(
        f"   N={n} draw {draw + 1}: monitor {monitor.usage.cores() * 100:.0f}% of a core, "
        f"ffmpeg {baseline.cores() * 100:.0f}%, listed p99 "
        f"{percentile(monitor.errors_ms, 99):.0f} ms, loop lag p99 "
        f"{percentile(monitor.lag_ms, 99):.0f} ms, late {monitor.late}, missed "
        f"{monitor.missed} of {monitor.expected}; load {host['load_before'][0]:.2f}, "
        f"others {host['other_cores']:.2f} cores",
        file=sys.stderr,
        flush=True,
    )


# -- figures ------------------------------------------------------------------------------


def decode_mode() -> str:
    """How the monitor decoded segments, for the table."""
    if DECODE_MODE == "keyframe":
        return "decode mode keyframe: one decoded frame per segment, the rest placed by PTS"
    return "decode mode full: every frame decoded and its timecode read"


def spread(values: Sequence[float]) -> tuple[float, tuple[float, float] | None]:
    """Median and (min, max) of the finite draws; NaN and no spread when there are none."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, None
    return statistics.median(finite), (min(finite), max(finite))


def _figure(
    name: str,
    draws: Sequence[float],
    unit: str = "",
    target: Target | None = None,
    **kwargs: Any,
) -> Figure:
    median, limits = spread(draws)
    details = {"draws": list(draws), **kwargs.pop("details", {})}
    return Figure("density", name, median, unit, target, spread=limits, details=details, **kwargs)


def _ratio(monitor: Usage, baseline: Usage, speed: Speed) -> float:
    """Monitor over baseline cores, each at full speed: a slow spell of the machine in one
    of the two windows does not count against (or for) the monitor."""
    base = speed.cores(baseline)
    return speed.cores(monitor) / base if base > 0 else math.nan


def _ms(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f} ms per probe chunk"


def _of(runs: Sequence[MonitorRun], value: Callable[[MonitorRun], float]) -> list[float]:
    return [value(run) for run in runs]


def _draw_details(monitor: MonitorRun, baseline: Usage, speed: Speed) -> dict[str, Any]:
    usage = monitor.usage
    return {
        "speed_reference_ms": speed.reference_ms,
        "monitor_speed_ms": speed.chunk_ms(usage),
        "monitor_cores_at_full_speed": speed.cores(usage),
        "baseline_speed_ms": speed.chunk_ms(baseline),
        "baseline_cores_at_full_speed": speed.cores(baseline),
        "monitor_cores": usage.cores(),
        "monitor_event_loop_thread_cores": (
            usage.main_thread_cpu_seconds / usage.window_seconds
            if usage.main_thread_cpu_seconds is not None
            else None
        ),
        "monitor_cpu_seconds": usage.cpu_seconds,
        "monitor_window_seconds": usage.window_seconds,
        "monitor_rss_mb": usage.rss_bytes / 1e6,
        "monitor_peak_rss_mb": usage.peak_rss_bytes / 1e6,
        "monitor_host": usage.host,
        "baseline_cores": baseline.cores(),
        "baseline_cpu_seconds": baseline.cpu_seconds,
        "baseline_window_seconds": baseline.window_seconds,
        "baseline_host": baseline.host,
        "listed_error_ms": summary(monitor.errors_ms),
        "report_backlog_ms": summary(monitor.backlog_ms),
        "loop_lag_ms": summary(monitor.lag_ms),
        **monitor.details,
    }


def _cause(run: MonitorRun) -> str:
    """What kept segments from being reported in time, in one phrase."""
    details = run.details
    causes = []
    if run.late or details["missed_never_handed_over"]:
        causes.append(
            "overload: the monitor fell behind (segments queued for download and analysis "
            "faster than it got through them)"
        )
    failed = {k: v for k, v in details["missed_handed_over"].items() if k != _NOT_REPORTED}
    if failed:
        causes.append(
            "downloads or analysis failed: "
            + ", ".join(f"{count} {kind}" for kind, count in sorted(failed.items()))
        )
    if details["missed_handed_over"].get(_NOT_REPORTED):
        causes.append("analysed but not reported by the session")
    return "; ".join(causes)


def _missed_note(point: DensityPoint) -> str:
    """Why segments were late or missed, from the numbers of the draws that had any."""
    bad = [m for m in point.monitors if m.late or m.missed]
    if not bad:
        return ""
    worst = max(bad, key=lambda m: m.late + m.missed)
    backlog = summary(worst.backlog_ms)
    lag = summary(worst.lag_ms)
    download = worst.details["listed_to_downloaded_ms"]
    analysis = worst.details["downloaded_to_analysed_ms"]
    return (
        f"N={point.n}: {len(bad)} of {len(point.monitors)} draws had late or missed segments; "
        f"the worst, {worst.late} late and {worst.missed} missed of {worst.expected}: "
        f"{_cause(worst)}. Report backlog (reported - listed) p99 "
        f"{backlog.get('p99', math.nan) / 1000:.1f} s, max "
        f"{backlog.get('max', math.nan) / 1000:.1f} s; listed to downloaded p99 "
        f"{download.get('p99', math.nan) / 1000:.1f} s, downloaded to analysed p99 "
        f"{analysis.get('p99', math.nan) / 1000:.1f} s; event-loop lag p99 "
        f"{lag.get('p99', math.nan):.0f} ms, max {lag.get('max', math.nan):.0f} ms; "
        f"monitor {worst.usage.cores():.2f} cores, other processes "
        f"{worst.usage.host['other_cores']:.2f} cores, load "
        f"{worst.usage.host['load_before'][0]:.2f}."
    )


def figures(points: list[DensityPoint], plan: Plan, speed: Speed) -> list[Figure]:
    out: list[Figure] = []
    mode = decode_mode()
    failed = [p for p in points if p.error]
    points = [p for p in points if not p.error]
    out.extend(
        Figure(
            "density",
            f"N={p.n}: benchmark run",
            None,
            note=f"N={p.n} could not be measured: {p.error} (the monitor's log is in the "
            "working directory; --keep keeps it)",
        )
        for p in failed
    )
    for index, point in enumerate(points):
        n, monitors, baselines = point.n, point.monitors, point.baselines
        pairs = list(zip(monitors, baselines, strict=True))
        out.append(
            _figure(
                f"N={n}: CPU s per stream-minute",
                [speed.per_stream_minute(m.usage, n) for m in monitors],
                "s",
                baseline=spread([speed.per_stream_minute(b, n) for b in baselines])[0],
                baseline_label="ffmpeg -c copy publishers",
                note=(
                    f"Median of {plan.repeats} draws (min-max), each a {plan.window:g} s "
                    f"monitor window then a {plan.window:g} s baseline window, alternating. "
                    f"Monitor: publish + follow + download + analyse ({mode}) + all checks, "
                    "one process; baseline: N ffmpeg processes that only publish. CPU "
                    "seconds at the machine's full speed (benchmarks/speed.py: a probe timed "
                    "the same work all along; the window's mean against the run's "
                    f"fastest, {_ms(speed.reference_ms)}); raw CPU seconds in the JSON."
                )
                if index == 0
                else "",
                details={
                    "raw_draws": [m.usage.per_stream_minute(n) for m in monitors],
                    "raw_baseline_draws": [b.per_stream_minute(n) for b in baselines],
                    "per_draw": [_draw_details(m, b, speed) for m, b in pairs],
                },
            )
        )
        if n == TARGET_N:
            out.append(_ratio_figure(pairs, speed))
        out.append(
            _figure(
                f"N={n}: RSS per stream",
                [m.usage.rss_bytes / n / 1e6 for m in monitors],
                "MB",
                baseline=spread([b.rss_bytes / max(1, b.processes) / 1e6 for b in baselines])[0],
                baseline_label="per ffmpeg process",
            )
        )
        out.append(
            _figure(
                f"N={n}: listed-time error p99 under load",
                _of(monitors, lambda m: percentile(m.errors_ms, 99)),
                "ms",
                Target("<=", 150.0) if n == TARGET_N else None,
            )
        )
        out.append(
            _figure(
                f"N={n}: event-loop lag p99",
                _of(monitors, lambda m: percentile(m.lag_ms, 99)),
                "ms",
                note=(
                    "A timer inside the monitor, due every 50 ms: how late it ran. Every "
                    "poll, download and publish write waits behind a busy loop: the first "
                    "sign of overload."
                )
                if index == 0
                else "",
            )
        )
        out.append(
            _figure(
                f"N={n}: event-loop lag max",
                _of(monitors, lambda m: max(m.lag_ms, default=math.nan)),
                "ms",
            )
        )
        out.append(
            _figure(
                f"N={n}: report backlog p99 (reported - listed)",
                _of(monitors, lambda m: percentile(m.backlog_ms, 99) / 1000),
                "s",
                details={"max_s": _of(monitors, lambda m: max(m.backlog_ms, default=0) / 1000)},
            )
        )
        # The cause goes with the late row when any draw had late segments, else with the
        # missed row; the definitions go with the first point's rows.
        cause = _missed_note(point)
        late_cause = cause if any(m.late for m in monitors) else ""
        missed_cause = cause if not late_cause else ""
        definitions = (
            (
                f"Late: listed at least {SETTLE_SECONDS:g} s before the window's end, "
                "reported after it (the monitor was that far behind).",
                f"Missed: never reported, even after a drain of up to "
                f"{DRAIN_LIMIT_SECONDS:g} s after the window.",
            )
            if index == 0
            else ("", "")
        )
        target = Target("<=", 0.0, text="0") if n == MISSED_TARGET_N else None
        expected = {"expected": _of(monitors, lambda m: float(m.expected))}
        out.append(
            _figure(
                f"N={n}: segments reported late",
                _of(monitors, lambda m: float(m.late)),
                "",
                target,
                note=" ".join(t for t in (definitions[0], late_cause) if t),
                details=expected,
            )
        )
        out.append(
            _figure(
                f"N={n}: segments missed",
                _of(monitors, lambda m: float(m.missed)),
                "",
                target,
                note=" ".join(t for t in (definitions[1], missed_cause) if t),
                details=expected,
            )
        )
        out.append(
            _figure(
                f"N={n}: check failures in the window",
                _of(monitors, lambda m: float(len(m.failures))),
                details={
                    "kinds": sorted({k for m in monitors for k in m.details["failure_kinds"]})
                },
            )
        )
    out.append(_slowdown_figure(points, speed))
    if len(points) >= 2:
        first, last = points[0], points[-1]
        out.append(
            _figure(
                f"RSS per added stream (N={first.n} -> {last.n})",
                [
                    (b.usage.rss_bytes - a.usage.rss_bytes) / (last.n - first.n) / 1e6
                    for a, b in zip(first.monitors, last.monitors, strict=True)
                ],
                "MB",
            )
        )
    return out


def _slowdown_figure(points: list[DensityPoint], speed: Speed) -> Figure:
    """How much slower than its fastest the machine ran in the measured windows: what the
    CPU figures above were normalised by, and a noisy run's signature."""
    usages = [u for p in points for u in (*(m.usage for m in p.monitors), *p.baselines)]
    reference = speed.reference_ms
    slowdowns = [
        chunk / reference
        for usage in usages
        if reference and (chunk := speed.chunk_ms(usage)) is not None
    ]
    return _figure(
        "machine slowdown in the windows (probe, against its fastest)",
        slowdowns,
        "x",
        note="The speed probe's chunk time in each window (monitor and baseline), over the "
        f"run's fastest ({_ms(reference)}): 1.0 is the machine at full speed. The CPU rows "
        "are divided by it.",
    )


def _ratio_figure(pairs: list[tuple[MonitorRun, Usage]], speed: Speed) -> Figure:
    ratios = [_ratio(m.usage, b, speed) for m, b in pairs]
    shares = [
        m.usage.main_thread_cpu_seconds / m.usage.cpu_seconds
        for m, _ in pairs
        if m.usage.main_thread_cpu_seconds is not None and m.usage.cpu_seconds > 0
    ]
    loop_share, _ = spread(shares)
    cores, _ = spread([m.usage.cores() for m, _ in pairs])
    segments_per_second = TARGET_N / 2.0
    analysis_ms = (1 - loop_share) * cores / segments_per_second * 1000
    return _figure(
        f"N={TARGET_N}: monitor CPU / ffmpeg baseline CPU",
        ratios,
        "x",
        Target("<=", 1.0),
        baseline=1.0,
        baseline_label="ffmpeg",
        details={"raw_draws": [m.usage.cores() / b.cores() for m, b in pairs if b.cores() > 0]},
        note=(
            "Each draw's monitor CPU over the baseline run right after it, both at full "
            "speed (raw ratios in the JSON). Where the "
            f"monitor's CPU goes at N={TARGET_N} (medians): {loop_share * 100:.0f} % in its "
            "event loop thread (publishing: a timer wake-up and one socket write per stream "
            "every 50 ms; polling, downloads, checks), the rest in segment analysis threads "
            "(PyAV demux, one keyframe decoded, all AAC frames decoded for A/V sync: "
            f"~{analysis_ms:.0f} ms CPU per segment). The ffmpeg baseline only publishes, in "
            "C; the monitor also plays every stream back."
        )
        if math.isfinite(loop_share)
        else "",
    )


async def run(workdir: Path, quick: bool = False, full: bool = False) -> list[Figure]:
    workdir.mkdir(parents=True, exist_ok=True)
    plan = QUICK if quick else FULL if full else DEFAULT
    points, speed = await run_plan(workdir, plan)
    return figures(points, plan, speed)


async def run_full(workdir: Path, quick: bool = False) -> list[Figure]:
    """`make bench-full`: more draws, longer windows, N=1 too (--quick still wins)."""
    return await run(workdir, quick=quick, full=not quick)
