"""Benchmark 2: N streams in one `streamer monitor` process, against an ffmpeg baseline.

A point is a setup and an N. A setup is an origin (nginx-rtmp's copy path, one 640x360
rendition per stream, or its two-rendition ffmpeg ladder, 640x360 + 256x144 and a master
playlist) and a decode mode (the default, or `keyframe`). For each point, against one real
nginx-rtmp origin, `repeats` draws, each a monitor run followed by a baseline run (monitor,
baseline, monitor, baseline, ...: slow drifts of a shared machine hit both sides alike):

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
2. Then what a user would script instead, over a window of the same length: N `ffmpeg -re
   -stream_loop -1 -i clip -c copy -f flv` publishers and, for the default mode, N `ffmpeg
   -i <lowest rendition> -f null -` players, which decode every frame of one rendition per
   stream. Publishers and players are measured apart: the default mode is held to both
   together, `keyframe` mode to the publishers alone.

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
from typing import Any, Literal

import psutil
import yaml
from tests.support.nginx import COPY_LADDER, NginxOrigin
from tests.support.ports import free_port

from benchmarks.common import REPO, clip, new_key, percentile, summary
from benchmarks.speed import Speed, SpeedProbe
from benchmarks.table import Figure, Target
from benchmarks.truth import PlaylistTruth
from benchmarks.usage import Usage, measure


@dataclass(frozen=True)
class Setup:
    """What the monitor watches and how it decodes."""

    origin: Literal["copy", "ladder"]
    mode: Literal["default", "keyframe"]  # default: STREAMER_DECODE_MODE unset

    @property
    def label(self) -> str:
        return f"{self.origin}, {self.mode}"

    @property
    def renditions(self) -> tuple[tuple[str, str], ...]:
        """(rendition name as the monitor reports it, playlist file suffix), lowest last.
        The ladder's two renditions both copy the publish (see `_origin`): the monitor
        names them by resolution, the second of a name with its rank."""
        if self.origin == "copy":
            return (("source", ""),)
        names = ("640x360", "640x360-2")
        return tuple((name, suffix) for name, (suffix, *_) in zip(names, COPY_LADDER, strict=True))

    @property
    def players(self) -> bool:
        """Whether the baseline has players: the default mode decodes every frame of one
        rendition per stream, as they do; keyframe mode is held to the publishers alone."""
        return self.mode == "default"


COPY_DEFAULT = Setup("copy", "default")
COPY_KEYFRAME = Setup("copy", "keyframe")
LADDER_DEFAULT = Setup("ladder", "default")
LADDER_KEYFRAME = Setup("ladder", "keyframe")
SETUPS = (LADDER_DEFAULT, COPY_DEFAULT, LADDER_KEYFRAME, COPY_KEYFRAME)


@dataclass(frozen=True)
class Plan:
    points: tuple[tuple[Setup, int], ...]
    repeats: int
    window: float  # seconds, monitor and baseline alike


QUICK = Plan(((LADDER_DEFAULT, 10), (COPY_KEYFRAME, 10)), repeats=2, window=10.0)
# `make bench`: the defaults where the goal is set (a ladder, N = 50), and keyframe mode at
# the largest N on the copy path.
DEFAULT = Plan(
    ((LADDER_DEFAULT, 10), (LADDER_DEFAULT, 50), (COPY_KEYFRAME, 100)), repeats=3, window=14.0
)
FULL = Plan(  # `make bench-full`: every setup at every N
    tuple((setup, n) for setup in SETUPS for n in (1, 10, 50, 100)), repeats=3, window=20.0
)

TARGET_N = 50  # the N whose CPU is held to the ffmpeg baseline in the default mode
MISSED_TARGET_N = 50  # from this N on, every segment must be reported in time
WARMUP_LIMIT_SECONDS = 60.0
BASELINE_START_LIMIT_SECONDS = 30.0
DRAIN_LIMIT_SECONDS = 15.0
STOP_LIMIT_SECONDS = 15.0
# The streams' start spread: one segment period, so segment boundaries fall evenly.
START_SPREAD = "2s"
# Players open the live playlist and start decoding: not steady state yet.
PLAYER_START_SECONDS = 3.0
SETTLE_SECONDS = 4.0  # a segment listed this close to the window's end may still download
# A monitor that keeps up reports a segment well before the next one is listed: one
# further back than a segment's duration (at the 99th percentile) has segments queuing up
# and is behind, even before any of them is late at the window's end.
BEHIND_SECONDS = 2.0
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
    gc_pauses_ms: list[float] = field(default_factory=list)  # every collection in the window


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


def _track(record: dict[str, Any]) -> str:
    """One rendition of one stream: what segment sequence numbers count along."""
    return f"{record['stream']}/{record.get('rendition', 'source')}"


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
        # (track, sequence): see _track
        self.segments: dict[tuple[str, int], dict[str, Any]] = {}
        self.fetched: dict[tuple[str, int], dict[str, Any]] = {}

    def update(self) -> None:
        for record in self._lines.read_new():
            self.records.append(record)
            if record["type"] == "segment":
                self.segments.setdefault((_track(record), record["sequence"]), record)
            elif record["type"] == "fetched":
                self.fetched.setdefault((_track(record), record["sequence"]), record)

    def count_by_track(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for track, _ in self.segments:
            counts[track] = counts.get(track, 0) + 1
        return counts


async def _warm_up(
    reported: _Reported, tracks: list[str], process: subprocess.Popen[bytes]
) -> float:
    """Until every rendition of every stream has two segments reported by the monitor: all
    sessions publish, their followers have found the segment rhythm, and start-up work is
    over."""
    started = time.monotonic()
    while time.monotonic() - started < WARMUP_LIMIT_SECONDS:
        if process.poll() is not None:
            raise RuntimeError(f"the monitor exited with {process.returncode}")
        reported.update()
        counts = reported.count_by_track()
        if all(counts.get(track, 0) >= 2 for track in tracks):
            break
        await asyncio.sleep(0.25)
    return time.monotonic() - started


def _expected(
    truth: dict[str, dict[int, float]],
    by_track: dict[str, str],
    window_start: float,
    window_end: float,
) -> dict[tuple[str, int], float]:
    """(track, sequence) -> truth listed time, for segments the monitor must report;
    `by_track`: track -> its playlist's file name."""
    out = {}
    for track, name in by_track.items():
        for sequence, listed in truth.get(name, {}).items():
            if window_start <= listed <= window_end - SETTLE_SECONDS:
                out[(track, sequence)] = listed
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


