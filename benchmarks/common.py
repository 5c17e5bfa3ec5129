"""What the benchmarks share: statistics, the clip, extra followers, a probe check."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from streamer.checks.base import Check, Failure, SegmentRecord, SessionContext
from streamer.checks.registry import REGISTRY
from streamer.events import StreamLabels
from streamer.playback.fetch import Fetcher, FetchError
from streamer.playback.follower import RenditionFollower, SegmentFetch
from streamer.playback.llhls import PartFetch
from streamer.playback.playlist import MediaPlaylist
from streamer.playback.poller import PollScheduler
from streamer.publish.flv import FlvClip
from streamer.testsignal.clip import ClipSpec, load_clip
from streamer.wiring import flv_clip

LABELS = StreamLabels("bench", "local", "local")
REPO = Path(__file__).resolve().parent.parent


def new_key(prefix: str = "bench") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def clip() -> tuple[ClipSpec, FlvClip, Path]:
    """The default clip (360p, 30 fps, 2 s GOP, ~1 Mbit/s): spec, FLV tags, MP4 path."""
    os.environ.setdefault("STREAMER_CACHE_DIR", str(Path.home() / ".cache" / "streamer"))
    spec = ClipSpec()
    return spec, flv_clip(spec), load_clip(spec).path


# -- statistics ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): a value that was measured, never interpolated."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(values: Sequence[float], scale: float = 1.0) -> dict[str, float]:
    """count, p50, p95, p99, max, mean (times `scale`, e.g. 1000 for ms)."""
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "min": min(values) * scale,
        "p50": percentile(values, 50) * scale,
        "p95": percentile(values, 95) * scale,
        "p99": percentile(values, 99) * scale,
        "max": max(values) * scale,
        "mean": sum(values) / len(values) * scale,
    }


# -- polling like the Livepeer stream tester ----------------------------------------------


class FixedIntervalScheduler(PollScheduler):
    """The baseline: a media playlist request every `interval` seconds, whatever happens."""

    def __init__(self, interval: float, target_duration: float = 2.0) -> None:
        super().__init__(target_duration)
        self.interval = interval

    def next_poll(self, now: float) -> float:
        return now + self.interval


# -- followers outside a session ----------------------------------------------------------


@dataclass
class SegmentSeen:
    sequence: int
    listed_at: float
    downloaded_at: float | None
    first_pts: float | None
    last_pts: float | None


@dataclass
class RecordingObserver:
    """A FollowerObserver that only records what its follower saw."""

    segments: dict[int, SegmentSeen] = field(default_factory=dict)
    errors: list[tuple[float, str, str]] = field(default_factory=list)
    parts: list[PartFetch] = field(default_factory=list)  # LL-HLS, in download order

    def on_playlist(self, rendition: str, playlist: MediaPlaylist, fetched_at: float) -> None:
        return None

    def on_part(self, fetch: PartFetch) -> None:
        self.parts.append(fetch)

    def on_segment(self, fetch: SegmentFetch) -> None:
        analysis = fetch.analysis
        self.segments[fetch.segment.sequence] = SegmentSeen(
            fetch.segment.sequence,
            fetch.listed_at,
            fetch.downloaded_at,
            analysis.first_pts if analysis else None,
            analysis.last_pts if analysis else None,
        )

    def on_error(
        self, rendition: str | None, kind: str, detail: str, source: str | None = None
    ) -> None:
        self.errors.append((time.time(), kind, detail))

    def on_anomaly(self, rendition: str | None, anomaly: str) -> None:
        return None


class ExtraFollower:
    """A RenditionFollower run on its own (a baseline or a delayed view of the same stream)."""

    def __init__(
        self,
        name: str,
        url: str,
        scheduler: PollScheduler | None = None,
        poll_step: float = 0.1,
    ) -> None:
        self.observer = RecordingObserver()
        self._fetcher = Fetcher(playback_url=lambda: url)
        self._poll_step = poll_step
        self.follower = RenditionFollower(name, url, self._fetcher, self.observer, poll_step)
        if scheduler is not None:
            self.follower.scheduler = scheduler
        self.started_at = 0.0
        self.stopped_at = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> ExtraFollower:
        self.started_at = time.time()
        self._task = asyncio.create_task(self._run(), name=f"extra-{self.follower.name}")
        return self

    async def _run(self) -> None:
        # Like a session: wait for the playlist to exist (no retries), then follow it.
        while True:
            try:
                await self._fetcher.get(self.follower.url, "media playlist", 1 << 20, retry=False)
                break
            except FetchError:
                await asyncio.sleep(self._poll_step)
        await self.follower.run()

    async def stop(self) -> None:
        self.stopped_at = time.time()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._fetcher.close()

    def requests_per_target_duration(self, target_duration: float, since: float) -> float:
        """Playlist requests per target duration from `since` (the stream's first listing)
        to when the follower stopped."""
        span = self.stopped_at - max(since, self.started_at)
        return self.follower.playlist_requests / (span / target_duration) if span > 0 else math.nan


# -- a check that records what the session computed for every segment ---------------------


@dataclass(frozen=True)
class ProbeRecord:
    rendition: str
    sequence: int
    listed_at: float
    downloaded_at: float
    newest_frame: int | None
    first_frame: int | None
    newest_sent_at: float | None
    first_pts: float
    last_pts: float
    frame_count: int
    readable: int  # frames whose timecode was read


PROBES: dict[int, list[ProbeRecord]] = {}  # id(SessionContext) -> records


class BenchProbe(Check):
    """Registered only inside benchmark processes: keeps each analysed segment's numbers so
    that the PTS-mapping method can be computed from the very same segments."""

    name = "_bench_probe"
    kinds: ClassVar[tuple[str, ...]] = ()

    def __init__(self, context: SessionContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self.records = PROBES.setdefault(id(context), [])

    def on_segment(self, record: SegmentRecord) -> list[Failure]:
        analysis = record.analysis
        self.records.append(
            ProbeRecord(
                record.rendition,
                record.segment.sequence,
                record.listed_at,
                record.downloaded_at,
                record.newest_frame,
                record.first_frame,
                record.newest_frame_sent_at,
                analysis.first_pts,
                analysis.last_pts,
                analysis.frame_count,
                sum(1 for code in analysis.timecodes if code is not None),
            )
        )
        return []


def install_probe() -> None:
    REGISTRY[BenchProbe.name] = BenchProbe


def probes_of(context: SessionContext | None) -> list[ProbeRecord]:
    return PROBES.get(id(context), []) if context is not None else []


def flatten(groups: Iterable[Iterable[float]]) -> list[float]:
    return [v for group in groups for v in group]
