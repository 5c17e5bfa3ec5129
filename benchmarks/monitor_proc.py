"""`streamer monitor` as the density and soak benchmarks run it.

    python -m benchmarks.monitor_proc EVENTS_FILE STATS_FILE -- monitor --config streams.yaml

This is the real command (`streamer.cli.main`) with additions that only a benchmark needs:

- its log sink also appends every segment's listed time and every failure to EVENTS_FILE
  (JSON lines, so that the benchmark can hold them against the origin's ground truth),
  each with the wall time it reached the sink (`reported_at`). Every session's segment
  hand-over (after download and analysis, before the session's own bookkeeping) is written
  too (`fetched`), so that a segment the monitor never reported can be traced to the stage
  where it stopped. Lines are flushed one by one: a monitor killed at the end of a run
  loses nothing it reported.
- a task appends the process's asyncio task and thread counts to STATS_FILE every
  `STATS_EVERY` seconds (what psutil cannot see from outside), with the event loop's lag
  samples of that period: a timer due every `LAG_EVERY` seconds on the loop's own clock,
  and how late it ran. A lagging loop is the first sign of overload: polls, downloads and
  publishing all wait behind it. Each garbage collection's pause is recorded beside them
  (generation, milliseconds): a long full collection stalls the loop as overload does.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import threading
import time
from typing import IO, Any

from streamer import cli, monitor, session
from streamer.events import CheckFailed, Event, SegmentObserved, SessionEnded
from streamer.playback.follower import SegmentFetch
from streamer.sinks.logs import LogSink

STATS_EVERY = 2.0
LAG_EVERY = 0.05


class _Recorder:
    """The events file: one JSON object per line, written through (line buffering)."""

    out: IO[str] | None = None

    @classmethod
    def write(cls, record: dict[str, Any]) -> None:
        if cls.out is not None:
            cls.out.write(json.dumps(record) + "\n")


class _RecordingLogSink(LogSink):
    def handle(self, event: Event) -> None:
        super().handle(event)
        record: dict[str, Any] | None = None
        if isinstance(event, SegmentObserved):
            record = {
                "type": "segment",
                "stream": event.labels.stream,
                "rendition": event.rendition,
                "sequence": event.sequence,
                "listed_at": event.listed_at,
                "downloaded_at": event.downloaded_at,
                "sent_at": event.newest_frame_sent_at,
                "reported_at": time.time(),
            }
        elif isinstance(event, CheckFailed):
            record = {
                "type": "failure",
                "stream": event.labels.stream,
                "kind": event.kind,
                "rendition": event.rendition,
                "at": event.at,
                "detail": event.detail,
            }
        elif isinstance(event, SessionEnded):
            record = {
                "type": "session_ended",
                "stream": event.labels.stream,
                "outcome": event.outcome,
                "at": event.at,
            }
        if record is not None:
            _Recorder.write(record)


def _record_fetches() -> None:
    """Wraps Session.on_segment: every segment a follower hands over, reported or not."""
    original = session.Session.on_segment

    def on_segment(self: session.Session, fetch: SegmentFetch) -> None:
        _Recorder.write(
            {
                "type": "fetched",
                "stream": self.settings.labels.stream,
                "rendition": fetch.rendition,
                "sequence": fetch.segment.sequence,
                "listed_at": fetch.listed_at,
                "downloaded_at": fetch.downloaded_at,
                "analysed_at": time.time(),
                "error": fetch.error_kind,
            }
        )
        original(self, fetch)

    session.Session.on_segment = on_segment  # type: ignore[method-assign]


class _LoopLag:
    """A timer due every `every` seconds on a fixed schedule; each sample is how late it
    ran (wall time of the tick, lag in seconds). Ticks missed by a long stall are skipped,
    not queued: one stall is one sample, its full length."""

    def __init__(self, every: float = LAG_EVERY) -> None:
        self.every = every
        self.samples: list[tuple[float, float]] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.every
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            now = loop.time()
            self.samples.append((time.time(), now - due))
            due += self.every
            while due <= now:
                due += self.every

    def take(self) -> list[tuple[float, float]]:
        samples, self.samples = self.samples, []
        return samples


class _GcPauses:
    """Every garbage collection's pause: (wall time at its end, generation, seconds)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int, float]] = []
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            pause = time.perf_counter() - self._started
            self.samples.append((time.time(), info["generation"], pause))

    def take(self) -> list[tuple[float, int, float]]:
        samples, self.samples = self.samples, []
        return samples

    def close(self) -> None:
        gc.callbacks.remove(self._callback)


async def _stats(path: str) -> None:
    lag = _LoopLag()
    collections = _GcPauses()
    timer = asyncio.create_task(lag.run(), name="bench-loop-lag")
    with open(path, "a", buffering=1) as out:

        def write_row() -> None:
            row = {
                "t": time.time(),
                "tasks": len(asyncio.all_tasks()),
                "threads": threading.active_count(),
                "lag": [[round(t, 3), round(s, 5)] for t, s in lag.take()],
                "gc": [[round(t, 3), g, round(s, 5)] for t, g, s in collections.take()],
            }
            out.write(json.dumps(row) + "\n")

        try:
            while True:
                write_row()
                await asyncio.sleep(STATS_EVERY)
        finally:
            timer.cancel()
            write_row()  # the last period's samples
            collections.close()


def main(argv: list[str]) -> int:
    events_path, stats_path, separator, *rest = argv
    if separator != "--":
        raise SystemExit("usage: monitor_proc EVENTS STATS -- monitor --config FILE")
    original_run = monitor.Monitor.run

    async def run(self: monitor.Monitor) -> None:
        stats = asyncio.create_task(_stats(stats_path))
        try:
            await original_run(self)
        finally:
            stats.cancel()

    monitor.Monitor.run = run  # type: ignore[method-assign]
    monitor.LogSink = _RecordingLogSink  # type: ignore[attr-defined]
    _record_fetches()
    with open(events_path, "a", buffering=1) as out:
        _Recorder.out = out
        try:
            return cli.main(rest)
        finally:
            _Recorder.out = None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
