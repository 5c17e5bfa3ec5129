"""Benchmark 4 (`make bench-soak` only): memory and resources over many session cycles.

10 streams in one `streamer monitor` process (benchmarks/monitor_proc.py) against a real
nginx-rtmp origin for 10 minutes, sessions cycling (duration 60 s, grace 5 s), default
decode mode. Every few seconds: RSS, open file descriptors and threads (psutil), asyncio
tasks (written by the process itself). After a warm-up of two session cycles, the first
cycle's window is compared with the last one's: RSS must grow by less than 5 %; file
descriptors, tasks and threads must not grow (their peaks, since sessions come and go).

Two more streams run in Livepeer API mode (the local fake API) against streamer's own
origin (`streamer origin`): every session publishes under a fresh stream key, the case
where an origin that kept finished sessions' files would fill its disk. The origin's HLS
directory is measured the same way and must stay flat.
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
from pathlib import Path
from typing import Any

import psutil
import yaml
from tests.support.fake_livepeer import FakeLivepeer
from tests.support.nginx import NginxOrigin
from tests.support.ports import free_port, wait_for_port

from benchmarks.common import REPO, clip, new_key
from benchmarks.table import Figure, Target
from streamer.origin.server import HLS_DIR_ENV

STREAMS = 10
ORIGIN_STREAMS = 2  # API mode, a fresh key per session, on streamer's own origin
API_KEY = "soak-api-key"
TOTAL_SECONDS = 600.0
SESSION_SECONDS = 60.0
GRACE_SECONDS = 5.0
CYCLE_SECONDS = SESSION_SECONDS + GRACE_SECONDS + 3.0  # plus drain
WARM_UP_CYCLES = 2
SAMPLE_EVERY = 2.0


def _config(origin: NginxOrigin, keys: list[str], api_url: str) -> dict[str, Any]:
    timing = {
        "duration": f"{SESSION_SECONDS:g}s",
        "grace_period": f"{GRACE_SECONDS:g}s",
        "ingest_region": "local",
        "playback_region": "local",
    }
    return {
        "metrics_addr": f"127.0.0.1:{free_port()}",
        "streams": [
            {
                "name": f"soak{i:02d}",
                "ingest_url": origin.ingest_url(key),
                "playback_url": origin.playback_url(key),
                **timing,
            }
            for i, key in enumerate(keys)
        ]
        + [
            {
                "name": f"origin{i:02d}",
                "livepeer": {"api_url": api_url, "api_key": API_KEY, "profiles": []},
                **timing,
            }
            for i in range(ORIGIN_STREAMS)
        ],
    }


def _pythonpath() -> str:
    """The checkout's sources first, whatever the virtualenv has installed."""
    return os.pathsep.join([str(REPO), str(REPO / "src"), os.environ.get("PYTHONPATH", "")])


class OwnOrigin:
    """`streamer origin` in a process of its own, writing into `hls_dir`."""

    def __init__(self, hls_dir: Path, log_path: Path) -> None:
        self.hls_dir = hls_dir
        self.rtmp_port, self.http_port = free_port(), free_port()
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "streamer",
                    "origin",
                    "--rtmp-port",
                    str(self.rtmp_port),
                    "--http-port",
                    str(self.http_port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, HLS_DIR_ENV: str(hls_dir), "PYTHONPATH": _pythonpath()},
                cwd=REPO,
            )
        wait_for_port(self.http_port, timeout=30)

    def disk_bytes(self) -> int:
        total = 0
        for directory, _, files in os.walk(self.hls_dir):  # errors (a vanished dir) skipped
            for name in files:
                with contextlib.suppress(OSError):  # segments come and go meanwhile
                    total += os.stat(os.path.join(directory, name)).st_size
        return total

    def stop(self) -> None:
        _stop(self.process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tasks_at(stats: list[dict[str, Any]], start: float, end: float) -> list[int]:
    return [row["tasks"] for row in stats if start <= row["t"] <= end]


async def run(workdir: Path, quick: bool = False) -> list[Figure]:
    workdir.mkdir(parents=True, exist_ok=True)
    clip()  # generated before the clock starts
    total = 240.0 if quick else TOTAL_SECONDS
    samples: list[dict[str, float]] = []
    events, stats_file = workdir / "events.jsonl", workdir / "stats.jsonl"
    async with contextlib.AsyncExitStack() as stack:
        origin = NginxOrigin(workdir / "origin").start()
        stack.callback(origin.stop)
        own = OwnOrigin(workdir / "own-origin-hls", workdir / "own-origin.log")
        stack.callback(own.stop)
        api = await stack.enter_async_context(
            FakeLivepeer(
                api_key=API_KEY,
                ingest_base=f"rtmp://127.0.0.1:{own.rtmp_port}/live",
                playback_base=f"http://127.0.0.1:{own.http_port}/hls",
                playback_id_is_stream_key=True,
            )
        )
        keys = [new_key(f"soak{i}x") for i in range(STREAMS)]
        config = workdir / "streams.yaml"
        config.write_text(yaml.safe_dump(_config(origin, keys, api.api_url)))
        env = {**os.environ, "LOG_FORMAT": "json", "PYTHONPATH": _pythonpath()}
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
        stack.callback(_stop, process)
        started = time.time()
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
                        "disk": own.disk_bytes(),
                    }
                )
            await asyncio.sleep(SAMPLE_EVERY)
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
    disk_first = statistics.median(window("disk", first) or [math.nan]) / 1e6
    disk_last = statistics.median(window("disk", last) or [math.nan]) / 1e6
    figures.append(
        Figure(
            "soak",
            f"streamer origin disk use: last cycle - first cycle (medians, "
            f"{ORIGIN_STREAMS} streams, a new key per session)",
            disk_last - disk_first,
            "MB",
            Target("<", 1.0, text="< 1 MB (flat)"),
            details={
                "first_cycle_median_mb": disk_first,
                "last_cycle_median_mb": disk_last,
                "first_cycle_peak_mb": max(window("disk", first), default=0) / 1e6,
                "last_cycle_peak_mb": max(window("disk", last), default=0) / 1e6,
                "stream_keys_used": len(api.created),
            },
        )
    )
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
