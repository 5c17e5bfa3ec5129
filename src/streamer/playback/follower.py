"""Following one rendition like a viewer: poll its media playlist, fetch every new segment.

The follower only observes and reports; it decides nothing about health. Each new segment
is downloaded once, analysed in a worker thread and dropped: memory stays bounded however
long a session runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Protocol

from streamer.playback.fetch import MAX_SEGMENT_BYTES, Fetched, Fetcher, FetchError
from streamer.playback.playlist import (
    MAX_PLAYLIST_BYTES,
    MasterPlaylist,
    MediaPlaylist,
    PlaylistError,
    Segment,
    parse,
)
from streamer.playback.poller import PollScheduler
from streamer.playback.segment import SegmentAnalysis, SegmentDecodeError, analyse

_MAX_QUEUED_SEGMENTS = 32  # a runaway playlist must not queue unbounded downloads


@dataclass(frozen=True)
class SegmentFetch:
    """One segment as the viewer got it."""

    rendition: str
    segment: Segment
    listed_at: float
    first_listing: bool  # listed in the first playlist we saw: may predate this session
    downloaded_at: float | None
    size_bytes: int
    analysis: SegmentAnalysis | None
    error_kind: str | None
    error_detail: str | None


class FollowerObserver(Protocol):
    def on_playlist(self, rendition: str, playlist: MediaPlaylist, fetched_at: float) -> None: ...
    def on_segment(self, fetch: SegmentFetch) -> None: ...
    def on_error(self, rendition: str | None, kind: str, detail: str) -> None: ...


class RenditionFollower:
    def __init__(
        self,
        name: str,
        url: str,
        fetcher: Fetcher,
        observer: FollowerObserver,
        poll_step: float = 0.1,
    ) -> None:
        self.name = name
        self.url = url  # may change when the master renumbers renditions
        self._fetcher = fetcher
        self._observer = observer
        self._poll_step = poll_step
        self._last_sequence: int | None = None
        self._init_cache: dict[str, bytes] = {}
        self._queue: asyncio.Queue[tuple[Segment, float, bool]] = asyncio.Queue(
            _MAX_QUEUED_SEGMENTS
        )
        self.scheduler: PollScheduler | None = None
        self.playlist_requests = 0
        self.ended = False  # the playlist carried EXT-X-ENDLIST

    async def run(self) -> None:
        downloader = asyncio.create_task(self._download_loop(), name=f"download-{self.name}")
        try:
            await self._poll_loop()
        finally:
            downloader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await downloader

    async def wait_downloads(self) -> None:
        await self._queue.join()

    async def _poll_loop(self) -> None:
        url_with_msn: str | None = None
        parsed: tuple[bytes, str, MasterPlaylist | MediaPlaylist] | None = None
        while True:
            self.playlist_requests += 1
            try:
                fetched = await self._fetcher.get(
                    url_with_msn or self.url, "media playlist", MAX_PLAYLIST_BYTES
                )
                if parsed is not None and parsed[0] == fetched.body and parsed[1] == self.url:
                    playlist = parsed[2]  # unchanged since the last poll: no need to parse
                else:
                    playlist = parse(fetched.body.decode("utf-8", errors="replace"), self.url)
                    parsed = (fetched.body, self.url, playlist)
            except FetchError as exc:
                self._observer.on_error(self.name, exc.kind, f"{exc.object_type}: {exc.detail}")
                await asyncio.sleep(self._poll_step)
                url_with_msn = None
                continue
            except PlaylistError as exc:
                self._observer.on_error(self.name, "playlist_error", str(exc))
                await asyncio.sleep(self._poll_step)
                continue
            if isinstance(playlist, MasterPlaylist):
                self._observer.on_error(
                    self.name,
                    "playlist_error",
                    "got a master playlist where a media playlist belongs",
                )
                await asyncio.sleep(max(self._poll_step, 1.0))
                continue
            if playlist.endlist and self._last_sequence is None:
                # Ended before it was ever live to us: the previous stream's playlist, left
                # in place until the packager writes this one's (an FFmpeg restarted per
                # publish restarts its numbering too). Not this stream's: wait for it.
                await asyncio.sleep(self._poll_step)
                continue
            new = self._take_new(playlist, fetched)
            self._observer.on_playlist(self.name, playlist, fetched.completed_at)
            if playlist.endlist:
                self.ended = True
            scheduler = self._scheduler(playlist)
            scheduler.observe(
                fetched.completed_at,
                bool(new),
                new[-1].duration if new else None,
                started_at=fetched.started_at,
            )
            if playlist.can_block_reload and playlist.last_sequence is not None:
                # LL-HLS: the server holds the answer until the next segment exists.
                separator = "&" if "?" in self.url else "?"
                url_with_msn = f"{self.url}{separator}_HLS_msn={playlist.last_sequence + 1}"
                continue
            now = time.time()
            await asyncio.sleep(max(0.0, scheduler.next_poll(now) - now))

    def _scheduler(self, playlist: MediaPlaylist) -> PollScheduler:
        if self.scheduler is None:
            self.scheduler = PollScheduler(
                target_duration=playlist.target_duration or 2.0, startup_step=self._poll_step
            )
        self.scheduler.target_duration = playlist.target_duration or 2.0
        return self.scheduler

    def _take_new(self, playlist: MediaPlaylist, fetched: Fetched) -> list[Segment]:
        first_listing = self._last_sequence is None
        if first_listing:
            new = list(playlist.segments)
        else:
            assert self._last_sequence is not None
            new = [s for s in playlist.segments if s.sequence > self._last_sequence]
        if new:
            self._last_sequence = new[-1].sequence
        for segment in new[-_MAX_QUEUED_SEGMENTS:]:
            try:
                self._queue.put_nowait((segment, fetched.completed_at, first_listing))
            except asyncio.QueueFull:
                self._observer.on_error(
                    self.name, "http_error", "segments arrive faster than they download"
                )
                break
        return new

    async def _download_loop(self) -> None:
        while True:
            segment, listed_at, first_listing = await self._queue.get()
            try:
                self._observer.on_segment(await self._fetch(segment, listed_at, first_listing))
            finally:
                self._queue.task_done()

    async def _fetch(self, segment: Segment, listed_at: float, first_listing: bool) -> SegmentFetch:
        def result(
            downloaded_at: float | None = None,
            size: int = 0,
            analysis: SegmentAnalysis | None = None,
            kind: str | None = None,
            detail: str | None = None,
        ) -> SegmentFetch:
            return SegmentFetch(
                self.name,
                segment,
                listed_at,
                first_listing,
                downloaded_at,
                size,
                analysis,
                kind,
                detail,
            )

        try:
            init = await self._init_section(segment.init_uri)
            fetched = await self._fetcher.get(segment.uri, "segment", MAX_SEGMENT_BYTES)
        except FetchError as exc:
            return result(kind=exc.kind, detail=f"{exc.object_type}: {exc.detail}")
        try:
            analysis = await asyncio.to_thread(analyse, fetched.body, init)
        except SegmentDecodeError as exc:
            return result(
                fetched.completed_at,
                len(fetched.body),
                kind="segment_decode_error",
                detail=f"segment {segment.sequence}: {exc}",
            )
        return result(fetched.completed_at, len(fetched.body), analysis)

    async def _init_section(self, uri: str | None) -> bytes | None:
        if uri is None:
            return None
        if uri not in self._init_cache:
            fetched = await self._fetcher.get(uri, "init segment", MAX_SEGMENT_BYTES)
            self._init_cache = {uri: fetched.body}  # only the current map is kept
        return self._init_cache[uri]
