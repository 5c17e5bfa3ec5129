"""Benchmark 4 (`make bench-soak` only): memory and resources over many session cycles.

10 streams in one `streamer monitor` process (benchmarks/monitor_proc.py) against a real
nginx-rtmp origin for 10 minutes, sessions cycling (duration 60 s, grace 5 s), default
decode mode. Every few seconds: RSS, open file descriptors and threads (psutil), asyncio
tasks (written by the process itself). After a warm-up of two session cycles, the first
cycle's window is compared with the last one's: RSS must grow by less than 5 %; file
descriptors, tasks and threads must not grow (their peaks, since sessions come and go).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import yaml
from tests.support.nginx import NginxOrigin
from tests.support.ports import free_port

from benchmarks.common import REPO, clip, new_key
from benchmarks.table import Figure, Target

STREAMS = 10
TOTAL_SECONDS = 600.0
SESSION_SECONDS = 60.0
GRACE_SECONDS = 5.0
CYCLE_SECONDS = SESSION_SECONDS + GRACE_SECONDS + 3.0  # plus drain
WARM_UP_CYCLES = 2
SAMPLE_EVERY = 2.0


def _config(origin: NginxOrigin, keys: list[str]) -> dict[str, Any]:
    return {
        "metrics_addr": f"127.0.0.1:{free_port()}",
        "streams": [
            {
                "name": f"soak{i:02d}",
                "ingest_url": origin.ingest_url(key),
                "playback_url": origin.playback_url(key),
                "duration": f"{SESSION_SECONDS:g}s",
                "grace_period": f"{GRACE_SECONDS:g}s",
                "ingest_region": "local",
                "playback_region": "local",
            }
            for i, key in enumerate(keys)
        ],
    }


def _tasks_at(stats: list[dict[str, Any]], start: float, end: float) -> list[int]:
    return [row["tasks"] for row in stats if start <= row["t"] <= end]


async def run(workdir: Path, quick: bool = False) -> list[Figure]:
    workdir.mkdir(parents=True, exist_ok=True)
    clip()  # generated before the clock starts
    total = 240.0 if quick else TOTAL_SECONDS
    origin = NginxOrigin(workdir / "origin").start()
    keys = [new_key(f"soak{i}x") for i in range(STREAMS)]
    config = workdir / "streams.yaml"
    config.write_text(yaml.safe_dump(_config(origin, keys)))
    events, stats_file = workdir / "events.jsonl", workdir / "stats.jsonl"
    env = {**os.environ, "LOG_FORMAT": "json", "PYTHONPATH": str(REPO)}
    samples: list[dict[str, float]] = []
    with open(workdir / "monitor.log", "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.monitor_proc",
                str(events),
                str(stats_file),
                "--",
                "monitor",
                "--config",
                str(config),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
    started = time.time()
    try:
        ps = psutil.Process(process.pid)
        while time.time() - started < total:
            if process.poll() is not None:
                raise RuntimeError(f"the monitor exited with {process.returncode}")
            with contextlib.suppress(psutil.Error):
                samples.append(
                    {
                        "t": time.time(),
                        "rss": ps.memory_info().rss,
                        "fds": ps.num_fds(),
                        "threads": ps.num_threads(),
                    }
                )
            await asyncio.sleep(SAMPLE_EVERY)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        origin.stop()
    stats = [json.loads(line) for line in stats_file.read_text().splitlines() if line.strip()]
    sessions = [
        json.loads(line) for line in events.read_text().splitlines() if '"session_ended"' in line
    ]
    first_start = started + WARM_UP_CYCLES * CYCLE_SECONDS
    first = (first_start, first_start + CYCLE_SECONDS)
    last = (started + total - CYCLE_SECONDS, started + total)

    def window(key: str, span: tuple[float, float]) -> list[float]:
        return [s[key] for s in samples if span[0] <= s["t"] <= span[1]]

    rss_first = statistics.median(window("rss", first) or [float("nan")])
    rss_last = statistics.median(window("rss", last) or [float("nan")])
    growth = (rss_last - rss_first) / rss_first * 100
    outcomes: dict[str, int] = {}
    for session in sessions:
        outcomes[session["outcome"]] = outcomes.get(session["outcome"], 0) + 1
    figures = [
        Figure(
            "soak",
            f"RSS growth after warm-up ({STREAMS} streams, {total / 60:g} min)",
            growth,
            "%",
            Target("<", 5.0, text="< 5 %"),
            details={
                "rss_first_cycle_mb": rss_first / 1e6,
                "rss_last_cycle_mb": rss_last / 1e6,
                "sessions_ended": outcomes,
                "samples": len(samples),
            },
        )
    ]
    for key, label, values in (
        ("fds", "open file descriptors", None),
        ("threads", "threads", None),
        ("tasks", "asyncio tasks", (_tasks_at(stats, *first), _tasks_at(stats, *last))),
    ):
        pair = values if values is not None else (window(key, first), window(key, last))
        before = statistics.median(pair[0]) if pair[0] else float("nan")
        after = statistics.median(pair[1]) if pair[1] else float("nan")
        figures.append(
            Figure(
                "soak",
                f"{label}: last cycle - first cycle (medians)",
                float(after - before),
                "",
                Target("<=", 0.0, text="≤ 0 (flat)"),
                details={
                    "first_cycle_median": before,
                    "last_cycle_median": after,
                    "first_cycle_peak": max(pair[0], default=None),
                    "last_cycle_peak": max(pair[1], default=None),
                },
            )
        )
    return figures
