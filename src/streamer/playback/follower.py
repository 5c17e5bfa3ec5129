"""Following one rendition like a viewer: poll its media playlist, fetch every new segment.

The follower only observes and reports; it decides nothing about health. Each new segment
is downloaded once, analysed on the analysis pool (playback/workers.py) and dropped: memory
stays bounded however long a session runs.

What the platform says is not trusted blindly: the target duration is kept plausible
(playback/target.py), blocking reloads never go faster than a floor (playback/poller.py),
and failed polls back off with jitter instead of hammering a failing origin. Scheduling runs
on the monotonic clock; wall-clock times are only recorded, for the latency arithmetic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from streamer.playback.decoding import EVERY_FRAME, RenditionDecoding
from streamer.playback.fetch import MAX_SEGMENT_BYTES, Fetched, Fetcher, FetchError
from streamer.playback.llhls import PartFetch, PartFollower, playlist_problems
from streamer.playback.playlist import (
    MAX_PLAYLIST_BYTES,
    MasterPlaylist,
    MediaPlaylist,
    PlaylistError,
    Segment,
)
from streamer.playback.poller import (
    BlockingReloads,
    FailureBackoff,
    PollScheduler,
    blocking_floor,
)
from streamer.playback.segment import SegmentAnalysis, SegmentDecodeError
from streamer.playback.target import TargetSanity
from streamer.playback.workers import analyse_segment, parse_playlist

log = logging.getLogger(__name__)

_MAX_QUEUED_SEGMENTS = 32  # a runaway playlist must not queue unbounded downloads
# An init section (EXT-X-MAP) holds codec headers, a few KiB; one is cached per follower.
MAX_INIT_BYTES = 2 << 20
_DEFAULT_TARGET = 2.0  # before a playlist said anything
_STARTUP_BACKOFF_CAP = 0.25  # before a rendition's first playlist: its start is being timed
UNHELD_BLOCKING_RELOAD = "unheld_blocking_reload"  # an anomaly (counted, not a failure)
# A failure: a blocking reload held past what RFC 8216bis allows (3 x the target duration);
# a player waiting on it stalls.
BLOCKING_RELOAD_VIOLATION = "blocking_reload_violation"
_HOLD_LIMIT_TARGETS = 3
_HOLD_SLACK_SECONDS = 0.5  # the network and the server's own work
MEDIA_PLAYLIST = "media playlist"


@dataclass(frozen=True, kw_only=True)
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
    error_source: str | None = None  # the object a failed request was for ("segment", ...)
    # Protocols that deliver frames one by one (WebRTC): when each frame of `analysis` was
    # decoded (wall clock), for its glass-to-glass latency.
    frame_times: tuple[float, ...] = ()


class FollowerObserver(Protocol):
    def on_playlist(self, rendition: str, playlist: MediaPlaylist, fetched_at: float) -> None: ...
    def on_segment(self, fetch: SegmentFetch) -> None: ...

    def on_part(self, fetch: PartFetch) -> None:
        """An LL-HLS part, downloaded and analysed (only for playlists listing parts)."""

    def on_error(
        self, rendition: str | None, kind: str, detail: str, source: str | None = None
    ) -> None:
        """`source`: the object whose request failed ("media playlist", ...), None for an
        error that is not a failed request."""

    def on_anomaly(self, rendition: str | None, anomaly: str) -> None:
        """Something no viewer notices, to count (e.g. UNHELD_BLOCKING_RELOAD)."""


class RenditionFollower:
    def __init__(
        self,
        name: str,
        url: str,
        fetcher: Fetcher,
        observer: FollowerObserver,
        poll_step: float = 0.1,
        gop_seconds: float | None = None,
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
        self._overflowing = False
        self._targets = TargetSanity(gop_seconds)
        self._target = _DEFAULT_TARGET  # the working target of the newest playlist
        self._blocking = BlockingReloads()
        self._backoff = FailureBackoff(base=poll_step)
        self._failures = 0  # failed polls in a row
        self._segment_failures = 0  # failed segment downloads in a row
        self._got_playlist = False
        self.scheduler: PollScheduler | None = None
        self.playlist_requests = 0
        self.ended = False  # the playlist carried EXT-X-ENDLIST
        # Which segments are decoded frame by frame (set by the playback's decode plan).
        self.decoding: RenditionDecoding = EVERY_FRAME
        # (body, URL, playlist) of the last poll: an unchanged playlist is not parsed again.
        self._last_parsed: tuple[bytes, str, MasterPlaylist | MediaPlaylist] | None = None
        # LL-HLS: created once a playlist lists parts; a plain stream never has one.
        self.parts: PartFollower | None = None
        self._ll_problems: set[str] = set()

    @property
    def unheld_blocking_reloads(self) -> int:
        return self._blocking.unheld

    async def run(self) -> None:
        downloader = asyncio.create_task(self._download_loop(), name=f"download-{self.name}")
        try:
            await self._poll_loop()
        finally:
            downloader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await downloader
            self._init_cache.clear()
            if self.parts is not None:
                await self.parts.stop()

    async def wait_downloads(self) -> None:
        await self._queue.join()
        if self.parts is not None:
            await self.parts.wait_downloads()

    async def _poll_loop(self) -> None:
        url_with_msn: str | None = None
        while True:
            self.playlist_requests += 1
            blocking_request = url_with_msn is not None
            polled = await self._poll(url_with_msn)
            if polled is None:
                url_with_msn = None
                continue
            fetched, playlist = polled
            if blocking_request:
                self._check_hold(fetched)
            self._failures = 0
            self._got_playlist = True
            playlist, implausible = self._targets.apply(playlist)
            self._target = playlist.target_duration or _DEFAULT_TARGET
            if playlist.endlist and self._last_sequence is None:
                # Ended before it was ever live to us: the previous stream's playlist, left
                # in place until the packager writes this one's (an FFmpeg restarted per
                # publish restarts its numbering too). Not this stream's: wait for it.
                await asyncio.sleep(self._poll_step)
                continue
            new = self._take_new(playlist, fetched)
            new_parts = self._take_parts(playlist, fetched)
            self._observer.on_playlist(self.name, playlist, fetched.completed_at)
            if implausible is not None:
                self._observer.on_error(self.name, "playlist_error", implausible)
            self._report_ll_problems(playlist)
            if playlist.endlist:
                self.ended = True
            url_with_msn = await self._wait_for_next_poll(
                playlist, fetched, new, blocking_request, bool(new_parts)
            )

    async def _poll(self, url_with_msn: str | None) -> tuple[Fetched, MediaPlaylist] | None:
        """The media playlist, fetched and parsed; None after a failure (reported, and
        backed off from)."""
        try:
            # In a run of failures, no retries inside the request: the backoff spaces the
            # requests out instead.
            fetched = await self._fetcher.get(
                url_with_msn or self.url,
                MEDIA_PLAYLIST,
                MAX_PLAYLIST_BYTES,
                retry=self._failures == 0,
            )
            playlist = await self._parse(fetched.body)
        except FetchError as exc:
            self._observer.on_error(
                self.name, exc.kind, f"{exc.object_type}: {exc.detail}", exc.object_type
            )
            await self._after_failure()
            return None
        except PlaylistError as exc:
            self._observer.on_error(self.name, "playlist_error", str(exc), MEDIA_PLAYLIST)
            await self._after_failure()
            return None
        if isinstance(playlist, MasterPlaylist):
            self._observer.on_error(
                self.name,
                "playlist_error",
                "got a master playlist where a media playlist belongs",
                MEDIA_PLAYLIST,
            )
            await self._after_failure(minimum=1.0)
            return None
        return fetched, playlist

    async def _parse(self, body: bytes) -> MasterPlaylist | MediaPlaylist:
        last = self._last_parsed
        if last is not None and last[0] == body and last[1] == self.url:
            return last[2]  # unchanged since the last poll: no need to parse
        playlist = await parse_playlist(body, self.url)
        self._last_parsed = (body, self.url, playlist)
        return playlist

    def _report_ll_problems(self, playlist: MediaPlaylist) -> None:
        if not playlist.parts and not playlist.part_inf_declared:
            return  # not LL-HLS: nothing to check, at no cost
        for problem in playlist_problems(playlist):
            if problem not in self._ll_problems:  # once per rendition: a state, not events
                self._ll_problems.add(problem)
                self._observer.on_error(self.name, "playlist_error", problem)

    def _check_hold(self, fetched: Fetched) -> None:
        held = fetched.received_monotonic - fetched.sent_monotonic
        limit = _HOLD_LIMIT_TARGETS * self._target + _HOLD_SLACK_SECONDS
        if held > limit:
            self._observer.on_error(
                self.name,
                BLOCKING_RELOAD_VIOLATION,
                f"a blocking playlist reload was held {held:.1f}s "
                f"(at most {_HOLD_LIMIT_TARGETS} x target duration: {limit:.1f}s)",
            )

    def _take_parts(self, playlist: MediaPlaylist, fetched: Fetched) -> bool:
        """LL-HLS: hands the playlist to the part follower (created with the first part
        listed); whether it listed a new part."""
        if self.parts is None:
            if not playlist.parts:
                return False
            self.parts = PartFollower(
                self.name, self._fetcher, self._observer, lambda uri: self._init_section(uri, True)
            )
            self.parts.start()
        return bool(self.parts.on_playlist(playlist, fetched))

    async def _wait_for_next_poll(
        self,
        playlist: MediaPlaylist,
        fetched: Fetched,
        new: list[Segment],
        blocking: bool,
        new_part: bool = False,
    ) -> str | None:
        """Waits until the next poll is due; its URL when it is a blocking reload (LL-HLS).
        `blocking`: whether `fetched` answered a blocking reload; `new_part`: whether it
        listed a new LL-HLS part."""
        progressed = bool(new) or new_part
        scheduler = self._scheduler()
        scheduler.observe(
            fetched.received_monotonic,
            bool(new),
            new[-1].duration if new else None,
            started_at=fetched.sent_monotonic,
        )
        floor = blocking_floor(self._target, playlist.part_target)
        if blocking and self._blocking.answered(
            fetched.sent_monotonic, fetched.received_monotonic, progressed, floor
        ):
            self._observer.on_anomaly(self.name, UNHELD_BLOCKING_RELOAD)
            if self._blocking.abandoned:
                log.info(
                    "rendition %s: the server answers blocking reloads at once; polling",
                    self.name,
                )
        query = self.parts.blocking_query(playlist) if self.parts is not None else None
        if query is None and playlist.last_sequence is not None:
            query = f"_HLS_msn={playlist.last_sequence + 1}"
        if playlist.can_block_reload and query is not None and not self._blocking.abandoned:
            # LL-HLS: the server holds the answer until the next segment (or part) exists;
            # the floor holds us back when it does not.
            separator = "&" if "?" in self.url else "?"
            await asyncio.sleep(max(0.0, fetched.sent_monotonic + floor - time.monotonic()))
            return f"{self.url}{separator}{query}"
        now = time.monotonic()
        due = scheduler.next_poll(now)
        if self.parts is not None and playlist.part_target:
            # Parts without blocking reloads: polled as players do, every half part.
            due = now + max(playlist.part_target / 2, floor)
        await asyncio.sleep(max(0.0, due - now))
        return None

    async def _after_failure(self, minimum: float = 0.0) -> None:
        self._failures += 1
        # Before the first playlist, the rendition's start is being timed: stay close.
        cap = None if self._got_playlist else _STARTUP_BACKOFF_CAP
        delay = self._backoff.delay(self._failures, self._target, cap)
        await asyncio.sleep(max(minimum, delay))

    def _scheduler(self) -> PollScheduler:
        if self.scheduler is None:
            self.scheduler = PollScheduler(
                target_duration=self._target, startup_step=self._poll_step
            )
        self.scheduler.target_duration = self._target
        return self.scheduler

    def _take_new(self, playlist: MediaPlaylist, fetched: Fetched) -> list[Segment]:
        first_listing = self._last_sequence is None
        if self._last_sequence is None:
            new = list(playlist.segments)
        else:
            new = list(playlist.segments_after(self._last_sequence))
        if new:
            self._last_sequence = new[-1].sequence
        for segment in new[-_MAX_QUEUED_SEGMENTS:]:
            try:
                self._queue.put_nowait((segment, fetched.completed_at, first_listing))
            except asyncio.QueueFull:
                if not self._overflowing:  # once per backlog, not once per poll
                    self._overflowing = True
                    self._observer.on_error(
                        self.name, "http_error", "segments arrive faster than they download"
                    )
                break
        else:
            if self._queue.empty():
                self._overflowing = False
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
            source: str | None = None,
        ) -> SegmentFetch:
            return SegmentFetch(
                rendition=self.name,
                segment=segment,
                listed_at=listed_at,
                first_listing=first_listing,
                downloaded_at=downloaded_at,
                size_bytes=size,
                analysis=analysis,
                error_kind=kind,
                error_detail=detail,
                error_source=source,
            )

        # While segments keep failing, each gets one request: no retries on a failing origin.
        retry = self._segment_failures == 0
        try:
            init = await self._init_section(segment.init_uri, retry)
            fetched = await self._fetcher.get(segment.uri, "segment", MAX_SEGMENT_BYTES, retry)
        except FetchError as exc:
            self._segment_failures += 1
            return result(
                kind=exc.kind, detail=f"{exc.object_type}: {exc.detail}", source=exc.object_type
            )
        self._segment_failures = 0
        try:
            analysis = await analyse_segment(fetched.body, init, self.decoding.mode)
        except SegmentDecodeError as exc:
            return result(
                fetched.completed_at,
                len(fetched.body),
                kind="segment_decode_error",
                detail=f"segment {segment.sequence}: {exc}",
            )
        self._targets.measured(analysis.media_duration)
        return result(fetched.completed_at, len(fetched.body), analysis)

    async def _init_section(self, uri: str | None, retry: bool) -> bytes | None:
        if uri is None:
            return None
        if uri not in self._init_cache:
            fetched = await self._fetcher.get(uri, "init segment", MAX_INIT_BYTES, retry)
            self._init_cache = {uri: fetched.body}  # only the current map is kept
        return self._init_cache[uri]