def _gc_pauses(stats: Path, start: float, end: float) -> list[tuple[int, float]]:
    """The window's garbage collections: (generation, milliseconds)."""
    return [
        (generation, pause * 1000)
        for row in JsonLines(stats).read_new()
        for at, generation, pause in row.get("gc", [])
        if start <= at <= end
    ]


def _tracks(setup: Setup, keys: list[str]) -> dict[str, str]:
    """track (stream/rendition) -> the origin's playlist file for it."""
    return {
        f"s{i:03d}/{rendition}": f"{key}{suffix}.m3u8"
        for i, key in enumerate(keys)
        for rendition, suffix in setup.renditions
    }


def _monitor_env(setup: Setup) -> dict[str, str]:
    env = {
        **os.environ,
        "LOG_FORMAT": "json",
        # This checkout's code, whatever the interpreter has installed (then the caller's
        # path: optional packages such as uvloop, to compare with and without).
        "PYTHONPATH": os.pathsep.join(
            p for p in [str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")] if p
        ),
    }
    env.pop("STREAMER_DECODE_MODE", None)  # the default: what users run
    if setup.mode == "keyframe":
        env["STREAMER_DECODE_MODE"] = "keyframe"
    return env


async def _monitor(
    workdir: Path, origin: NginxOrigin, setup: Setup, n: int, window: float, draw: int
) -> MonitorRun:
    keys = [new_key(f"{setup.origin[0]}{setup.mode[0]}{n}d{draw}s{i}x") for i in range(n)]
    by_track = _tracks(setup, keys)
    tag = f"{setup.origin}-{setup.mode}-{n}-{draw}"
    config = workdir / f"streams-{tag}.yaml"
    config.write_text(yaml.safe_dump(_stream_config(origin, keys, free_port())))
    events, stats, log = (workdir / f"{kind}-{tag}.jsonl" for kind in ("events", "stats", "log"))
    truth = PlaylistTruth(origin.hls_dir, every=0.1).only(set(by_track.values())).start()
    reported = _Reported(events)
    env = _monitor_env(setup)
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
        warm_up = await _warm_up(reported, list(by_track), process)
        usage = await measure([psutil.Process(process.pid)], window)
        window_start, window_end = usage.started_at, usage.ended_at
        # A snapshot: the watcher thread goes on adding to its dicts during the drain.
        listed = {name: dict(seqs) for name, seqs in list(truth.first_listed.items())}
        expected = _expected(listed, by_track, window_start, window_end)
        drain = await _drain(reported, expected, process)
    finally:
        exit_seconds, killed = _stop(process)
        truth.stop()
    reported.update()
    collections = _gc_pauses(stats, window_start, window_end)
    run = _score(
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
            "gc_pause_ms": {
                "all": summary([ms for _, ms in collections]),
                "full": summary([ms for generation, ms in collections if generation == 2]),
            },
        },
    )
    run.gc_pauses_ms = [ms for _, ms in collections]
    return run


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


