"""The status page's sink: keeps what people see of each stream, from session events.

`StatusStore` consumes session events (sync, cheap, bounded memory) and answers read
queries as JSON-ready dicts; web/status.py serves them. Everything here comes from events,
which carry only masked URLs: no secret can be shown. Call `handle` from the event loop's
thread (as the session does).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from streamer.events import (
    CheckFailed,
    Event,
    FirstSegment,
    Outcome,
    PartObserved,
    PublishConnected,
    RenditionDiscovered,
    SegmentObserved,
    SessionEnded,
    SessionStarted,
    StreamLabels,
)
from streamer.sinks.status_protocols import ProtocolFigures

_log = logging.getLogger(__name__)

StreamState = Literal["idle", "publishing", "waiting", "playing", "grace", "failed"]
Json = dict[str, Any]

MAX_SESSIONS = 20
MAX_ERRORS = 50
MAX_RENDITIONS = 16  # per stream; a hostile master playlist may list many more
MAX_STREAMS = 1000
MAX_KINDS = 32  # distinct failing check kinds kept per session
MAX_TEXT = 200  # names, kinds, codecs, resolutions
MAX_DETAIL = 2000  # error details
WINDOW_SECONDS = 3600.0
BUCKET_SECONDS = 10.0
FUTURE_SLACK_SECONDS = 60.0  # latency samples stamped further ahead of the clock are dropped
_MAX_BUCKETS = int((WINDOW_SECONDS + FUTURE_SLACK_SECONDS) // BUCKET_SECONDS) + 2


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _opt_clip(text: str | None) -> str | None:
    return None if text is None else _clip(text)


def rounded(value: float | None, digits: int = 3) -> float | None:
    """A JSON-safe number (no NaN/inf), rounded."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


@dataclass(slots=True)
class _Bucket:
    index: int  # start time // BUCKET_SECONDS
    count: int = 0
    total: float = 0.0
    max: float = -math.inf

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.max = max(self.max, value)


@dataclass(slots=True)
class _Session:
    session_id: str
    started_at: float
    ended_at: float | None = None
    outcome: Outcome | None = None
    startup_latency_seconds: float | None = None
    failed_kinds: list[str] = field(default_factory=list)

    def add_kind(self, kind: str) -> None:
        kind = _clip(kind)
        if kind not in self.failed_kinds and len(self.failed_kinds) < MAX_KINDS:
            self.failed_kinds.append(kind)

    def to_json(self) -> Json:
        duration = None if self.ended_at is None else self.ended_at - self.started_at
        return {
            "session_id": self.session_id,
            "started_at": rounded(self.started_at),
            "ended_at": rounded(self.ended_at),
            "duration_seconds": rounded(duration),
            "outcome": self.outcome,
            "startup_latency_seconds": rounded(self.startup_latency_seconds),
            "failed_kinds": list(self.failed_kinds),
        }


@dataclass(slots=True)
class _Rendition:
    name: str
    resolution: str | None = None
    codecs: str | None = None
    video_codec: str | None = None
    bandwidth: int | None = None
    last_segment_at: float | None = None
    last_segment_latency_seconds: float | None = None
    segments: int = 0
    # LL-HLS: what a player at the live edge plays; a part-level stall shows here first.
    last_part_at: float | None = None
    last_part_latency_seconds: float | None = None
    parts: int = 0

    def to_json(self, now: float) -> Json:
        age = None if self.last_segment_at is None else now - self.last_segment_at
        part_age = None if self.last_part_at is None else now - self.last_part_at
        return {
            "name": self.name,
            "resolution": self.resolution,
            "codecs": self.codecs,
            "video_codec": self.video_codec,
            "bandwidth": self.bandwidth,
            "segments": self.segments,
            "last_segment_at": rounded(self.last_segment_at),
            "last_segment_age_seconds": rounded(age, 1),
            "last_segment_latency_seconds": rounded(self.last_segment_latency_seconds),
            "parts": self.parts,
            "last_part_age_seconds": rounded(part_age, 1),
            "last_part_latency_seconds": rounded(self.last_part_latency_seconds),
        }


