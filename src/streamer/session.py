"""One test session: publish the clip, follow every rendition, turn observations into events.

    publisher ──RTMP──> platform ──HLS──> followers ──observations──> session ──events──> sinks

The session matches what the followers observed against the publisher's send log (every
frame carries its number in the picture), runs the checks, and emits typed events. A
failure of the platform is an event, never an exception; cancelling the session ends it as
`aborted`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from streamer.checks.base import (
    Check,
    Failure,
    Finding,
    Observation,
    SegmentRecord,
    SessionContext,
)
from streamer.checks.registry import build_checks
from streamer.events import (
    CheckFailed,
    CheckObserved,
    EventSink,
    FirstSegment,
    Outcome,
    PlaybackAnomaly,
    PublishConnected,
    RenditionDiscovered,
    RequestFailed,
    SegmentObserved,
    SessionEnded,
    SessionStarted,
    StreamLabels,
)
from streamer.placement import Placement, Unplaced, place
from streamer.playback.fetch import Fetcher, FetchError, FetchPolicy
from streamer.playback.follower import MEDIA_PLAYLIST, RenditionFollower, SegmentFetch
from streamer.playback.playlist import (
    MAX_PLAYLIST_BYTES,
    MasterPlaylist,
    MediaPlaylist,
    PlaylistError,
    rendition_names,
)
from streamer.playback.storms import ErrorStorms, StormSummary
from streamer.playback.workers import parse_playlist
from streamer.publish.errors import PublishError
from streamer.publish.flv import FlvClip
from streamer.publish.publisher import FaultInjection, Publisher
from streamer.signal.clip import ClipSpec
from streamer.urls import InvalidURLError, mask_ingest, mask_playback, parse_ingest

log = logging.getLogger(__name__)

SINGLE_RENDITION = "source"
_TICK_SECONDS = 0.25
_MASTER_REFRESH_SECONDS = 5.0
_STOP_AHEAD_SECONDS = 0.1  # more than the publisher's 50 ms send batches
# A rendition gone from the master is still followed this long (a viewer already playing
# it keeps polling its playlist), then its follower is retired.
_RETIRE_AFTER_SECONDS = 3 * _MASTER_REFRESH_SECONDS
MASTER_PLAYLIST = "master playlist"
RENDITIONS_OVER_CAP = "renditions_over_cap"  # an anomaly: counted, once per session


class ProvisionError(Exception):
    """Getting or giving back a session's test stream failed (e.g. the platform's API)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Target:
    """Where one session publishes and plays, when a provisioner creates it per session."""

    ingest_url: str
    playback_url: str
    headers: Callable[[], Mapping[str, str]] | None = None
    secrets: tuple[str, ...] = ()  # values never to be shown (stream keys)


class Provisioner(Protocol):
    async def acquire(self) -> Target: ...
    async def release(self) -> None: ...


@dataclass(frozen=True)
class SessionSettings:
    labels: StreamLabels
    ingest_url: str
    playback_url: str
    duration_seconds: float
    startup_timeout_seconds: float = 30.0
    connect_timeout_seconds: float = 10.0
    io_timeout_seconds: float = 10.0
    drain_timeout_seconds: float = 10.0
    poll_step_seconds: float = 0.05  # startup: its step bounds the first segment's listed time
    fetch: FetchPolicy = field(default_factory=FetchPolicy)
    tls_ca_file: str | None = None
    expected_renditions: int | None = None
    max_renditions: int = 16  # followed at most; a master may list thousands
    checks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    faults: FaultInjection | None = None
    playback_headers: Callable[[], Mapping[str, str]] | None = None
    provisioner: Provisioner | None = None  # creates ingest/playback per session (API mode)