@dataclass
class BaselineRun:
    publishers: Usage
    players: Usage | None  # None: a setup held to the publishers alone

    def total(self, speed: Speed) -> float:
        """Cores at full speed, publishers and players together."""
        players = speed.cores(self.players) if self.players is not None else 0.0
        return speed.cores(self.publishers) + players

    def cpu_seconds(self, speed: Speed) -> float:
        return self.total(speed) * self.publishers.window_seconds


def _ffmpeg(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _player_url(origin: NginxOrigin, setup: Setup, key: str) -> str:
    """The lowest rendition's media playlist: what a scripted player would decode."""
    suffix = setup.renditions[-1][1]
    return f"http://127.0.0.1:{origin.http_port}/hls/{key}{suffix}.m3u8"


async def _baseline(
    origin: NginxOrigin, clip_path: Path, setup: Setup, n: int, window: float, draw: int
) -> BaselineRun:
    keys = [new_key(f"ff{setup.origin[0]}{setup.mode[0]}{n}d{draw}x{i}x") for i in range(n)]
    publishers = [
        _ffmpeg(
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
        )
        for key in keys
    ]
    players: list[subprocess.Popen[bytes]] = []
    try:
        # Start-up (reading the clip, connecting) is not steady state: the window opens
        # once the origin has listed a segment of every rendition of every publisher.
        playlists = [f"{key}{suffix}.m3u8" for key in keys for _, suffix in setup.renditions]
        started = time.monotonic()
        while time.monotonic() - started < BASELINE_START_LIMIT_SECONDS:
            if all((origin.hls_dir / name).exists() for name in playlists):
                break
            await asyncio.sleep(0.25)
        if setup.players:
            players = [
                _ffmpeg("-i", _player_url(origin, setup, key), "-f", "null", "-") for key in keys
            ]
            await asyncio.sleep(PLAYER_START_SECONDS)
        alive = [psutil.Process(p.pid) for p in publishers if p.poll() is None]
        if len(alive) < n:
            raise RuntimeError(f"only {len(alive)} of {n} ffmpeg publishers are running")
        playing = [psutil.Process(p.pid) for p in players if p.poll() is None]
        if len(playing) < len(players):
            raise RuntimeError(f"only {len(playing)} of {n} ffmpeg players are running")
        if not setup.players:
            return BaselineRun(await measure(alive, window), None)
        published, played = await asyncio.gather(measure(alive, window), measure(playing, window))
        return BaselineRun(published, played)
    finally:
        for process in [*players, *publishers]:
            process.terminate()
        for process in [*players, *publishers]:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- the points ---------------------------------------------------------------------------


@dataclass
class DensityPoint:
    setup: Setup
    n: int
    monitors: list[MonitorRun] = field(default_factory=list)
    baselines: list[BaselineRun] = field(default_factory=list)
    error: str = ""  # why the point could not be measured (its draws are then dropped)

    @property
    def name(self) -> str:
        return f"{self.setup.label}, N={self.n}"


async def run_plan(workdir: Path, plan: Plan) -> tuple[list[DensityPoint], Speed]:
    """Every point of the plan, and the machine's speed all along (see benchmarks/speed.py)."""
    _, _, clip_path = clip()
    probe = SpeedProbe(workdir / "speed.txt").start()
    try:
        points = await _run_points(workdir, plan, clip_path)
    finally:
        probe.stop()
    return points, Speed(probe.samples())


def _origin(workdir: Path, setup: Setup) -> NginxOrigin:
    """The ladder copies the publish into both renditions: nginx's transcoding ladder costs
    about 12 % of a core per stream here, and 50 of them would starve the machine the
    benchmark measures on. Its lowest rendition is then 640x360 too: the monitor's full
    decode and the players' decode both cost what a 640x360 rendition costs."""
    return NginxOrigin(workdir, copy_ladder=setup.origin == "ladder")


async def _run_points(workdir: Path, plan: Plan, clip_path: Path) -> list[DensityPoint]:
    points = []
    for setup, n in plan.points:
        point = DensityPoint(setup, n)
        origin = _origin(workdir / f"origin-{setup.origin}-{setup.mode}-{n}", setup).start()
        try:
            for draw in range(plan.repeats):
                monitor = await _monitor(workdir, origin, setup, n, plan.window, draw)
                await asyncio.sleep(1.0)
                baseline = await _baseline(origin, clip_path, setup, n, plan.window, draw)
                point.monitors.append(monitor)
                point.baselines.append(baseline)
                _progress(point, draw, monitor, baseline)
        except Exception as exc:  # one point that cannot run must not cost the others
            traceback.print_exc()
            point.error = f"{type(exc).__name__}: {exc}"
        finally:
            origin.stop()
        points.append(point)
    return points


def _progress(point: DensityPoint, draw: int, monitor: MonitorRun, baseline: BaselineRun) -> None:
    host = monitor.usage.host
    players = (
        f" + players {baseline.players.cores() * 100:.0f}%" if baseline.players is not None else ""
    )
    print(
        f"   {point.name} draw {draw + 1}: monitor {monitor.usage.cores() * 100:.0f}% of a "
        f"core, ffmpeg publishers {baseline.publishers.cores() * 100:.0f}%{players}, listed "
        f"p99 {percentile(monitor.errors_ms, 99):.0f} ms, loop lag p99 "
        f"{percentile(monitor.lag_ms, 99):.0f} ms, late {monitor.late}, missed "
        f"{monitor.missed} of {monitor.expected}, failures {len(monitor.failures)}; load "
        f"{host['load_before'][0]:.2f}, others {host['other_cores']:.2f} cores",
        file=sys.stderr,
        flush=True,
    )


# -- figures ------------------------------------------------------------------------------


def describe(setup: Setup) -> str:
    """The setup, for the table."""
    origin = (
        "nginx copy path, one 640x360 rendition per stream"
        if setup.origin == "copy"
        else "nginx ladder of two renditions per stream and a master playlist, both copies of "
        "the 640x360 publish (transcoding costs 12 % of a core per stream here)"
    )
    if setup.mode == "keyframe":
        decoding = "decode mode keyframe: keyframes decoded, every other frame known by its packet"
    else:
        decoding = (
            "default decode mode (lowest): every frame of the lowest rendition, keyframes of "
            "the others"
        )
    return f"{origin}; {decoding}"


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


def _pooled_figure(
    name: str,
    samples: Sequence[Sequence[float]],
    q: float,
    unit: str,
    scale: float = 1.0,
    target: Target | None = None,
    **kwargs: Any,
) -> Figure:
    """The q-th percentile of every draw's samples together, each draw's own as the spread.
    A p99 of one draw rests on its one or two largest samples (100 segments in a window at
    N = 10): the median of three such tails moves more from run to run than the pooled
    tail does."""
    per_draw = [percentile(s, q) * scale for s in samples]
    pooled = percentile([value for draw in samples for value in draw], q) * scale
    details = {"draws": per_draw, "pooled": True, **kwargs.pop("details", {})}
    _, limits = spread(per_draw)
    return Figure("density", name, pooled, unit, target, spread=limits, details=details, **kwargs)


def _ratio(monitor: Usage, baseline_cores: float, speed: Speed) -> float:
    """Monitor over baseline cores, each at full speed: a slow spell of the machine in one
    of the two windows does not count against (or for) the monitor."""
    return speed.cores(monitor) / baseline_cores if baseline_cores > 0 else math.nan


def _ms(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f} ms per probe chunk"


def _of(runs: Sequence[MonitorRun], value: Callable[[MonitorRun], float]) -> list[float]:
    return [value(run) for run in runs]


def _draw_details(monitor: MonitorRun, baseline: BaselineRun, speed: Speed) -> dict[str, Any]:
    usage = monitor.usage
    publishers, players = baseline.publishers, baseline.players
    return {
        "speed_reference_ms": speed.reference_ms,
        "monitor_speed_ms": speed.chunk_ms(usage),
        "monitor_cores_at_full_speed": speed.cores(usage),
        "baseline_speed_ms": speed.chunk_ms(publishers),
        "publishers_cores_at_full_speed": speed.cores(publishers),
        "players_cores_at_full_speed": speed.cores(players) if players is not None else None,
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
        "publishers_cores": publishers.cores(),
        "players_cores": players.cores() if players is not None else None,
        "baseline_cpu_seconds": publishers.cpu_seconds
        + (players.cpu_seconds if players is not None else 0.0),
        "baseline_window_seconds": publishers.window_seconds,
        "baseline_host": publishers.host,
        "listed_error_ms": summary(monitor.errors_ms),
        "report_backlog_ms": summary(monitor.backlog_ms),
        "loop_lag_ms": summary(monitor.lag_ms),
        **monitor.details,
    }


def _cause(run: MonitorRun) -> str:
    """What kept segments from being reported in time, in one phrase."""
    details = run.details
    causes = []
    if run.late or details["missed_never_handed_over"] or _backlogged(run):
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


def _backlogged(run: MonitorRun) -> bool:
    """Segments reported more than BEHIND_SECONDS after being listed (p99)."""
    return percentile(run.backlog_ms, 99) > BEHIND_SECONDS * 1000


def fell_behind(run: MonitorRun) -> bool:
    """Segments late or missed, or backlogged: the monitor is not keeping up with N streams."""
    return bool(run.late or run.missed) or _backlogged(run)


def _missed_note(point: DensityPoint) -> str:
    """Why the monitor fell behind, from the numbers of the draws where it did."""
    bad = [m for m in point.monitors if fell_behind(m)]
    if not bad:
        return ""
    worst = max(bad, key=lambda m: (m.late + m.missed, percentile(m.backlog_ms, 99)))
    backlog = summary(worst.backlog_ms)
    lag = summary(worst.lag_ms)
    download = worst.details["listed_to_downloaded_ms"]
    analysis = worst.details["downloaded_to_analysed_ms"]
    return (
        f"{point.name}: the monitor fell behind in {len(bad)} of {len(point.monitors)} "
        f"draws (reports more than {BEHIND_SECONDS:g} s after listing, or segments late or "
        f"missed); the worst, {worst.late} late and {worst.missed} missed of "
        f"{worst.expected}: {_cause(worst)}. Report backlog (reported - listed) p99 "
        f"{backlog.get('p99', math.nan) / 1000:.1f} s, max "
        f"{backlog.get('max', math.nan) / 1000:.1f} s; listed to downloaded p99 "
        f"{download.get('p99', math.nan) / 1000:.1f} s, downloaded to analysed p99 "
        f"{analysis.get('p99', math.nan) / 1000:.1f} s; event-loop lag p99 "
        f"{lag.get('p99', math.nan):.0f} ms, max {lag.get('max', math.nan):.0f} ms; "
        f"monitor {worst.usage.cores():.2f} cores, other processes "
        f"{worst.usage.host['other_cores']:.2f} cores, load "
        f"{worst.usage.host['load_before'][0]:.2f}."
    )


def clean(point: DensityPoint) -> bool:
    """No draw fell behind (see `fell_behind`) or failed a check: a monitor
    seconds behind live is not monitoring N streams, even if it reports them all later."""
    return all(not fell_behind(m) and not m.failures for m in point.monitors)


def figures(points: list[DensityPoint], plan: Plan, speed: Speed) -> list[Figure]:
    out: list[Figure] = []
    failed = [p for p in points if p.error]
    points = [p for p in points if not p.error]
    out.extend(
        Figure(
            "density",
            f"{p.name}: benchmark run",
            None,
            note=f"{p.name} could not be measured: {p.error} (the monitor's log is in the "
            "working directory; --keep keeps it)",
        )
        for p in failed
    )
    described: set[Setup] = set()
    for index, point in enumerate(points):
        first_of_setup = point.setup not in described
        described.add(point.setup)
        out.extend(_point_figures(point, plan, speed, index == 0, first_of_setup))
    out.extend(_machine_figures(points))
    out.append(_slowdown_figure(points, speed))
    for setup in SETUPS:
        of_setup = [p for p in points if p.setup == setup]
        if len(of_setup) >= 2:
            first, last = of_setup[0], of_setup[-1]
            out.append(
                _figure(
                    f"{setup.label}: RSS per added stream (N={first.n} -> {last.n})",
                    [
                        (b.usage.rss_bytes - a.usage.rss_bytes) / (last.n - first.n) / 1e6
                        for a, b in zip(first.monitors, last.monitors, strict=True)
                    ],
                    "MB",
                    Target("<=", 5.0) if setup.mode == "default" else None,
                )
            )
    return out


def _machine_figures(points: list[DensityPoint]) -> list[Figure]:
    """Streams per 2-core machine at the defaults: per origin measured in the default mode,
    the largest N at which no draw fell behind or failed a check."""
    out = []
    for origin in ("ladder", "copy"):
        measured = [p for p in points if p.setup == Setup(origin, "default")]
        if not measured:
            continue
        good = [p.n for p in measured if clean(p)]
        out.append(
            Figure(
                "density",
                f"streams per 2-core machine at the defaults ({origin})",
                float(max(good, default=0)),
                "",
                Target(">=", 50.0) if origin == "ladder" else None,
                note=(
                    "The largest N measured (of "
                    + ", ".join(str(p.n) for p in measured)
                    + ") at which no draw fell behind (reports over 2 s after listing, or "
                    "segments late or missed) or failed a check, default decode mode, every "
                    "check on, on this machine (2 cores shared with the origin and the "
                    "benchmark)."
                ),
            )
        )
    return out


def _point_figures(
    point: DensityPoint, plan: Plan, speed: Speed, first: bool, first_of_setup: bool
) -> list[Figure]:
    setup, n, monitors, baselines = point.setup, point.n, point.monitors, point.baselines
    name = point.name
    pairs = list(zip(monitors, baselines, strict=True))
    out = [
        _figure(
            f"{name}: CPU s per stream-minute",
            [speed.per_stream_minute(m.usage, n) for m in monitors],
            "s",
            baseline=spread([b.total(speed) * 60 / n for b in baselines])[0],
            baseline_label="ffmpeg publishers + players" if setup.players else "ffmpeg publishers",
            note=" ".join(
                t
                for t in (
                    f"{setup.label}: {describe(setup)}." if first_of_setup else "",
                    (
                        f"Median of {plan.repeats} draws (min-max), each a {plan.window:g} s "
                        f"monitor window then a {plan.window:g} s baseline window, alternating. "
                        "Monitor: publish + follow + download + analyse + all checks, one "
                        "process; baseline: N ffmpeg -c copy publishers, and for the default "
                        "mode N ffmpeg players decoding every frame of the lowest rendition. "
                        "CPU seconds at the machine's full speed (benchmarks/speed.py: a probe "
                        "timed the same work all along; the window's mean against the run's "
                        f"fastest, {_ms(speed.reference_ms)}); raw CPU seconds in the JSON."
                    )
                    if first
                    else "",
                )
                if t
            ),
            details={
                "raw_draws": [m.usage.per_stream_minute(n) for m in monitors],
                "raw_baseline_draws": [
                    (b.publishers.cpu_seconds + (b.players.cpu_seconds if b.players else 0.0))
                    / (n * b.publishers.window_seconds / 60)
                    for b in baselines
                ],
                "per_draw": [_draw_details(m, b, speed) for m, b in pairs],
            },
        ),
        _ratio_figure(point, speed),
        _figure(
            f"{name}: RSS per stream",
            [m.usage.rss_bytes / n / 1e6 for m in monitors],
            "MB",
            baseline=spread(
                [b.publishers.rss_bytes / max(1, b.publishers.processes) / 1e6 for b in baselines]
            )[0],
            baseline_label="per ffmpeg publisher",
        ),
        _pooled_figure(
            f"{name}: listed-time error p95 under load",
            [m.errors_ms for m in monitors],
            95,
            "ms",
            note=(
                "Percentile rows: of every draw's samples together; the range is each "
                "draw's own percentile. The p95, not the p99: a draw's p99 is set by its "
                "one or two missed polls and spread 34-82 ms between draws at N = 10 "
                "(all in the JSON); the p99 is a row where its target is."
            )
            if first
            else "",
        ),
        *(
            [
                _pooled_figure(
                    f"{name}: listed-time error p99 under load",
                    [m.errors_ms for m in monitors],
                    99,
                    "ms",
                    target=Target("<=", 150.0),
                )
            ]
            if n == TARGET_N
            else []
        ),
        _pooled_figure(
            f"{name}: event-loop lag p99",
            [m.lag_ms for m in monitors],
            99,
            "ms",
            note=(
                "A timer inside the monitor, due every 50 ms: how late it ran. Every "
                "poll, download and publish write waits behind a busy loop: the first "
                "sign of overload."
            )
            if first
            else "",
        ),
        _figure(
            f"{name}: event-loop lag max",
            _of(monitors, lambda m: max(m.lag_ms, default=math.nan)),
            "ms",
        ),
        _figure(
            f"{name}: longest garbage-collection pause",
            _of(monitors, lambda m: max(m.gc_pauses_ms, default=0.0)),
            "ms",
            note=(
                "Timed inside the monitor (gc.callbacks). A collection stops the event "
                "loop: a long one shows as an event-loop lag of the same length."
            )
            if first
            else "",
        ),
        _pooled_figure(
            f"{name}: report backlog p99 (reported - listed)",
            [m.backlog_ms for m in monitors],
            99,
            "s",
            scale=1 / 1000,
            details={"max_s": _of(monitors, lambda m: max(m.backlog_ms, default=0) / 1000)},
        ),
    ]
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
        if first
        else ("", "")
    )
    target = Target("<=", 0.0, text="0") if n >= MISSED_TARGET_N else None
    expected = {"expected": _of(monitors, lambda m: float(m.expected))}
    out.append(
        _figure(
            f"{name}: segments reported late",
            _of(monitors, lambda m: float(m.late)),
            "",
            target,
            note=" ".join(t for t in (definitions[0], late_cause) if t),
            details=expected,
        )
    )
    out.append(
        _figure(
            f"{name}: segments missed",
            _of(monitors, lambda m: float(m.missed)),
            "",
            target,
            note=" ".join(t for t in (definitions[1], missed_cause) if t),
            details=expected,
        )
    )
    out.append(
        _figure(
            f"{name}: check failures in the window",
            _of(monitors, lambda m: float(len(m.failures))),
            "",
            Target("<=", 0.0, text="0"),
            details={
                "kinds": sorted({k for m in monitors for k in m.details["failure_kinds"]}),
                "examples": [e for m in monitors for e in m.details["failure_examples"]][:5],
            },
        )
    )
    # Whether the monitor kept up, on every figure of the point: two runs that both fell
    # behind agree on that, whatever pace of backlog each machine granted
    # (benchmarks/compare.py).
    behind = sum(1 for m in monitors if fell_behind(m))
    for figure in out:
        figure.details.update(draws_behind=behind, draws_total=len(monitors))
    return out


