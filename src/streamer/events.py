"""The typed, immutable events a session emits. Sinks consume them; the core imports no sink."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal, Protocol

Outcome = Literal["success", "failure", "aborted"]
# What checks count without failing a session (each is a metric: streamer_<kind>_total).
ObservationKind = Literal["repeated_frames", "dropped_frames"]


@dataclass(frozen=True)
class StreamLabels:
    """Who a session belongs to: the stream's name and regions (all safe to show)."""

    stream: str
    ingest_region: str
    playback_region: str
    ingest_protocol: str = "rtmp"  # bounded: one of the registered protocols
    playback_protocol: str = "hls"


@dataclass(frozen=True, kw_only=True)
class SessionStarted:
    labels: StreamLabels
    session_id: str
    at: float
    ingest: str  # masked
    playback: str  # masked
    duration_seconds: float


@dataclass(frozen=True, kw_only=True)
class PublishConnected:
    labels: StreamLabels
    session_id: str
    at: float  # first packet accepted


@dataclass(frozen=True, kw_only=True)
class RenditionDiscovered:
    labels: StreamLabels
    session_id: str
    rendition: str
    resolution: str | None
    codecs: str | None
    bandwidth: int | None
    at: float


@dataclass(frozen=True, kw_only=True)
class FirstSegment:
    labels: StreamLabels
    session_id: str
    rendition: str
    startup_latency_seconds: float
    at: float
    # False for a protocol played beside the session's own (its startup is counted here;
    # the session's own is counted from SessionEnded).
    primary: bool = True


@dataclass(frozen=True, kw_only=True)
class SegmentObserved:
    labels: StreamLabels
    session_id: str
    rendition: str
    sequence: int
    listed_at: float
    downloaded_at: float
    extinf_seconds: float
    media_duration_seconds: float | None
    newest_frame_sent_at: float | None
    resolution: str | None
    video_codec: str | None
    size_bytes: int

    @property
    def listed_latency_seconds(self) -> float | None:
        if self.newest_frame_sent_at is None:
            return None
        return self.listed_at - self.newest_frame_sent_at

    @property
    def segment_latency_seconds(self) -> float | None:
        if self.newest_frame_sent_at is None:
            return None
        return self.downloaded_at - self.newest_frame_sent_at


@dataclass(frozen=True, kw_only=True)
class PartObserved:
    """An LL-HLS part downloaded and placed: what a viewer at the live edge plays."""

    labels: StreamLabels
    session_id: str
    rendition: str
    sequence: int  # its segment's media sequence number
    index: int  # within that segment
    listed_at: float
    downloaded_at: float
    duration_seconds: float  # EXT-X-PART DURATION
    newest_frame_sent_at: float | None
    hinted: bool  # requested from the preload hint, before it was listed

    @property
    def listed_latency_seconds(self) -> float | None:
        if self.newest_frame_sent_at is None:
            return None
        return self.listed_at - self.newest_frame_sent_at

    @property
    def part_latency_seconds(self) -> float | None:
        if self.newest_frame_sent_at is None:
            return None
        return self.downloaded_at - self.newest_frame_sent_at


@dataclass(frozen=True, kw_only=True)
class CheckFailed:
    labels: StreamLabels
    session_id: str
    kind: str
    rendition: str | None
    detail: str
    at: float


@dataclass(frozen=True, kw_only=True)
class RequestFailed:
    """One failed playback request (after its retries). Counted, every one; reported as a
    failure only when it starts a run of them (see playback/storms.py)."""

    labels: StreamLabels
    session_id: str
    rendition: str | None
    kind: str  # http_error, timeout, playlist_error
    source: str  # what was requested: master playlist, media playlist, segment, init segment
    at: float


@dataclass(frozen=True, kw_only=True)
class PlaybackAnomaly:
    """Something odd about the platform's playback that no viewer notices: counted, never a
    failure. `anomaly` is one of a fixed set (e.g. unheld_blocking_reload,
    renditions_over_cap)."""

    labels: StreamLabels
    session_id: str
    rendition: str | None
    anomaly: str
    at: float


@dataclass(frozen=True, kw_only=True)
class CheckObserved:
    """Counted, not failing: `count` of `kind` (e.g. 1 repeated frame) that a check saw in a
    rendition, below what a viewer notices. Never fails the session."""

    labels: StreamLabels
    session_id: str
    kind: ObservationKind
    rendition: str | None
    count: int
    detail: str
    at: float


@dataclass(frozen=True, kw_only=True)
class FramesPlayed:
    """Frames a viewer got one by one (WebRTC), each with its glass-to-glass latency: when
    it was decoded - when it was sent."""

    labels: StreamLabels
    session_id: str
    rendition: str
    latencies_seconds: tuple[float, ...]
    at: float


@dataclass(frozen=True)
class ConnectTime:
    """ICE and DTLS done: from the answer to a connected transport."""

    seconds: float


@dataclass(frozen=True)
class FreezeEnded:
    """No new frame for at least the freeze threshold, then frames again (or the end)."""

    rendition: str
    seconds: float


@dataclass(frozen=True)
class TransportStats:
    """Receiver statistics (RTCStats of the inbound RTP streams) since the previous sample:
    counts are increments. aiortc keeps no NACK, PLI or round-trip counts for a receiver."""

    kind: Literal["video", "audio"]
    packets_received: int
    packets_lost: int
    jitter_seconds: float  # interarrival jitter (RFC 3550), the latest


Measurement = ConnectTime | FreezeEnded | TransportStats


@dataclass(frozen=True, kw_only=True)
class PlaybackMeasured:
    """A measurement of the playback's transport (WebRTC today), labelled by protocol."""

    labels: StreamLabels
    session_id: str
    measurement: Measurement
    at: float


@dataclass(frozen=True, kw_only=True)
class IngestLinkStats:
    """The ingest link as the publisher sees it (SRT), every few seconds while publishing:
    round-trip time, packets retransmitted and dropped since the previous one (dropped:
    too late to send, past the latency window), bytes sent but not yet acknowledged."""

    labels: StreamLabels
    session_id: str
    at: float
    rtt_seconds: float
    packets_retransmitted: int
    packets_dropped: int
    send_buffer_bytes: int


@dataclass(frozen=True, kw_only=True)
class SessionEnded:
    labels: StreamLabels
    session_id: str
    outcome: Outcome
    at: float
    startup_latency_seconds: float | None
    failed_kinds: tuple[str, ...] = field(default=())


Event = (
    SessionStarted
    | PublishConnected
    | RenditionDiscovered
    | FirstSegment
    | SegmentObserved
    | PartObserved
    | CheckFailed
    | RequestFailed
    | PlaybackAnomaly
    | CheckObserved
    | FramesPlayed
    | PlaybackMeasured
    | IngestLinkStats
    | SessionEnded
)


_log = logging.getLogger(__name__)


class EventSink(Protocol):
    def handle(self, event: Event) -> None: ...


class FanOut:
    """Delivers every event to each sink; a failing sink never stops the others."""

    def __init__(self, sinks: list[EventSink] | None = None) -> None:
        self.sinks: list[EventSink] = list(sinks or [])

    def add(self, sink: EventSink) -> None:
        self.sinks.append(sink)

    def handle(self, event: Event) -> None:
        for sink in self.sinks:
            try:
                sink.handle(event)
            except Exception:
                _log.exception("event sink %r failed", sink)