class Session:
    def __init__(
        self,
        settings: SessionSettings,
        flv: FlvClip,
        clip: ClipSpec,
        sink: EventSink,
        http: aiohttp.ClientSession,
        session_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.session_id = session_id or uuid.uuid4().hex[:12]
        self._flv = flv
        self._clip = clip
        self._sink = sink
        self._fetcher = Fetcher(
            settings.fetch, self._playback_headers, lambda: self._target.playback_url
        )
        self._target = Target(settings.ingest_url, settings.playback_url, settings.playback_headers)
        self._labels = settings.labels
        self._failures = 0
        self._failed_kinds: list[str] = []
        self._followers: dict[str, RenditionFollower] = {}
        self._follower_tasks: list[asyncio.Task[None]] = []
        self._follower_task: dict[str, asyncio.Task[None]] = {}
        self._followed_names: set[str] = set()  # every rendition followed this session
        self._absent_since: dict[str, float] = {}  # followed, gone from the master (monotonic)
        self._over_cap_reported = False
        self._storms = ErrorStorms()
        self._startup_until: float | None = None  # monotonic end of the startup window
        self._first_segment_at: float | None = None
        self._last_startup_error: str | None = None
        self._error_tags_seen: set[tuple[str | None, str]] = set()
        self._startup_latency: float | None = None
        self._seen_renditions: set[str] = set()
        self._newest_frame: dict[str, int] = {}
        self._publisher: Publisher | None = None
        self.context: SessionContext | None = None
        self._checks: list[Check] = []

    def _playback_headers(self) -> Mapping[str, str]:
        headers = self._target.headers
        return headers() if headers is not None else {}

    # -- events -----------------------------------------------------------------------------

    def _emit_failure(self, kind: str, rendition: str | None, detail: str) -> None:
        self._failures += 1
        if kind not in self._failed_kinds:
            self._failed_kinds.append(kind)
        self._sink.handle(
            CheckFailed(self._labels, self.session_id, kind, rendition, detail, time.time())
        )

    def _emit_observation(self, observation: Observation) -> None:
        """Something counted (e.g. a repeated frame), never failing the session."""
        self._sink.handle(
            CheckObserved(
                labels=self._labels,
                session_id=self.session_id,
                kind=observation.kind,
                rendition=observation.rendition,
                count=observation.count,
                detail=observation.detail,
                at=time.time(),
            )
        )

    def _run_checks(self, hook: Callable[[Check], Sequence[Finding]]) -> None:
        for check in self._checks:
            try:
                findings = hook(check)
            except Exception:
                log.exception("check %s crashed", check.name)
                continue
            for finding in findings:
                if isinstance(finding, Failure):
                    self._emit_failure(finding.kind, finding.rendition, finding.detail)
                else:
                    self._emit_observation(finding)

    # -- the session ------------------------------------------------------------------------

    async def run(self) -> Outcome:
        settings = self.settings
        provisioner = settings.provisioner
        if provisioner is None:
            ingest, playback = self._masked(self._target)
        else:
            ingest = playback = "(a stream created per session through the API)"
        self._sink.handle(
            SessionStarted(
                self._labels,
                self.session_id,
                time.time(),
                ingest,
                playback,
                settings.duration_seconds,
            )
        )
        outcome: Outcome = "aborted"
        try:
            if provisioner is not None:
                try:
                    self._target = await provisioner.acquire()
                except ProvisionError as exc:
                    self._emit_failure(exc.kind, None, exc.detail)
                    outcome = "failure"
                    return outcome
                log.info(
                    "test stream created: publishing to %s, playing %s",
                    *self._masked(self._target),
                    extra={"stream": self._labels.stream, "session_id": self.session_id},
                )
            outcome = await self._run()
        finally:
            if provisioner is not None and not await self._release(provisioner):
                outcome = "failure" if outcome == "success" else outcome
            self._sink.handle(
                SessionEnded(
                    self._labels,
                    self.session_id,
                    outcome,
                    time.time(),
                    self._startup_latency,
                    tuple(self._failed_kinds),
                )
            )
        return outcome

    @staticmethod
    def _masked(target: Target) -> tuple[str, str]:
        try:
            key: tuple[str, ...] = (parse_ingest(target.ingest_url).stream_key,)
        except InvalidURLError:
            key = ()
        return mask_ingest(target.ingest_url), mask_playback(
            target.playback_url, key + target.secrets
        )

    async def _release(self, provisioner: Provisioner) -> bool:
        """Gives the test stream back, even when the session is being cancelled."""
        try:
            async with asyncio.timeout(5):
                await asyncio.shield(provisioner.release())
        except ProvisionError as exc:
            self._emit_failure(exc.kind, None, exc.detail)
            return False
        except (TimeoutError, asyncio.CancelledError):
            self._emit_failure("api_error", None, "deleting the test stream timed out")
            return False
        return True

    async def _run(self) -> Outcome:
        settings = self.settings
        target = self._target
        try:
            ingest = parse_ingest(target.ingest_url)
        except InvalidURLError as exc:
            self._emit_failure("publish_failed", None, str(exc))
            return "failure"
        tls = None
        if ingest.secure and settings.tls_ca_file:
            tls = ssl.create_default_context(cafile=settings.tls_ca_file)
        publisher = Publisher(
            self._flv,
            self._clip.frame_count,
            self._clip.fps,
            ingest,
            tls_context=tls,
            connect_timeout=settings.connect_timeout_seconds,
            io_timeout=settings.io_timeout_seconds,
            faults=settings.faults,
        )
        self._publisher = publisher
        self.context = SessionContext(
            publisher.send_log, self._clip.fps, self._clip.gop_frames, settings.expected_renditions
        )
        self._checks = build_checks(self.context, settings.checks)
        connected = asyncio.Event()
        publish_task = asyncio.create_task(
            publisher.run(lambda _t: connected.set()), name="publish"
        )
        background: list[asyncio.Task[None]] = []
        try:
            if not await self._wait_connected(publish_task, connected):
                return "failure"
            started = publisher.send_log.first_packet_at
            assert started is not None
            self.context.publish_started_at = started
            self._sink.handle(PublishConnected(self._labels, self.session_id, started))
            background = [
                asyncio.create_task(self._discover_and_follow(started), name="follow"),
                asyncio.create_task(self._tick(started), name="tick"),
            ]
            # Asked to stop a little before the deadline, the publisher ends right before the
            # keyframe due then: a session of whole GOPs publishes exactly `duration`.
            remaining = started + settings.duration_seconds - _STOP_AHEAD_SECONDS - time.time()
            done, _ = await asyncio.wait([publish_task], timeout=max(0.0, remaining))
            if done:
                self._report_publish_end(publish_task)
            publisher.stop()
            await self._finish_publish(publish_task)
            self.context.publish_stopped_at = time.time()
            await self._drain()
            self._report_storms(self._storms.end())
            self._run_checks(lambda c: c.on_end(time.time()))
            if self._first_segment_at is None and "startup_timeout" not in self._failed_kinds:
                last = self._last_startup_error
                self._emit_failure(
                    "startup_timeout",
                    None,
                    "no segment of this session was ever playable"
                    + (f" (last answer: {last})" if last else ""),
                )
            return "failure" if self._failures else "success"
        finally:
            publisher.stop()
            for task in [*background, *self._follower_tasks]:
                task.cancel()
            await asyncio.gather(*background, *self._follower_tasks, return_exceptions=True)
            if not publish_task.done():
                publish_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await publish_task
            await self._fetcher.close()

    async def _wait_connected(
        self, publish_task: asyncio.Task[None], connected: asyncio.Event
    ) -> bool:
        waiter = asyncio.create_task(connected.wait())
        try:
            await asyncio.wait([publish_task, waiter], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if connected.is_set():
            return True
        self._report_publish_end(publish_task)
        return False

    def _report_publish_end(self, publish_task: asyncio.Task[None]) -> None:
        error = publish_task.exception() if not publish_task.cancelled() else None
        reason = str(error) if isinstance(error, PublishError) else "publish ended unexpectedly"
        if error is not None and not isinstance(error, PublishError):
            log.error("publisher crashed", exc_info=error)
        self._emit_failure("publish_failed", None, reason)

    async def _finish_publish(self, publish_task: asyncio.Task[None]) -> None:
        if publish_task.done():
            return
        try:
            # The publisher finishes its GOP first: at most one GOP more.
            async with asyncio.timeout(self._clip.gop_seconds + 1.0):
                await publish_task
        except PublishError as exc:
            log.info("publish ended with %s", exc)
        except TimeoutError:
            publish_task.cancel()

    async def _drain(self) -> None:
        """Lets the followers pick up the last segments after publishing stopped."""
        assert self._publisher is not None
        last_sent = self._publisher.send_log.frames_sent - 1
        # The last partial GOP may never be packaged: one GOP short counts as complete.
        wanted = last_sent - self._clip.gop_frames
        deadline = time.monotonic() + self.settings.drain_timeout_seconds
        while time.monotonic() < deadline and self._followers:
            if all(
                self._newest_frame.get(name, -1) >= wanted or f.ended
                for name, f in self._followers.items()
            ):
                break
            await asyncio.sleep(0.1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.5, deadline - time.monotonic())):
                await asyncio.gather(*(f.wait_downloads() for f in self._followers.values()))

    async def _tick(self, started: float) -> None:
        deadline = started + self.settings.startup_timeout_seconds
        reported = False
        while True:
            await asyncio.sleep(_TICK_SECONDS)
            now = time.time()
            if not reported and self._first_segment_at is None and now > deadline:
                reported = True
                self._emit_failure(
                    "startup_timeout",
                    None,
                    f"no playable segment {self.settings.startup_timeout_seconds:g}s"
                    " after publishing started",
                )
            self._run_checks(lambda c, now=now: c.on_tick(now))  # type: ignore[misc]

    # -- playback ---------------------------------------------------------------------------

    async def _fetch_top(self) -> MasterPlaylist | MediaPlaylist:
        fetched = await self._fetcher.get(
            self._target.playback_url, MASTER_PLAYLIST, MAX_PLAYLIST_BYTES, retry=False
        )
        return await parse_playlist(fetched.body, self._target.playback_url)

    async def _discover_and_follow(self, started: float) -> None:
        # The deadline on the monotonic clock: a wall-clock step must not move it.
        remaining = started + self.settings.startup_timeout_seconds - time.time()
        deadline = self._startup_until = time.monotonic() + remaining
        refused = False
        while True:
            try:
                top = await self._fetch_top()
                break
            except (FetchError, PlaylistError) as exc:
                kind = exc.kind if isinstance(exc, FetchError) else "playlist_error"
                self._last_startup_error = str(exc)
                # Before the stream is live a missing playlist is expected; a refusal is not.
                if isinstance(exc, FetchError) and exc.status in (401, 403) and not refused:
                    refused = True
                    self._emit_failure(kind, None, str(exc))
                if time.monotonic() > deadline:
                    if not refused:
                        self._emit_failure(kind, None, str(exc))
                    return
                await asyncio.sleep(self.settings.poll_step_seconds)
        if isinstance(top, MediaPlaylist):
            self._follow(SINGLE_RENDITION, self._target.playback_url, None, None, None)
            await asyncio.gather(*self._follower_tasks)
            return
        self._on_master(top)
        while True:
            await asyncio.sleep(_MASTER_REFRESH_SECONDS)
            try:
                top = await self._fetch_top()
            except (FetchError, PlaylistError) as exc:
                kind = exc.kind if isinstance(exc, FetchError) else "playlist_error"
                self.on_error(None, kind, str(exc), MASTER_PLAYLIST)
                continue
            if isinstance(top, MediaPlaylist):
                self.on_error(
                    None,
                    "playlist_error",
                    "master playlist turned into a media playlist",
                    MASTER_PLAYLIST,
                )
                continue
            self._report_storms(self._storms.recovered(None, MASTER_PLAYLIST))
            self._on_master(top)

    def _on_master(self, master: MasterPlaylist) -> None:
        now = time.time()
        if master.error is not None:
            self._report_error_tag(None, master.error)
        master = self._within_cap(master)
        names = rendition_names(master.variants)
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
        self._retire_absent(set(names))
        self._run_checks(lambda c: c.on_master(master, names, now))

    def _within_cap(self, master: MasterPlaylist) -> MasterPlaylist:
        """The master's first `max_renditions` variants: each followed rendition costs
        requests, decoding and label values; more than that is counted, not followed."""
        cap = self.settings.max_renditions
        if master.listed_variants <= cap:
            return master
        self._renditions_over_cap(master.listed_variants)
        return MasterPlaylist(variants=master.variants[:cap], error=master.error)

    def _room_for_another(self) -> bool:
        if len(self._followed_names) < self.settings.max_renditions:
            return True
        # Renditions renamed on every refresh would otherwise spawn followers without end.
        self._renditions_over_cap(None)
        return False

    def _renditions_over_cap(self, listed: int | None) -> None:
        if self._over_cap_reported:
            return
        self._over_cap_reported = True
        cap = self.settings.max_renditions
        what = f"lists {listed} renditions" if listed else "renames its renditions"
        log.warning(
            "the master playlist %s; following at most %d (max_renditions)",
            what,
            cap,
            extra={"stream": self._labels.stream, "session_id": self.session_id},
        )
        self._sink.handle(
            PlaybackAnomaly(
                labels=self._labels,
                session_id=self.session_id,
                rendition=None,
                anomaly=RENDITIONS_OVER_CAP,
                at=time.time(),
            )
        )

    def _retire_absent(self, present: set[str]) -> None:
        """Followers of renditions gone from the master for a while are stopped, and their
        caches dropped with them."""
        now = time.monotonic()
        for name in [n for n in self._followers if n not in present]:
            since = self._absent_since.setdefault(name, now)
            if now - since < _RETIRE_AFTER_SECONDS:
                continue
            log.info("rendition %s left the master playlist; no longer followed", name)
            if self.context is not None:
                self.context.retired_renditions.add(name)
            del self._followers[name]
            del self._absent_since[name]
            self._follower_task.pop(name).cancel()
        self._follower_tasks = [t for t in self._follower_tasks if not t.done()]

    def _follow(
        self, name: str, url: str, resolution: str | None, codecs: str | None, bandwidth: int | None
    ) -> None:
        self._sink.handle(
            RenditionDiscovered(
                self._labels, self.session_id, name, resolution, codecs, bandwidth, time.time()
            )
        )
        follower = RenditionFollower(
            name,
            url,
            self._fetcher,
            self,
            self.settings.poll_step_seconds,
            gop_seconds=self._clip.gop_frames / self._clip.fps,
        )
        self._followers[name] = follower
        self._followed_names.add(name)
        if self.context is not None:
            self.context.retired_renditions.discard(name)
        task = asyncio.create_task(follower.run(), name=f"follow-{name}")
        self._follower_task[name] = task
        self._follower_tasks.append(task)

    @property
    def followers(self) -> Mapping[str, RenditionFollower]:
        return self._followers

    # FollowerObserver

    def on_playlist(self, rendition: str, playlist: MediaPlaylist, fetched_at: float) -> None:
        self._seen_renditions.add(rendition)
        self._report_storms(self._storms.recovered(rendition, MEDIA_PLAYLIST))
        if playlist.error is not None:
            self._report_error_tag(rendition, playlist.error)
        self._run_checks(lambda c: c.on_playlist(rendition, playlist, fetched_at))

    def _report_error_tag(self, rendition: str | None, text: str) -> None:
        # An EXT-X-ERROR is a state the platform is in, not an event per poll: once per
        # rendition and text is enough (and keeps logs and error counts meaningful).
        if (rendition, text) in self._error_tags_seen:
            return
        self._error_tags_seen.add((rendition, text))
        self._emit_failure("playlist_error", rendition, f"EXT-X-ERROR: {text}")

    def on_error(
        self, rendition: str | None, kind: str, detail: str, source: str | None = None
    ) -> None:
        stopped = self.context is not None and self.context.publish_stopped_at is not None
        starting = rendition is not None and rendition not in self._seen_renditions
        if stopped or (starting and self._within_startup()):
            return  # a stream that has not started, or has ended, may 404: not a fault
        if source is None:
            self._emit_failure(kind, rendition, detail)
            return
        self._sink.handle(
            RequestFailed(
                labels=self._labels,
                session_id=self.session_id,
                rendition=rendition,
                kind=kind,
                source=source,
                at=time.time(),
            )
        )
        # The first failure of a run is reported as it is; the rest are counted, and
        # summed up once the run ends (see playback/storms.py).
        if self._storms.failed(rendition, source, kind, detail):
            self._emit_failure(kind, rendition, detail)

    def _report_storms(self, summaries: list[StormSummary]) -> None:
        for summary in summaries:
            self._emit_failure(summary.kind, summary.rendition, summary.detail)

    def on_anomaly(self, rendition: str, anomaly: str) -> None:
        self._sink.handle(
            PlaybackAnomaly(
                labels=self._labels,
                session_id=self.session_id,
                rendition=rendition,
                anomaly=anomaly,
                at=time.time(),
            )
        )

    def _within_startup(self) -> bool:
        return self._startup_until is None or time.monotonic() < self._startup_until

    def on_segment(self, fetch: SegmentFetch) -> None:
        if fetch.downloaded_at is not None:  # the requests succeeded, whatever the bytes are
            self._report_storms(self._storms.recovered(fetch.rendition, "segment"))
            self._report_storms(self._storms.recovered(fetch.rendition, "init segment"))
        if fetch.error_kind is not None:
            self.on_error(
                fetch.rendition, fetch.error_kind, fetch.error_detail or "", fetch.error_source
            )
            return
        analysis = fetch.analysis
        assert analysis is not None and fetch.downloaded_at is not None
        assert self._publisher is not None
        placed = place(analysis, self._publisher.send_log, fetch.listed_at, self._clip.fps)
        newest = first = newest_sent_at = None
        if isinstance(placed, Placement):
            first, newest, newest_sent_at = (
                placed.first_frame,
                placed.newest_frame,
                placed.newest_sent_at,
            )
        elif placed is Unplaced.FOREIGN or fetch.first_listing:
            # Readable but never sent before it was listed, or unreadable in the first
            # playlist seen: an earlier session's segment, or cannot tell.
            log.debug(
                "ignoring segment %d of %s: not from this session",
                fetch.segment.sequence,
                fetch.rendition,
            )
            return
        else:
            self._emit_failure(
                "timecode_unreadable",
                fetch.rendition,
                f"segment {fetch.segment.sequence}: {placed.value}",
            )
        if newest is not None:
            self._newest_frame[fetch.rendition] = max(
                self._newest_frame.get(fetch.rendition, -1), newest
            )
        if self._first_segment_at is None and self.context is not None:
            started = self.context.publish_started_at
            assert started is not None
            self._first_segment_at = fetch.listed_at
            self._startup_latency = fetch.listed_at - started
            self._sink.handle(
                FirstSegment(
                    self._labels,
                    self.session_id,
                    fetch.rendition,
                    self._startup_latency,
                    fetch.listed_at,
                )
            )
        self._sink.handle(
            SegmentObserved(
                self._labels,
                self.session_id,
                fetch.rendition,
                fetch.segment.sequence,
                fetch.listed_at,
                fetch.downloaded_at,
                fetch.segment.duration,
                analysis.media_duration,
                newest_sent_at,
                analysis.resolution,
                analysis.video_codec,
                fetch.size_bytes,
            )
        )
        record = SegmentRecord(
            fetch.rendition,
            fetch.segment,
            fetch.listed_at,
            fetch.downloaded_at,
            analysis,
            first,
            newest,
            newest_sent_at,
        )
        self._run_checks(lambda c: c.on_segment(record))