def _slowdown_figure(points: list[DensityPoint], speed: Speed) -> Figure:
    """How much slower than its fastest the machine ran in the measured windows: what the
    CPU figures above were normalised by, and a noisy run's signature."""
    usages = [
        u
        for p in points
        for u in (
            *(m.usage for m in p.monitors),
            *(b.publishers for b in p.baselines),
        )
    ]
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


def _ratio_figure(point: DensityPoint, speed: Speed) -> Figure:
    """Monitor over what a user would script instead: publishers and players for the
    default mode (target at N = TARGET_N), the publishers alone for keyframe mode."""
    setup, n = point.setup, point.n
    pairs = list(zip(point.monitors, point.baselines, strict=True))
    if setup.players:
        ratios = [_ratio(m.usage, b.total(speed), speed) for m, b in pairs]
        against, target = "ffmpeg publishers + players", n == TARGET_N
    else:
        ratios = [_ratio(m.usage, speed.cores(b.publishers), speed) for m, b in pairs]
        against, target = "ffmpeg publishers", True
    shares = [
        m.usage.main_thread_cpu_seconds / m.usage.cpu_seconds
        for m, _ in pairs
        if m.usage.main_thread_cpu_seconds is not None and m.usage.cpu_seconds > 0
    ]
    loop_share, _ = spread(shares)
    cores, _ = spread([m.usage.cores() for m, _ in pairs])
    segments_per_second = n * len(setup.renditions) / 2.0
    analysis_ms = (1 - loop_share) * cores / segments_per_second * 1000
    # A monitor that fell behind did less work than it was given, within what the machine
    # had left: its CPU ratio then says nothing about its cost, and is held to no target.
    behind = sum(1 for m in point.monitors if fell_behind(m))
    unheld = (
        f" Not held to the target: the monitor fell behind in {behind} of "
        f"{len(point.monitors)} draws (reports over 2 s after listing, or segments late or "
        "missed), its CPU capped by the machine rather than set by its work; see the "
        "streams-per-machine row."
        if target and behind
        else ""
    )
    return _figure(
        f"{point.name}: monitor CPU / {against} CPU",
        ratios,
        "x",
        Target("<=", 1.0) if target and not behind else None,
        baseline=1.0,
        baseline_label="ffmpeg",
        details={
            "raw_draws": [
                m.usage.cores() / (b.publishers.cores() + (b.players.cores() if b.players else 0.0))
                for m, b in pairs
                if b.publishers.cores() > 0
            ]
        },
        note=(
            "Each draw's monitor CPU over the baseline run right after it, both at full "
            f"speed (raw ratios in the JSON). Where the monitor's CPU goes (medians): "
            f"{loop_share * 100:.0f} % in its event loop thread (publishing, polling, "
            "downloads, checks), the rest in segment analysis threads (PyAV demux and "
            f"decode, timecode reads, audio for A/V sync: ~{analysis_ms:.1f} ms CPU per "
            "segment). Profile: docs/benchmarks.md, 'Where the time goes'." + unheld
        )
        if math.isfinite(loop_share) and target
        else unheld.strip(),
    )


async def run(workdir: Path, quick: bool = False, full: bool = False) -> list[Figure]:
    workdir.mkdir(parents=True, exist_ok=True)
    plan = QUICK if quick else FULL if full else DEFAULT
    points, speed = await run_plan(workdir, plan)
    return figures(points, plan, speed)


async def run_full(workdir: Path, quick: bool = False) -> list[Figure]:
    """`make bench-full`: more draws, longer windows, N=1 too (--quick still wins)."""
    return await run(workdir, quick=quick, full=not quick)