@dataclass(frozen=True, slots=True)
class _Error:
    at: float
    kind: str
    rendition: str | None
    detail: str
    session_id: str

    def to_json(self) -> Json:
        return {
            "at": rounded(self.at),
            "kind": self.kind,
            "rendition": self.rendition,
            "detail": self.detail,
            "session_id": self.session_id,
        }


class _LatencySeries:
    """Segment latency per rendition in fixed buckets over a sliding window."""

    def __init__(self) -> None:
        self._by_rendition: dict[str, deque[_Bucket]] = {}

    def add(self, rendition: str, at: float, value: float, now: float) -> None:
        if not math.isfinite(value) or not math.isfinite(at):
            return
        if at < now - WINDOW_SECONDS or at > now + FUTURE_SLACK_SECONDS:
            return
        buckets = self._by_rendition.get(rendition)
        if buckets is None:
            self.prune(now)
            if len(self._by_rendition) >= MAX_RENDITIONS:
                # Make room: drop the rendition that was updated longest ago.
                stale = min(self._by_rendition, key=lambda r: self._by_rendition[r][-1].index)
                del self._by_rendition[stale]
            buckets = self._by_rendition[rendition] = deque(maxlen=_MAX_BUCKETS)
        index = int(at // BUCKET_SECONDS)
        if not buckets or buckets[-1].index < index:
            buckets.append(_Bucket(index))
            self._trim(buckets, now)
            buckets[-1].add(value)
            return
        for bucket in reversed(buckets):  # late sample: usually the last bucket
            if bucket.index == index:
                bucket.add(value)
                return
            if bucket.index < index:
                break
        # A late sample for a bucket that does not exist yet: insert it in order.
        self._trim(buckets, now)
        if len(buckets) == buckets.maxlen:
            return  # not reached by in-window samples; keeps memory bounded regardless
        new = _Bucket(index)
        new.add(value)
        buckets.insert(next(i for i, b in enumerate(buckets) if b.index > index), new)

    @staticmethod
    def _trim(buckets: deque[_Bucket], now: float) -> None:
        first = int((now - WINDOW_SECONDS) // BUCKET_SECONDS)
        while buckets and buckets[0].index < first:
            buckets.popleft()

    def prune(self, now: float) -> None:
        for rendition in list(self._by_rendition):
            buckets = self._by_rendition[rendition]
            self._trim(buckets, now)
            if not buckets:
                del self._by_rendition[rendition]

    def to_json(self, now: float) -> Json:
        """Aligned series for a chart: one shared time axis, None where a rendition has no data."""
        self.prune(now)
        indexes = sorted({b.index for buckets in self._by_rendition.values() for b in buckets})
        position = {index: i for i, index in enumerate(indexes)}
        series = []
        for rendition, buckets in self._by_rendition.items():
            count: list[int | None] = [None] * len(indexes)
            mean: list[float | None] = [None] * len(indexes)
            peak: list[float | None] = [None] * len(indexes)
            for b in buckets:
                i = position[b.index]
                count[i], mean[i], peak[i] = b.count, rounded(b.total / b.count), rounded(b.max)
            series.append({"rendition": rendition, "count": count, "mean": mean, "max": peak})
        return {
            "bucket_seconds": BUCKET_SECONDS,
            "window_seconds": WINDOW_SECONDS,
            "t": [index * BUCKET_SECONDS for index in indexes],
            "series": series,
        }


class _Stream:
    def __init__(self, labels: StreamLabels, now: float) -> None:
        self.labels = labels
        self.state: StreamState = "idle"
        self.state_since = now
        self.ingest: str | None = None  # masked by the session
        self.playback: str | None = None  # masked by the session
        self.duration_seconds: float | None = None
        self.current: _Session | None = None
        self.sessions: deque[_Session] = deque(maxlen=MAX_SESSIONS)
        self.renditions: dict[str, _Rendition] = {}
        self.protocols = ProtocolFigures()  # the current session's, by playback protocol
        self.latency = _LatencySeries()
        self.errors: deque[_Error] = deque(maxlen=MAX_ERRORS)

    def set_state(self, state: StreamState, at: float) -> None:
        if state != self.state:
            self.state, self.state_since = state, at

    def start(self, session_id: str, at: float) -> _Session:
        session = _Session(session_id, at)
        self.current = session
        self.sessions.append(session)
        self.renditions.clear()
        self.protocols = ProtocolFigures()
        self.set_state("publishing", at)
        return session

    def session(self, session_id: str, at: float) -> _Session:
        """The session an event belongs to; an unknown one (start missed) becomes current."""
        if self.current is not None and self.current.session_id == session_id:
            return self.current
        for session in self.sessions:
            if session.session_id == session_id:
                return session
        if self.current is not None and at < self.current.started_at:
            return _Session(session_id, at)  # a late event of a forgotten session: not kept
        return self.start(session_id, at)

    def rendition(self, name: str) -> _Rendition | None:
        found = self.renditions.get(name)
        if found is None and len(self.renditions) < MAX_RENDITIONS:
            found = self.renditions[name] = _Rendition(name)
        return found

    def last_ended(self) -> _Session | None:
        return next((s for s in reversed(self.sessions) if s.ended_at is not None), None)

    def summary(self, now: float) -> Json:
        current, last = self.current, self.last_ended()
        running = current is not None and current.ended_at is None
        elapsed = None
        if current is not None:
            elapsed = (current.ended_at if current.ended_at is not None else now) - (
                current.started_at
            )
        return {
            "name": self.labels.stream,
            "state": self.state,
            "state_since": rounded(self.state_since),
            "ingest_region": self.labels.ingest_region,
            "playback_region": self.labels.playback_region,
            "session_id": current.session_id if current else None,
            "session_started_at": rounded(current.started_at) if current else None,
            "session_ended_at": rounded(current.ended_at) if current else None,
            "running": running,
            "elapsed_seconds": rounded(elapsed, 1),
            "last_outcome": last.outcome if last else None,
            "last_ended_at": rounded(last.ended_at) if last else None,
            "last_startup_latency_seconds": rounded(last.startup_latency_seconds) if last else None,
            "renditions": [r.to_json(now) for r in self.renditions.values()],
            "protocols": self.protocols.to_json(),
            "error_count": len(self.errors),
        }

    def detail(self, now: float) -> Json:
        return {
            **self.summary(now),
            "now": rounded(now),
            "ingest": self.ingest,
            "playback": self.playback,
            "duration_seconds": rounded(self.duration_seconds),
            "sessions": self.sessions_json(),
            "latency": self.latency.to_json(now),
            "errors": [e.to_json() for e in reversed(self.errors)],
        }

    def sessions_json(self) -> list[Json]:
        return [s.to_json() for s in reversed(self.sessions)]


def _rendition_discovered(stream: _Stream, event: RenditionDiscovered) -> None:
    rendition = stream.rendition(_clip(event.rendition))
    if rendition is not None:
        rendition.resolution = _opt_clip(event.resolution) or rendition.resolution
        rendition.codecs = _opt_clip(event.codecs) or rendition.codecs
        rendition.bandwidth = event.bandwidth


def _check_failed(stream: _Stream, session: _Session, event: CheckFailed) -> None:
    session.add_kind(event.kind)
    stream.errors.append(
        _Error(
            at=event.at,
            kind=_clip(event.kind),
            rendition=_opt_clip(event.rendition),
            detail=_clip(event.detail, MAX_DETAIL),
            session_id=event.session_id,
        )
    )


def _first_segment(
    stream: _Stream, session: _Session, event: FirstSegment, is_current: bool
) -> None:
    # The session's own protocol's startup (another one beside it shows under protocols).
    if event.primary and session.startup_latency_seconds is None:
        session.startup_latency_seconds = event.startup_latency_seconds
    if is_current and stream.state in ("publishing", "waiting"):
        stream.set_state("playing", event.at)


def _session_ended(
    stream: _Stream, session: _Session, event: SessionEnded, is_current: bool
) -> None:
    session.ended_at, session.outcome = event.at, event.outcome
    if event.startup_latency_seconds is not None:
        session.startup_latency_seconds = event.startup_latency_seconds
    for kind in event.failed_kinds:
        session.add_kind(kind)
    if is_current:
        stream.set_state("failed" if event.outcome == "failure" else "grace", event.at)


class StatusStore:
    """Event sink keeping, per stream, what the status page shows. Memory is bounded."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._streams: dict[str, _Stream] = {}
        self._listeners: list[Callable[[str], None]] = []

    # -- writing -----------------------------------------------------------------------

    def register_stream(self, labels: StreamLabels) -> None:
        """Show a configured stream (state "idle") before its first session."""
        if self._stream(labels) is not None:
            self._notify(labels.stream)

    def handle(self, event: Event) -> None:
        stream = self._stream(event.labels)
        if stream is None:
            return
        self._apply(stream, event)
        self._notify(event.labels.stream)

    def _stream(self, labels: StreamLabels) -> _Stream | None:
        stream = self._streams.get(labels.stream)
        if stream is None:
            if len(self._streams) >= MAX_STREAMS:
                _log.warning("status page: too many streams, not showing %r", labels.stream)
                return None
            stream = self._streams[labels.stream] = _Stream(labels, self._clock())
        stream.labels = labels  # regions as of the latest event
        return stream

    def _apply(self, stream: _Stream, event: Event) -> None:
        if isinstance(event, SessionStarted):
            stream.start(event.session_id, event.at)
            stream.ingest, stream.playback = event.ingest, event.playback
            stream.duration_seconds = event.duration_seconds
            return
        at = event.listed_at if isinstance(event, SegmentObserved | PartObserved) else event.at
        session = stream.session(event.session_id, at)
        is_current = session is stream.current
        if is_current:
            stream.protocols.handle(event)
        if isinstance(event, PublishConnected):
            if is_current and stream.state == "publishing":
                stream.set_state("waiting", event.at)
        elif isinstance(event, RenditionDiscovered):
            if is_current:
                _rendition_discovered(stream, event)
        elif isinstance(event, FirstSegment):
            _first_segment(stream, session, event, is_current)
        elif isinstance(event, SegmentObserved):
            self._segment(stream, event, is_current)
        elif isinstance(event, PartObserved):
            _part(stream, event, is_current)
        elif isinstance(event, CheckFailed):
            _check_failed(stream, session, event)
        elif isinstance(event, SessionEnded):
            _session_ended(stream, session, event, is_current)

    def _segment(self, stream: _Stream, event: SegmentObserved, is_current: bool) -> None:
        name = _clip(event.rendition)
        latency = event.segment_latency_seconds
        if latency is not None:
            stream.latency.add(name, event.downloaded_at, latency, self._clock())
        rendition = stream.rendition(name) if is_current else None
        if rendition is None:
            return
        rendition.resolution = _opt_clip(event.resolution) or rendition.resolution
        rendition.video_codec = _opt_clip(event.video_codec) or rendition.video_codec
        rendition.segments += 1
        if rendition.last_segment_at is None or event.downloaded_at >= rendition.last_segment_at:
            rendition.last_segment_at = event.downloaded_at
            rendition.last_segment_latency_seconds = latency

    # -- change notices ------------------------------------------------------------------

    def subscribe(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call `listener(stream_name)` after every change; returns the unsubscribe function."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    @property
    def listener_count(self) -> int:
        return len(self._listeners)

    def _notify(self, name: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(name)
            except Exception:
                _log.exception("status page listener failed")

    # -- reading (JSON-ready) ------------------------------------------------------------

    def now(self) -> float:
        return self._clock()

    def streams(self) -> list[Json]:
        now = self._clock()
        return [s.summary(now) for s in self._streams.values()]

    def stream(self, name: str) -> Json | None:
        stream = self._streams.get(name)
        return None if stream is None else stream.detail(self._clock())

    def sessions(self, name: str) -> list[Json] | None:
        stream = self._streams.get(name)
        return None if stream is None else stream.sessions_json()


def _part(stream: _Stream, event: PartObserved, is_current: bool) -> None:
    rendition = stream.rendition(_clip(event.rendition)) if is_current else None
    if rendition is None:
        return
    rendition.parts += 1
    if rendition.last_part_at is None or event.downloaded_at >= rendition.last_part_at:
        rendition.last_part_at = event.downloaded_at
        rendition.last_part_latency_seconds = event.part_latency_seconds
