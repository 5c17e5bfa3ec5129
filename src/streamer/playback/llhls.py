"""Following a rendition's LL-HLS parts as a player at the live edge does.

The rendition's follower (playback/follower.py) polls its playlist and downloads its
segments as for any HLS stream; when the playlist lists parts, it hands each playlist to a
`PartFollower`, which:

- names the next blocking reload: `_HLS_msn` and `_HLS_part` of the part after the newest
  listed one, with `_HLS_skip=YES` when the server offers delta updates (CAN-SKIP-UNTIL)
  and the last full playlist is recent enough for one;
- requests the preload hint's part as soon as it is hinted, before it is listed (the
  server holds the request until the part exists), and takes that answer for the part
  once listed; a hinted part answered 404 is fetched again once listed;
- fetches every new part (by range for BYTERANGE parts), its EXT-X-MAP init section once
  per change, and analyses it (playback/segment.py `analyse_part`): the timing of its
  frames, and the timecode of its keyframe where it has one.

Bounded whatever the server does: one hint request at a time, never the same hint twice,
a bounded queue of parts (a backlog is skipped, counted as `parts_skipped`), and on the
first playlist only the newest part is taken (older ones are history, not the live edge).
A stream without parts never creates a PartFollower: it costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from streamer.playback.fetch import MAX_SEGMENT_BYTES, Fetched, Fetcher, FetchError
from streamer.playback.playlist import MediaPlaylist, Part, PreloadHint
from streamer.playback.segment import SegmentAnalysis, SegmentDecodeError
from streamer.playback.workers import analyse_part_bytes

log = logging.getLogger(__name__)

MAX_PART_BYTES = MAX_SEGMENT_BYTES
_MAX_QUEUED_PARTS = 16  # about 5 s of 1/3 s parts
_MAX_HINTS = 4  # hinted requests kept for their part's listing (a new hint comes with it)
# Anomalies: counted (streamer_playback_anomalies_total), never failing a session.
PARTS_SKIPPED = "parts_skipped"  # parts arriving faster than they download
HINT_NOT_LISTED = "preload_hint_not_listed"  # a hinted part never listed (allowed, counted)
# A failure: a part hinted, then listed, and still not served (404): a player that
# requested it ahead, as players do, stalls on it.
PRELOAD_HINT_MISS = "preload_hint_miss"
PART = "part"
PRELOAD_HINT = "preload hint"


@dataclass(frozen=True, kw_only=True)
class PartFetch:
    """One part as the viewer got it."""

    rendition: str
    part: Part
    listed_at: float  # when the playlist that first listed it arrived
    downloaded_at: float | None
    size_bytes: int
    analysis: SegmentAnalysis | None
    hinted: bool  # its bytes came from the preload hint's request, sent before it was listed
    error_kind: str | None = None
    error_detail: str | None = None
    error_source: str | None = None


class PartObserver(Protocol):
    def on_part(self, fetch: PartFetch) -> None: ...

    def on_error(
        self, rendition: str | None, kind: str, detail: str, source: str | None = None
    ) -> None: ...

    def on_anomaly(self, rendition: str | None, anomaly: str) -> None: ...


def playlist_problems(playlist: MediaPlaylist) -> list[str]:
    """LL-HLS rules a parser must enforce (RFC 8216bis 4.4.3.7, 4.4.3.8), reported as
    playlist_error: without them players cannot time their reloads or hold back enough."""
    problems = []
    if playlist.parts and not playlist.part_inf_declared:
        problems.append("parts listed without EXT-X-PART-INF")
    target = playlist.part_target
    if playlist.part_inf_declared and target:
        hold_back = playlist.part_hold_back
        if hold_back is None:
            problems.append("EXT-X-PART-INF without PART-HOLD-BACK in EXT-X-SERVER-CONTROL")
        elif hold_back < 2 * target:
            problems.append(
                f"PART-HOLD-BACK {hold_back:g}s below 2 x PART-TARGET ({2 * target:g}s)"
            )
    return problems


def _hint_key(uri: str, byterange: tuple[int, int | None] | None) -> tuple[str, int]:
    return uri, byterange[0] if byterange else 0


def next_part(playlist: MediaPlaylist) -> tuple[int, int] | None:
    """(_HLS_msn, _HLS_part) of the part after the newest listed one."""
    if not playlist.parts:
        return None
    newest = playlist.parts[-1]
    if playlist.last_sequence is not None and newest.sequence <= playlist.last_sequence:
        return playlist.last_sequence + 1, 0  # the newest segment is complete
    return newest.sequence, newest.index + 1


InitSection = Callable[[str | None], Awaitable[bytes | None]]


class PartFollower:
    def __init__(
        self, name: str, fetcher: Fetcher, observer: PartObserver, init_section: InitSection
    ) -> None:
        """`init_section`: the rendition's EXT-X-MAP cache (shared with its segments)."""
        self.name = name
        self._init_section = init_section
        self._fetcher = fetcher
        self._observer = observer
        self._newest: tuple[int, int] | None = None  # the newest part taken
        self._queue: asyncio.Queue[tuple[Part, float]] = asyncio.Queue(_MAX_QUEUED_PARTS)
        # Hinted requests by (URI, offset), oldest first: the answer of each is taken for
        # its part once listed (by then the next part is hinted already).
        self._hints: dict[tuple[str, int], asyncio.Task[Fetched | None]] = {}
        self._hinted: deque[tuple[str, int]] = deque(maxlen=_MAX_QUEUED_PARTS)
        self._hint_sent_for: tuple[str, int] | None = None
        self._listed: deque[tuple[str, int]] = deque(maxlen=_MAX_QUEUED_PARTS)
        self._full_playlist_at: float | None = None  # monotonic, the last non-delta answer
        self._downloader: asyncio.Task[None] | None = None
        self.hint_requests = 0
        self.part_requests = 0

    def start(self) -> None:
        if self._downloader is None:
            self._downloader = asyncio.create_task(self._download_loop(), name=f"parts-{self.name}")

    async def stop(self) -> None:
        tasks = [*self._hints.values(), *([self._downloader] if self._downloader else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def wait_downloads(self) -> None:
        await self._queue.join()

    def blocking_query(self, playlist: MediaPlaylist) -> str | None:
        """The query of the next blocking reload, None when the playlist lists no part."""
        wanted = next_part(playlist)
        if wanted is None:
            return None
        query = f"_HLS_msn={wanted[0]}&_HLS_part={wanted[1]}"
        if self._delta_allowed(playlist):
            query += "&_HLS_skip=YES"
        return query

    def _delta_allowed(self, playlist: MediaPlaylist) -> bool:
        # A delta update is only safe with a recent full playlist to merge it into: half
        # of CAN-SKIP-UNTIL, as players do.
        if not playlist.can_skip_until or self._full_playlist_at is None:
            return False
        return time.monotonic() - self._full_playlist_at < playlist.can_skip_until / 2

    def on_playlist(self, playlist: MediaPlaylist, fetched: Fetched) -> list[Part]:
        """Takes a playlist's new parts (queued for download) and its hint; the new parts."""
        if playlist.skipped_segments == 0:
            self._full_playlist_at = fetched.received_monotonic
        if self._newest is None:
            new = list(playlist.parts[-1:])  # joining: the live edge only
        else:
            new = [p for p in playlist.parts if p.key > self._newest]
        if new:
            self._newest = new[-1].key
        self._listed.extend(_hint_key(p.uri, p.byterange) for p in new)
        for part in new:
            try:
                self._queue.put_nowait((part, fetched.completed_at))
            except asyncio.QueueFull:
                self._observer.on_anomaly(self.name, PARTS_SKIPPED)
        if playlist.preload_hint is not None and not playlist.endlist:
            self._request_hint(playlist.preload_hint)
        return new

    def _request_hint(self, hint: PreloadHint) -> None:
        key = _hint_key(hint.uri, hint.byterange)
        if key == self._hint_sent_for:
            return  # asked for already: one request per hinted part
        if self._hint_sent_for is not None and self._hint_sent_for not in self._listed:
            self._observer.on_anomaly(self.name, HINT_NOT_LISTED)
        self._hint_sent_for = key
        self._hinted.append(key)
        self.hint_requests += 1
        self._hints[key] = asyncio.create_task(self._fetch_hint(hint), name=f"hint-{self.name}")
        while len(self._hints) > _MAX_HINTS:
            self._hints.pop(next(iter(self._hints))).cancel()  # never listed: given up

    async def _fetch_hint(self, hint: PreloadHint) -> Fetched | None:
        try:
            return await self._fetcher.get(
                hint.uri, PRELOAD_HINT, MAX_PART_BYTES, retry=False, byterange=hint.byterange
            )
        except FetchError:
            return None  # fetched again once listed; a miss there is what counts

    async def _hinted_bytes(self, part: Part) -> Fetched | None:
        task = self._hints.pop(_hint_key(part.uri, part.byterange), None)
        if task is None:
            return None
        with contextlib.suppress(asyncio.CancelledError):
            return await task
        return None

    async def _download_loop(self) -> None:
        while True:
            part, listed_at = await self._queue.get()
            try:
                self._observer.on_part(await self._fetch(part, listed_at))
            finally:
                self._queue.task_done()

    async def _fetch(self, part: Part, listed_at: float) -> PartFetch:
        def failed(exc: FetchError, hinted: bool = False) -> PartFetch:
            return PartFetch(
                rendition=self.name,
                part=part,
                listed_at=listed_at,
                downloaded_at=None,
                size_bytes=0,
                analysis=None,
                hinted=hinted,
                error_kind=exc.kind,
                error_detail=f"{exc.object_type}: {exc.detail}",
                error_source=exc.object_type,
            )

        fetched = None if part.gap else await self._hinted_bytes(part)
        hinted = fetched is not None
        try:
            init = await self._init_section(part.init_uri)
            if fetched is None and not part.gap:
                self.part_requests += 1
                fetched = await self._fetcher.get(
                    part.uri, PART, MAX_PART_BYTES, retry=True, byterange=part.byterange
                )
        except FetchError as exc:
            if exc.status == 404 and _hint_key(part.uri, part.byterange) in self._hinted:
                exc = FetchError(PRELOAD_HINT_MISS, PART, f"hinted, listed, then {exc.detail}")
            return failed(exc)
        if fetched is None:  # a GAP part: nothing to fetch, nothing a viewer gets
            return PartFetch(
                rendition=self.name,
                part=part,
                listed_at=listed_at,
                downloaded_at=None,
                size_bytes=0,
                analysis=None,
                hinted=False,
            )
        analysis = None
        kind = detail = None
        try:
            analysis = await analyse_part_bytes(fetched.body, init)
        except SegmentDecodeError as exc:
            kind, detail = "segment_decode_error", f"part {part.sequence}.{part.index}: {exc}"
        return PartFetch(
            rendition=self.name,
            part=part,
            listed_at=listed_at,
            downloaded_at=fetched.completed_at,
            size_bytes=len(fetched.body),
            analysis=analysis,
            hinted=hinted,
            error_kind=kind,
            error_detail=detail,
        )
