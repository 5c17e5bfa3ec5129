"""HLS playback: the first implementation of the playback seam.

Like a player: read the playback URL (a master playlist, or a single media playlist),
follow every rendition it lists (one RenditionFollower each), re-read the master every few
seconds to see renditions come, move and go. Reports what it sees to the observer and
judges nothing itself, except what HLS alone can say: an EXT-X-ERROR tag is reported once
per rendition and text, not on every poll.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from streamer.playback.base import PlaybackObserver, PlaybackOptions
from streamer.playback.decoding import DecodePlan
from streamer.playback.fetch import Fetcher, FetchError
from streamer.playback.follower import RenditionFollower, SegmentFetch
from streamer.playback.llhls import PartFetch
from streamer.playback.playlist import (
    MAX_PLAYLIST_BYTES,
    MasterPlaylist,
    MediaPlaylist,
    PlaylistError,
    Variant,
    rendition_names,
)
from streamer.playback.workers import parse_playlist

log = logging.getLogger(__name__)

SINGLE_RENDITION = "source"
MASTER_PLAYLIST = "master playlist"
RENDITIONS_OVER_CAP = "renditions_over_cap"  # an anomaly: counted, once per session
_MASTER_REFRESH_SECONDS = 5.0
# A rendition gone from the master is still followed this long (a viewer already playing
# it keeps polling its playlist), then its follower is retired.
_RETIRE_AFTER_SECONDS = 3 * _MASTER_REFRESH_SECONDS


class HlsPlayback:
    """Follows an HLS stream's renditions; the followers' observer, forwarding to the
    session's."""

    def __init__(
        self, url: str, fetcher: Fetcher, observer: PlaybackObserver, options: PlaybackOptions
    ) -> None:
        self._url = url
        self._fetcher = fetcher
        self._observer = observer
        self._options = options
        self._followers: dict[str, RenditionFollower] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._followed_names: set[str] = set()  # every rendition followed this session
        self._absent_since: dict[str, float] = {}  # followed, gone from the master (monotonic)
        self._over_cap_reported = False
        self._error_tags_seen: set[tuple[str | None, str]] = set()
        self._last_error: str | None = None
        self._decode_plan = DecodePlan()

    @property
    def last_error(self) -> str | None:
        return self._last_error

    @property
    def followers(self) -> Mapping[str, RenditionFollower]:
        return self._followers

    def renditions(self) -> Mapping[str, bool]:
        return {name: follower.ended for name, follower in self._followers.items()}

    async def wait_downloads(self) -> None:
        await asyncio.gather(*(f.wait_downloads() for f in self._followers.values()))

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            tasks = list(self._tasks.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        top = await self._first_answer()
        if top is None:
            return
        if isinstance(top, MediaPlaylist):
            self._follow(SINGLE_RENDITION, self._url, None, None, None)
            self._followers[SINGLE_RENDITION].decoding = self._decode_plan.single()
            await asyncio.gather(*self._tasks.values())
            return
        self._on_master(top)
        while True:
            await asyncio.sleep(_MASTER_REFRESH_SECONDS)
            try:
                top = await self._fetch_top()
            except (FetchError, PlaylistError) as exc:
                kind = exc.kind if isinstance(exc, FetchError) else "playlist_error"
                self._observer.on_error(None, kind, str(exc), MASTER_PLAYLIST)
                continue
            if isinstance(top, MediaPlaylist):
                self._observer.on_error(
                    None,
                    "playlist_error",
                    "master playlist turned into a media playlist",
                    MASTER_PLAYLIST,
                )
                continue
            self._observer.on_recovered(None, MASTER_PLAYLIST)
            self._on_master(top)

    async def _fetch_top(self) -> MasterPlaylist | MediaPlaylist:
        fetched = await self._fetcher.get(
            self._url, MASTER_PLAYLIST, MAX_PLAYLIST_BYTES, retry=False
        )
        return await parse_playlist(fetched.body, self._url)

    async def _first_answer(self) -> MasterPlaylist | MediaPlaylist | None:
        """The first playlist, polled for until the startup deadline: before the stream is
        live a missing playlist is expected, a refusal is not."""
        refused = False
        while True:
            try:
                return await self._fetch_top()
            except (FetchError, PlaylistError) as exc:
                kind = exc.kind if isinstance(exc, FetchError) else "playlist_error"
                self._last_error = str(exc)
                if isinstance(exc, FetchError) and exc.status in (401, 403) and not refused:
                    refused = True
                    self._observer.on_error(None, kind, str(exc))
                if time.monotonic() > self._options.startup_deadline:
                    if not refused:
                        self._observer.on_error(None, kind, str(exc))
                    return None
                await asyncio.sleep(self._options.poll_step_seconds)

    def _on_master(self, master: MasterPlaylist) -> None:
        now = time.time()
        if master.error is not None:
            self._report_error_tag(None, master.error)
        master = self._within_cap(master)
        names = rendition_names(master.variants)
        present: dict[str, Variant] = {}
        for name, variant in zip(names, master.variants, strict=True):
            self._absent_since.pop(name, None)
            follower = self._followers.get(name)
            if follower is None:
                if name in self._followed_names or self._room_for_another():
                    self._follow(
                        name, variant.uri, variant.resolution, variant.codecs, variant.bandwidth
                    )
            elif follower.url != variant.uri:
                log.info("rendition %s moved to a new URI; following it there", name)
                follower.url = variant.uri
            if name in self._followers:
                present[name] = variant
        self._plan_decoding(present)
        self._retire_absent(set(names))
        self._observer.on_master(master, names, now)

    def _plan_decoding(self, present: dict[str, Variant]) -> None:
        """Which renditions are decoded frame by frame (see playback/decoding.py)."""
        primary = self._decode_plan.primary
        for name, decoding in self._decode_plan.assign(present).items():
            self._followers[name].decoding = decoding
        if self._decode_plan.primary != primary and self._decode_plan.primary is not None:
            log.info(
                "decoding every frame of rendition %s; keyframes of the others (%s mode)",
                self._decode_plan.primary,
                self._decode_plan.policy,
            )

    def _within_cap(self, master: MasterPlaylist) -> MasterPlaylist:
        """The master's first `max_renditions` variants: each followed rendition costs
        requests, decoding and label values; more than that is counted, not followed."""
        cap = self._options.max_renditions
        if master.listed_variants <= cap:
            return master
        self._renditions_over_cap(master.listed_variants)
        return MasterPlaylist(variants=master.variants[:cap], error=master.error)

    def _room_for_another(self) -> bool:
        if len(self._followed_names) < self._options.max_renditions:
            return True
        # Renditions renamed on every refresh would otherwise spawn followers without end.
        self._renditions_over_cap(None)
        return False

    def _renditions_over_cap(self, listed: int | None) -> None:
        if self._over_cap_reported:
            return
        self._over_cap_reported = True
        what = f"lists {listed} renditions" if listed else "renames its renditions"
        log.warning(
            "the master playlist %s; following at most %d (max_renditions)",
            what,
            self._options.max_renditions,
        )
        self._observer.on_anomaly(None, RENDITIONS_OVER_CAP)

    def _retire_absent(self, present: set[str]) -> None:
        """Followers of renditions gone from the master for a while are stopped, and their
        caches dropped with them."""
        now = time.monotonic()
        for name in [n for n in self._followers if n not in present]:
            since = self._absent_since.setdefault(name, now)
            if now - since < _RETIRE_AFTER_SECONDS:
                continue
            log.info("rendition %s left the master playlist; no longer followed", name)
            del self._followers[name]
            del self._absent_since[name]
            self._tasks.pop(name).cancel()
            self._observer.on_rendition_retired(name)

    def _follow(
        self, name: str, url: str, resolution: str | None, codecs: str | None, bandwidth: int | None
    ) -> None:
        self._observer.on_rendition(name, resolution, codecs, bandwidth)
        follower = RenditionFollower(
            name,
            url,
            self._fetcher,
            self,
            self._options.poll_step_seconds,
            gop_seconds=self._options.gop_seconds,
        )
        self._followers[name] = follower
        self._followed_names.add(name)
        self._tasks[name] = asyncio.create_task(follower.run(), name=f"follow-{name}")

    def _report_error_tag(self, rendition: str | None, text: str) -> None:
        # An EXT-X-ERROR is a state the platform is in, not an event per poll: once per
        # rendition and text is enough (and keeps logs and error counts meaningful).
        if (rendition, text) in self._error_tags_seen:
            return
        self._error_tags_seen.add((rendition, text))
        self._observer.on_error(rendition, "playlist_error", f"EXT-X-ERROR: {text}")

    # FollowerObserver: the followers report here; forwarded to the session.

    def on_playlist(self, rendition: str, playlist: MediaPlaylist, fetched_at: float) -> None:
        self._observer.on_playlist(rendition, playlist, fetched_at)
        if playlist.error is not None:
            self._report_error_tag(rendition, playlist.error)

    def on_segment(self, fetch: SegmentFetch) -> None:
        self._observer.on_segment(fetch)

    def on_part(self, fetch: PartFetch) -> None:
        self._observer.on_part(fetch)

    def on_error(
        self, rendition: str | None, kind: str, detail: str, source: str | None = None
    ) -> None:
        self._observer.on_error(rendition, kind, detail, source)

    def on_anomaly(self, rendition: str | None, anomaly: str) -> None:
        self._observer.on_anomaly(rendition, anomaly)
