"""`streamer monitor` as the density and soak benchmarks run it.

    python -m benchmarks.monitor_proc EVENTS_FILE STATS_FILE -- monitor --config streams.yaml

This is the real command (`streamer.cli.main`) with two additions that only a benchmark
needs: its log sink also appends every segment's listed time and every failure to
EVENTS_FILE (JSON lines, so that the benchmark can hold them against the origin's ground
truth), and a task appends the process's asyncio task and thread counts to STATS_FILE
every `STATS_EVERY` seconds (what psutil cannot see from outside).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from typing import IO, Any

from streamer import cli, monitor
from streamer.events import CheckFailed, Event, SegmentObserved, SessionEnded
from streamer.sinks.logs import LogSink

STATS_EVERY = 2.0


class _RecordingLogSink(LogSink):
    out: IO[str] | None = None

    def handle(self, event: Event) -> None:
        super().handle(event)
        out = self.out
        if out is None:
            return
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
            out.write(json.dumps(record) + "\n")


async def _stats(path: str) -> None:
    with open(path, "a", buffering=1) as out:
        while True:
            out.write(
                json.dumps(
                    {
                        "t": time.time(),
                        "tasks": len(asyncio.all_tasks()),
                        "threads": threading.active_count(),
                    }
                )
                + "\n"
            )
            if _RecordingLogSink.out is not None:
                _RecordingLogSink.out.flush()
            await asyncio.sleep(STATS_EVERY)


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
    with open(events_path, "a") as out:
        _RecordingLogSink.out = out
        try:
            return cli.main(rest)
        finally:
            _RecordingLogSink.out = None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
