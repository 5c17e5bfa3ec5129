"""What a set of processes used over a window (psutil), and what else the machine did.

`measure` reads the processes' CPU time at both ends of the window and their RSS along it;
beside it, the host's load average, steal and idle time over the same window, so that a
figure measured on a busy machine can be recognised as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import psutil


@dataclass(frozen=True)
class HostSample:
    at: float  # monotonic
    load: tuple[float, float, float]
    cpu: Any  # psutil.cpu_times()

    @classmethod
    def now(cls) -> HostSample:
        return cls(time.monotonic(), os.getloadavg(), psutil.cpu_times())


# On Linux, guest time is already counted in user time.
_CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def _cpu_total(times: Any) -> float:
    return float(sum(getattr(times, name, 0.0) for name in _CPU_FIELDS))


def host_span(before: HostSample, after: HostSample, own_cores: float) -> dict[str, Any]:
    """The machine over a window: load average at both ends, the share of CPU time stolen
    by the hypervisor and left idle, and the cores busy with anything but the measured
    processes."""
    total = _cpu_total(after.cpu) - _cpu_total(before.cpu)
    elapsed = after.at - before.at

    def share(name: str) -> float:
        delta = getattr(after.cpu, name, 0.0) - getattr(before.cpu, name, 0.0)
        return delta / total * 100 if total > 0 else math.nan

    busy_cores = (total * (1 - share("idle") / 100 - share("iowait") / 100)) / elapsed
    return {
        "load_before": [round(v, 2) for v in before.load],
        "load_after": [round(v, 2) for v in after.load],
        "steal_percent": round(share("steal"), 2),
        "idle_percent": round(share("idle"), 2),
        "busy_cores": round(busy_cores, 3),
        "other_cores": round(busy_cores - own_cores, 3),
    }


@dataclass
class Usage:
    cpu_seconds: float
    window_seconds: float
    rss_bytes: float  # total at the end of the window
    peak_rss_bytes: float
    processes: int
    threads: int = 0
    fds: int = 0
    main_thread_cpu_seconds: float | None = None  # one process: its event loop thread
    started_at: float = 0.0  # wall clock
    ended_at: float = 0.0
    host: dict[str, Any] = field(default_factory=dict)

    def per_stream_minute(self, n: int) -> float:
        return self.cpu_seconds / (n * self.window_seconds / 60)

    def cores(self) -> float:
        return self.cpu_seconds / self.window_seconds


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def _rss(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total


def _main_thread_cpu(processes: list[psutil.Process]) -> float | None:
    if len(processes) != 1:
        return None
    with contextlib.suppress(psutil.Error):
        for thread in processes[0].threads():
            if thread.id == processes[0].pid:
                return float(thread.user_time + thread.system_time)
    return None


async def measure(processes: list[psutil.Process], seconds: float) -> Usage:
    """Usage of `processes` over the next `seconds`, with the host's figures beside it."""
    host_before = HostSample.now()
    main_start = _main_thread_cpu(processes)
    start_cpu, started, started_at = _cpu(processes), time.monotonic(), time.time()
    peak = 0.0
    while time.monotonic() - started < seconds:
        peak = max(peak, _rss(processes))
        await asyncio.sleep(min(2.0, seconds - (time.monotonic() - started)) or 0.01)
    cpu = _cpu(processes) - start_cpu
    main_end = _main_thread_cpu(processes)
    elapsed, ended_at = time.monotonic() - started, time.time()
    host_after = HostSample.now()
    rss = _rss(processes)
    threads = fds = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            threads += process.num_threads()
            fds += process.num_fds()
    main = main_end - main_start if main_start is not None and main_end is not None else None
    return Usage(
        cpu,
        elapsed,
        rss,
        max(peak, rss),
        len(processes),
        threads,
        fds,
        main,
        started_at,
        ended_at,
        host_span(host_before, host_after, cpu / elapsed),
    )
