"""One test session: publish the test signal, play it back like a viewer, turn what was
observed into events. The session only orchestrates:

    provisioner ──target──> session ──opens──> ingest (publish/registry: rtmp, ...)
                                        └─────> playback (playback/registry: hls, ...)
    playback ──observations──> session ──placement, checks──> typed events ──> sinks

Every target comes from a provisioner (fixed URLs, or a stream created per session), every
protocol is behind the ingest or the playback seam, and every observed unit is placed
against the ingest's send log (streamer.placement). A failure of the platform is an event,
never an exception; cancelling the session ends it as `aborted`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamer.checks.base import (
    Check,
    Failure,
    Finding,
    Observation,
    PartRecord,
    SegmentRecord,
    SessionContext,
)
from streamer.checks.registry import build_checks
from streamer.events import (
    CheckFailed,
    CheckObserved,
    EventSink,
    FirstSegment,
    FramesPlayed,
    IngestLinkStats,
    Measurement,
    Outcome,
    PartObserved,
    PlaybackAnomaly,
    PlaybackMeasured,
    PublishConnected,
    RenditionDiscovered,
    RequestFailed,
    SegmentObserved,
    SessionEnded,
    SessionStarted,
    StreamLabels,
)
from streamer.placement import PartPlacer, Placement, Unplaced, frame_latencies, place
from streamer.playback.base import Playback, PlaybackOptions
from streamer.playback.fetch import Fetcher, FetchPolicy
from streamer.playback.follower import MEDIA_PLAYLIST, SegmentFetch
from streamer.playback.llhls import PART, PartFetch
from streamer.playback.playlist import MasterPlaylist, MediaPlaylist
from streamer.playback.registry import DEFAULT_PLAYBACK_PROTOCOL, open_playback
from streamer.playback.storms import ErrorStorms, StormSummary
from streamer.publish.errors import PublishError
from streamer.publish.flv import FlvClip
from streamer.publish.ingest import Ingest, IngestOptions, LinkSample
from streamer.publish.publisher import FaultInjection
from streamer.publish.registry import ingest_protocol
from streamer.targets import FixedTarget, Provisioner, ProvisionError, Target
from streamer.testsignal.clip import ClipSpec
from streamer.urls import InvalidURLError

log = logging.getLogger(__name__)

_TICK_SECONDS = 0.25
# What units of frames received one by one (WebRTC) are checked for: what a viewer sees
# and hears. Their "segments" are the session's own batches, with no playlist behind them.
FRAME_CHECKS = frozenset({"frozen_video", "frame_drop", "audio_missing", "av_desync"})
_STOP_AHEAD_SECONDS = 0.1  # more than the publisher's 50 ms send batches


@dataclass(frozen=True, kw_only=True)
class SessionSettings:
    labels: StreamLabels
    duration_seconds: float
    # The target: fixed URLs, or a provisioner that creates one per session (API mode).
    ingest_url: str | None = None
    playback_url: str | None = None
    playback_headers: Callable[[], Mapping[str, str]] | None = None
    provisioner: Provisioner | None = None
    playback_protocol: str = DEFAULT_PLAYBACK_PROTOCOL
    # Several protocols played at once, each measured under its own `playback_protocol`
    # label (the first is the session's own: its startup latency); empty: the one above.
    playback_protocols: tuple[str, ...] = ()
    ice_servers: tuple[str, ...] = ()  # WebRTC: STUN/TURN servers; none by default
    freeze_ms: float = 500.0  # WebRTC: no new frame this long is reported as frozen_video
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

    @property
    def protocols(self) -> tuple[str, ...]:
        return self.playback_protocols or (self.playback_protocol,)

    def target_provisioner(self) -> Provisioner:
        if self.provisioner is not None:
            return self.provisioner
        if self.ingest_url is None or self.playback_url is None:
            raise ValueError("a session needs ingest and playback URLs, or a provisioner")
        return FixedTarget(
            Target(
                ingest_url=self.ingest_url,
                playback_url=self.playback_url,
                headers=self.playback_headers,
            )
        )


class _Lane:
    """One playback protocol of a session: the observer its playback reports to. Forwards
    to the session, which labels what it emits meanwhile with this protocol."""

    def __init__(self, session: Session, protocol: str, labels: StreamLabels) -> None:
        self.session = session
        self.protocol = protocol
        self.labels = labels
        self.playback: Playback | None = None
        self.first_unit_at: float | None = None
        self.startup_reported = False

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        previous, self.session._active = self.session._active, self
        try:
            yield
        finally:
            self.session._active = previous

    def on_rendition(
        self, name: str, resolution: str | None, codecs: str | None, bandwidth: int | None
    ) -> None:
        self.session._rendition_lanes[name] = self
        with self.active():
            self.session.on_rendition(name, resolution, codecs, bandwidth)

    def on_rendition_retired(self, name: str) -> None:
        with self.active():
            self.session.on_rendition_retired(name)

    def on_master(self, master: MasterPlaylist, names: list[str], at: float) -> None:
        with self.active():
            self.session.on_master(master, names, at)

    def on_recovered(self, rendition: str | None, source: str) -> None:
        with self.active():
            self.session.on_recovered(rendition, source)

    def on_playlist(self, rendition: str, playlist: MediaPlaylist, fetched_at: float) -> None:
        with self.active():
            self.session.on_playlist(rendition, playlist, fetched_at)

    def on_segment(self, fetch: SegmentFetch) -> None:
        with self.active():
            self.session.on_segment(fetch)

    def on_part(self, fetch: PartFetch) -> None:
        with self.active():
            self.session.on_part(fetch)

    def on_error(
        self, rendition: str | None, kind: str, detail: str, source: str | None = None
    ) -> None:
        with self.active():
            self.session.on_error(rendition, kind, detail, source)

    def on_anomaly(self, rendition: str | None, anomaly: str) -> None:
        with self.active():
            self.session.on_anomaly(rendition, anomaly)

    def on_measurement(self, measurement: Measurement) -> None:
        with self.active():
            self.session.on_measurement(measurement)


class Session:
    def __init__(
        self,
        settings: SessionSettings,
        flv: FlvClip,
        clip: ClipSpec,
        sink: EventSink,
        session_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.session_id = session_id or uuid.uuid4().hex[:12]
        self._flv = flv
        self._clip = clip
        self._sink = sink
        self._labels = settings.labels
        self._failures = 0
        self._failed_kinds: list[str] = []
        self._storms = ErrorStorms()
        self._startup_until: float | None = None  # monotonic end of the startup window
        self._startup_latency: float | None = None
        self._lanes = {
            protocol: _Lane(
                self, protocol, dataclasses.replace(settings.labels, playback_protocol=protocol)
            )
            for protocol in settings.protocols
        }
        self._primary = self._lanes[settings.protocols[0]]
        self._active: _Lane | None = None  # the lane whose playback is reporting now
        self._rendition_lanes: dict[str, _Lane] = {}
        self._seen_renditions: set[str] = set()
        self._newest_frame: dict[str, int] = {}
        self._ingest: Ingest | None = None
        self.playback: Playback | None = None
        self.context: SessionContext | None = None
        self._checks: list[Check] = []
        self._parts: PartPlacer | None = None  # LL-HLS parts, placed against the send log

    # -- events -----------------------------------------------------------------------------

    def _lane(self, rendition: str | None = None) -> _Lane:
        """The protocol an event belongs to: the reporting playback's, else the
        rendition's, else the session's own."""
        if self._active is not None:
            return self._active
        lane = self._rendition_lanes.get(rendition) if rendition is not None else None
        return lane or self._primary

    def _emit_failure(self, kind: str, rendition: str | None, detail: str) -> None:
        self._failures += 1
        if kind not in self._failed_kinds:
            self._failed_kinds.append(kind)
        self._sink.handle(
            CheckFailed(
                labels=self._lane(rendition).labels,
                session_id=self.session_id,
                kind=kind,
                rendition=rendition,
                detail=detail,
                at=time.time(),
            )
        )

    def _emit_observation(self, observation: Observation) -> None:
        """Something counted (e.g. a repeated frame), never failing the session."""
        self._sink.handle(
            CheckObserved(
                labels=self._lane(observation.rendition).labels,
                session_id=self.session_id,
                kind=observation.kind,
                rendition=observation.rendition,
                count=observation.count,
                detail=observation.detail,
                at=time.time(),
            )
        )

    def _run_checks(
        self, hook: Callable[[Check], Sequence[Finding]], only: frozenset[str] | None = None
    ) -> None:
        for check in self._checks:
            if only is not None and check.name not in only:
                continue
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
        provisioner = self.settings.target_provisioner()
        ingest, playback = provisioner.describe()
        self._sink.handle(
            SessionStarted(
                labels=self._labels,
                session_id=self.session_id,
                at=time.time(),
                ingest=ingest,
                playback=playback,
                duration_seconds=self.settings.duration_seconds,
            )
        )
        outcome: Outcome = "aborted"
        try:
            try:
                target = await provisioner.acquire()
            except ProvisionError as exc:
                self._emit_failure(exc.kind, None, exc.detail)
                outcome = "failure"
                return outcome
            if target.masked() != (ingest, playback):
                log.info(
                    "test stream ready: publishing to %s, playing %s",
                    *target.masked(),
                    extra={"stream": self._labels.stream, "session_id": self.session_id},
                )
            outcome = await self._publish_and_play(target)
        finally:
            if not await self._release(provisioner):
                outcome = "failure" if outcome == "success" else outcome
            self._sink.handle(
                SessionEnded(
                    labels=self._labels,
                    session_id=self.session_id,
                    outcome=outcome,
                    at=time.time(),
                    startup_latency_seconds=self._startup_latency,
                    failed_kinds=tuple(self._failed_kinds),
                )
            )
        return outcome

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

    def _open_ingest(self, target: Target) -> Ingest | None:
        settings = self.settings
        options = IngestOptions(
            connect_timeout_seconds=settings.connect_timeout_seconds,
            io_timeout_seconds=settings.io_timeout_seconds,
            tls_ca_file=settings.tls_ca_file,
            faults=settings.faults,
            on_link_stats=self._link_stats,
        )
        try:
            protocol = ingest_protocol(target.ingest_url)
            return protocol.open(target.ingest_url, self._flv, self._clip, options)
        except InvalidURLError as exc:
            self._emit_failure("publish_failed", None, str(exc))
            return None

    def _link_stats(self, sample: LinkSample) -> None:
        self._sink.handle(
            IngestLinkStats(
                labels=self._labels,
                session_id=self.session_id,
                at=sample.at,
                rtt_seconds=sample.rtt_seconds,
                packets_retransmitted=sample.packets_retransmitted,
                packets_dropped=sample.packets_dropped,
                send_buffer_bytes=sample.send_buffer_bytes,
            )
        )

    async def _publish_and_play(self, target: Target) -> Outcome:
        settings = self.settings
        ingest = self._open_ingest(target)
        if ingest is None:
            return "failure"
        self._ingest = ingest
        self.context = SessionContext(
            ingest.send_log, self._clip.fps, self._clip.gop_frames, settings.expected_renditions
        )
        self._checks = build_checks(self.context, settings.checks)
        # One per protocol: the fetch policy trusts what each one's own URL names.
        fetchers = {
            protocol: Fetcher(
                settings.fetch,
                target.headers,
                lambda protocol=protocol: target.playback_url_for(protocol),  # type: ignore[misc]
            )
            for protocol in self._lanes
        }
        connected = asyncio.Event()
        publish_task = asyncio.create_task(ingest.run(lambda _t: connected.set()), name="publish")
        background: list[asyncio.Task[None]] = []
        try:
            if not await self._wait_connected(publish_task, connected):
                return "failure"
            started = ingest.send_log.first_packet_at
            assert started is not None
            self.context.publish_started_at = started
            self._sink.handle(
                PublishConnected(labels=self._labels, session_id=self.session_id, at=started)
            )
            self._open_playbacks(target, fetchers, started)
            self.playback = self._primary.playback
            background = [
                *(
                    asyncio.create_task(lane.playback.run(), name=f"playback-{lane.protocol}")
                    for lane in self._lanes.values()
                    if lane.playback is not None
                ),
                asyncio.create_task(self._tick(started), name="tick"),
            ]
            # Asked to stop a little before the deadline, the publisher ends right before the
            # keyframe due then: a session of whole GOPs publishes exactly `duration`.
            remaining = started + settings.duration_seconds - _STOP_AHEAD_SECONDS - time.time()
            done, _ = await asyncio.wait([publish_task], timeout=max(0.0, remaining))
            if done:
                self._report_publish_end(publish_task)
            ingest.stop()
            await self._finish_publish(publish_task)
            self.context.publish_stopped_at = time.time()
            await self._drain()
            self._report_storms(self._storms.end())
            self._run_checks(lambda c: c.on_end(time.time()))
            self._report_startup_timeout()
            return "failure" if self._failures else "success"
        finally:
            ingest.stop()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            if not publish_task.done():
                publish_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await publish_task
            for fetcher in fetchers.values():
                await fetcher.close()

    def _open_playbacks(
        self, target: Target, fetchers: Mapping[str, Fetcher], started: float
    ) -> None:
        settings = self.settings
        # The startup deadline on the monotonic clock: a wall-clock step must not move it.
        remaining = started + settings.startup_timeout_seconds - time.time()
        self._startup_until = time.monotonic() + remaining
        options = PlaybackOptions(
            poll_step_seconds=settings.poll_step_seconds,
            max_renditions=settings.max_renditions,
            gop_seconds=self._clip.gop_seconds,
            startup_deadline=self._startup_until,
            ice_servers=settings.ice_servers,
            freeze_ms=settings.freeze_ms,
        )
        for protocol, lane in self._lanes.items():
            url = target.playback_url_for(protocol)
            lane.playback = open_playback(protocol, url, fetchers[protocol], lane, options)

    def _report_startup_timeout(self) -> None:
        for lane in self._lanes.values():
            if lane.first_unit_at is not None or lane.startup_reported:
                continue
            lane.startup_reported = True
            last = lane.playback.last_error if lane.playback is not None else None
            with lane.active():
                self._emit_failure(
                    "startup_timeout",
                    None,
                    "no segment of this session was ever playable"
                    + (f" (last answer: {last})" if last else ""),
                )

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

    def _renditions(self) -> dict[str, bool]:
        """Every playback's renditions (their names are distinct across protocols)."""
        renditions: dict[str, bool] = {}
        for lane in self._lanes.values():
            if lane.playback is not None:
                renditions.update(lane.playback.renditions())
        return renditions

    async def _drain(self) -> None:
        """Lets the playbacks pick up the last units after publishing stopped."""
        assert self._ingest is not None
        last_sent = self._ingest.send_log.frames_sent - 1
        # The last partial GOP may never be packaged: one GOP short counts as complete.
        wanted = last_sent - self._clip.gop_frames
        deadline = time.monotonic() + self.settings.drain_timeout_seconds
        while time.monotonic() < deadline and self._renditions():
            if all(
                self._newest_frame.get(name, -1) >= wanted or ended
                for name, ended in self._renditions().items()
            ):
                break
            await asyncio.sleep(0.1)
        playbacks = [lane.playback for lane in self._lanes.values() if lane.playback is not None]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.5, deadline - time.monotonic())):
                await asyncio.gather(*(playback.wait_downloads() for playback in playbacks))

    async def _tick(self, started: float) -> None:
        deadline = started + self.settings.startup_timeout_seconds
        reported = False
        while True:
            await asyncio.sleep(_TICK_SECONDS)
            now = time.time()
            if not reported and now > deadline:
                reported = True
                for lane in self._lanes.values():
                    if lane.first_unit_at is not None:
                        continue
                    lane.startup_reported = True
                    with lane.active():
                        self._emit_failure(
                            "startup_timeout",
                            None,
                            f"no playable segment {self.settings.startup_timeout_seconds:g}s"
                            " after publishing started",
                        )
            self._run_checks(lambda c, now=now: c.on_tick(now))  # type: ignore[misc]

    # -- PlaybackObserver: what the playback saw ------------------------------------------------

    def on_rendition(
        self, name: str, resolution: str | None, codecs: str | None, bandwidth: int | None
    ) -> None:
        if self.context is not None:
            self.context.retired_renditions.discard(name)
        self._sink.handle(
            RenditionDiscovered(
                labels=self._lane(name).labels,
                session_id=self.session_id,
                rendition=name,
                resolution=resolution,
                codecs=codecs,
                bandwidth=bandwidth,
                at=time.time(),
            )
        )

    def on_rendition_retired(self, name: str) -> None:
        if self.context is not None:
            self.context.retired_renditions.add(name)

    def on_master(self, master: MasterPlaylist, names: list[str], at: float) -> None:
        self._run_checks(lambda c: c.on_master(master, names, at))

    def on_recovered(self, rendition: str | None, source: str) -> None:
        self._report_storms(self._storms.recovered(rendition, source))

    def on_playlist(self, rendition: str, playlist: MediaPlaylist, fetched_at: float) -> None:
        self._seen_renditions.add(rendition)
        self.on_recovered(rendition, MEDIA_PLAYLIST)
        self._run_checks(lambda c: c.on_playlist(rendition, playlist, fetched_at))

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
                labels=self._lane(rendition).labels,
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

    def on_anomaly(self, rendition: str | None, anomaly: str) -> None:
        self._sink.handle(
            PlaybackAnomaly(
                labels=self._lane(rendition).labels,
                session_id=self.session_id,
                rendition=rendition,
                anomaly=anomaly,
                at=time.time(),
            )
        )

    def on_measurement(self, measurement: Measurement) -> None:
        self._sink.handle(
            PlaybackMeasured(
                labels=self._lane().labels,
                session_id=self.session_id,
                measurement=measurement,
                at=time.time(),
            )
        )

    def _within_startup(self) -> bool:
        return self._startup_until is None or time.monotonic() < self._startup_until

    def on_segment(self, fetch: SegmentFetch) -> None:
        if fetch.downloaded_at is not None:  # the requests succeeded, whatever the bytes are
            self.on_recovered(fetch.rendition, "segment")
            self.on_recovered(fetch.rendition, "init segment")
        if fetch.error_kind is not None:
            self.on_error(
                fetch.rendition, fetch.error_kind, fetch.error_detail or "", fetch.error_source
            )
            return
        analysis = fetch.analysis
        assert analysis is not None and fetch.downloaded_at is not None
        assert self._ingest is not None
        placed = place(analysis, self._ingest.send_log, fetch.listed_at, self._clip.fps)
        if isinstance(placed, Placement):
            self._seen_renditions.add(fetch.rendition)
            self._newest_frame[fetch.rendition] = max(
                self._newest_frame.get(fetch.rendition, -1), placed.newest_frame
            )
            if fetch.frame_times:
                self._frames_played(fetch)
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
        self._first_playable(fetch)
        sent_at = placed.newest_sent_at if isinstance(placed, Placement) else None
        self._sink.handle(
            SegmentObserved(
                labels=self._lane(fetch.rendition).labels,
                session_id=self.session_id,
                rendition=fetch.rendition,
                sequence=fetch.segment.sequence,
                listed_at=fetch.listed_at,
                downloaded_at=fetch.downloaded_at,
                extinf_seconds=fetch.segment.duration,
                media_duration_seconds=analysis.media_duration,
                newest_frame_sent_at=sent_at,
                resolution=analysis.resolution,
                video_codec=analysis.video_codec,
                size_bytes=fetch.size_bytes,
            )
        )
        record = SegmentRecord(
            rendition=fetch.rendition,
            segment=fetch.segment,
            listed_at=fetch.listed_at,
            downloaded_at=fetch.downloaded_at,
            analysis=analysis,
            first_frame=placed.first_frame if isinstance(placed, Placement) else None,
            newest_frame=placed.newest_frame if isinstance(placed, Placement) else None,
            newest_frame_sent_at=sent_at,
        )
        if fetch.frame_times:  # frames one by one: no segment, playlist or PTS to check
            self._run_checks(lambda c: c.on_segment(record), only=FRAME_CHECKS)
        else:
            self._run_checks(lambda c: c.on_segment(record))

    def _frames_played(self, fetch: SegmentFetch) -> None:
        assert self._ingest is not None and fetch.analysis is not None
        latencies = frame_latencies(fetch.analysis, fetch.frame_times, self._ingest.send_log)
        if latencies:
            self._sink.handle(
                FramesPlayed(
                    labels=self._lane(fetch.rendition).labels,
                    session_id=self.session_id,
                    rendition=fetch.rendition,
                    latencies_seconds=latencies,
                    at=fetch.listed_at,
                )
            )

    def on_part(self, fetch: PartFetch) -> None:
        """An LL-HLS part: its latency, and the part-level checks."""
        if fetch.downloaded_at is not None:
            self.on_recovered(fetch.rendition, PART)
        if fetch.error_kind is not None:
            self.on_error(
                fetch.rendition, fetch.error_kind, fetch.error_detail or "", fetch.error_source
            )
        sent_at = None
        if fetch.analysis is not None and fetch.downloaded_at is not None:
            assert self._ingest is not None
            if self._parts is None:
                self._parts = PartPlacer(self._ingest.send_log, self._clip.fps)
            placed = self._parts.place(fetch.rendition, fetch.analysis, fetch.listed_at)
            if isinstance(placed, Placement):
                sent_at = placed.newest_sent_at
            elif placed is Unplaced.FOREIGN:
                return  # an earlier session's part
            self._sink.handle(
                PartObserved(
                    labels=self._lane(fetch.rendition).labels,
                    session_id=self.session_id,
                    rendition=fetch.rendition,
                    sequence=fetch.part.sequence,
                    index=fetch.part.index,
                    listed_at=fetch.listed_at,
                    downloaded_at=fetch.downloaded_at,
                    duration_seconds=fetch.part.duration,
                    newest_frame_sent_at=sent_at,
                    hinted=fetch.hinted,
                )
            )
        record = PartRecord(
            rendition=fetch.rendition,
            part=fetch.part,
            listed_at=fetch.listed_at,
            downloaded_at=fetch.downloaded_at if fetch.error_kind is None else None,
            hinted=fetch.hinted,
            newest_frame_sent_at=sent_at,
        )
        self._run_checks(lambda c: c.on_part(record))

    def _first_playable(self, fetch: SegmentFetch) -> None:
        lane = self._lane(fetch.rendition)
        if lane.first_unit_at is not None or self.context is None:
            return
        started = self.context.publish_started_at
        assert started is not None
        lane.first_unit_at = fetch.listed_at
        startup = fetch.listed_at - started
        if lane is self._primary:
            self._startup_latency = startup
        self._sink.handle(
            FirstSegment(
                labels=lane.labels,
                session_id=self.session_id,
                rendition=fetch.rendition,
                startup_latency_seconds=startup,
                at=fetch.listed_at,
                primary=lane is self._primary,
            )
        )
