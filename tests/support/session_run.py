"""Running one real session in-process, collecting its events, and the origin's ground truth."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamer.events import Event, FanOut, SegmentObserved
from streamer.publish.flv import FlvClip
from streamer.session import Session, SessionSettings
from streamer.sinks.report import SessionReport
from streamer.testsignal.clip import ClipSpec


@dataclass
class Recorder:
    events: list[Event] = field(default_factory=list)

    def handle(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def segments(self) -> list[SegmentObserved]:
        return self.of(SegmentObserved)


class FileTimes:
    """Watches an HLS directory: the last modification time of every segment file.

    nginx-rtmp writes a segment while it records and closes it when the next keyframe
    arrives, right before it rewrites the playlist: the final mtime is when the segment
    became listed. Files are deleted soon after they leave the playlist, so watch live.
    """

    def __init__(self, directory: Path, suffix: str = ".ts") -> None:
        self.directory = directory
        self.suffix = suffix
        self.mtimes: dict[str, float] = {}

    async def watch(self) -> None:
        while True:
            if self.directory.exists():
                for path in self.directory.iterdir():
                    if path.name.endswith(self.suffix):
                        with contextlib.suppress(FileNotFoundError):
                            self.mtimes[path.name] = path.stat().st_mtime
            await asyncio.sleep(0.02)


async def run_session(
    settings: SessionSettings, flv: FlvClip, spec: ClipSpec, watch: FileTimes | None = None
) -> tuple[Recorder, dict[str, Any]]:
    recorder, report = Recorder(), SessionReport()
    watcher = asyncio.create_task(watch.watch()) if watch else None
    try:
        await Session(settings, flv, spec, FanOut([recorder, report])).run()
    finally:
        if watcher is not None:
            watcher.cancel()
    return recorder, report.document()


def wall_clock() -> float:
    return time.time()
