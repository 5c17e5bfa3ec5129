"""Prometheus metrics from session events (the original tool's names, `streamer_` prefixed)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streamer import __version__
from streamer.events import (
    CheckFailed,
    CheckObserved,
    ConnectTime,
    Event,
    FirstSegment,
    FramesPlayed,
    FreezeEnded,
    IngestLinkStats,
    ObservationKind,
    PartObserved,
    PlaybackAnomaly,
    PlaybackMeasured,
    RequestFailed,
    SegmentObserved,
    SessionEnded,
    SessionStarted,
    StreamLabels,
    TransportStats,
)

STREAM_LABELS = (
    "stream",
    "ingest_region",
    "playback_region",
    "ingest_protocol",
    "playback_protocol",
)
STARTUP_BUCKETS = (0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 60)
# Frame by frame (WebRTC): tens to hundreds of milliseconds, finer than a segment's.
FRAME_LATENCY_BUCKETS = (
    0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10,
)  # fmt: skip
CONNECT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10)
DURATION_BUCKETS = (0.5, 1, 1.5, 1.9, 2.1, 2.5, 3, 4, 5, 6, 8, 10, 12)
RTT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 0.75, 1, 2)
PART_LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1, 1.25, 1.5, 2, 3, 4, 6, 10, 30)
PART_DURATION_BUCKETS = (0.1, 0.2, 0.25, 0.3, 0.34, 0.4, 0.5, 0.75, 1, 1.5, 2)
# Rendition names come from the platform's master playlists. A ladder that changes from
# session to session (or a hostile one) would add series without end over a process's
# life: past this many names per stream, new ones share the label OTHER_RENDITION.
MAX_RENDITION_LABELS = 32
OTHER_RENDITION = "_other"


def stream_label_values(labels: StreamLabels) -> tuple[str, str, str, str, str]:
    return (
        labels.stream,
        labels.ingest_region,
        labels.playback_region,
        labels.ingest_protocol,
        labels.playback_protocol,
    )


class MetricsSink:
    """Owns the exporter's metrics; one instance per process, fed by every session."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._renditions: dict[tuple[str, ...], set[str]] = {}  # label names used, per stream
        r = self.registry
        self.active = Gauge(
            "streamer_active_tests",
            "1 while a session of the stream runs",
            STREAM_LABELS,
            registry=r,
        )
        self.tests = Counter(
            "streamer_tests",
            "Finished test sessions by outcome",
            (*STREAM_LABELS, "outcome"),
            registry=r,
        )
        self.startup = Histogram(
            "streamer_startup_latency_seconds",
            "First packet accepted -> first segment listed and decodable",
            STREAM_LABELS,
            buckets=STARTUP_BUCKETS,
            registry=r,
        )
        self.segment_latency = Histogram(
            "streamer_segment_latency_seconds",
            "Newest frame sent -> segment downloaded",
            (*STREAM_LABELS, "rendition"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.listed_latency = Histogram(
            "streamer_listed_latency_seconds",
            "Newest frame sent -> segment listed",
            (*STREAM_LABELS, "rendition"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.segment_duration = Histogram(
            "streamer_segment_duration_seconds",
            "Segment duration (EXTINF)",
            (*STREAM_LABELS, "rendition"),
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.part_latency = Histogram(
            "streamer_part_latency_seconds",
            "LL-HLS: newest frame of a part sent -> that part downloaded",
            (*STREAM_LABELS, "rendition"),
            buckets=PART_LATENCY_BUCKETS,
            registry=r,
        )
        self.part_listed_latency = Histogram(
            "streamer_part_listed_latency_seconds",
            "LL-HLS: newest frame of a part sent -> part listed",
            (*STREAM_LABELS, "rendition"),
            buckets=PART_LATENCY_BUCKETS,
            registry=r,
        )
        self.part_duration = Histogram(
            "streamer_part_duration_seconds",
            "LL-HLS part duration (EXT-X-PART DURATION)",
            (*STREAM_LABELS, "rendition"),
            buckets=PART_DURATION_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "streamer_errors",
            "Failures found, by kind and rendition",
            (*STREAM_LABELS, "kind", "rendition"),
            registry=r,
        )
        self.failed_requests = Counter(
            "streamer_failed_requests",
            "Failed playback requests (after retries), every one, by kind and rendition",
            (*STREAM_LABELS, "kind", "rendition"),
            registry=r,
        )
        self.playback_anomalies = Counter(
            "streamer_playback_anomalies",
            "Playback oddities no viewer notices (e.g. blocking reloads answered without "
            "holding, renditions over the cap)",
            (*STREAM_LABELS, "anomaly", "rendition"),
            registry=r,
        )
        # What checks count without failing a session, by observation kind.
        self.observed: dict[ObservationKind, Counter] = {
            "repeated_frames": Counter(
                "streamer_repeated_frames",
                "Frames showing the same picture again (a still picture or a step back), "
                "whether or not they made a freeze",
                (*STREAM_LABELS, "rendition"),
                registry=r,
            ),
            "dropped_frames": Counter(
                "streamer_dropped_frames",
                "Frames missing from a rendition, at its frame rate, whether or not a viewer "
                "noticed the hole",
                (*STREAM_LABELS, "rendition"),
                registry=r,
            ),
        }
        self.frame_latency = Histogram(
            "streamer_frame_latency_seconds",
            "Glass-to-glass latency of every frame received one by one (WebRTC): frame sent "
            "-> decoded; includes the receiver's jitter buffer (about one frame interval)",
            (*STREAM_LABELS, "rendition"),
            buckets=FRAME_LATENCY_BUCKETS,
            registry=r,
        )
        self.webrtc_connect = Histogram(
            "streamer_webrtc_connect_seconds",
            "WebRTC ICE and DTLS: WHEP answer -> connected",
            STREAM_LABELS,
            buckets=CONNECT_BUCKETS,
            registry=r,
        )
        self.freezes = Counter(
            "streamer_freezes",
            "Freezes: no new frame for at least freeze_ms, then frames again (WebRTC)",
            (*STREAM_LABELS, "rendition"),
            registry=r,
        )
        self.freeze_seconds = Counter(
            "streamer_freeze_seconds",
            "Time frozen, summed over the freezes counted in streamer_freezes_total",
            (*STREAM_LABELS, "rendition"),
            registry=r,
        )
        self.rtp_received = Counter(
            "streamer_rtp_packets_received",
            "RTP packets received by the WebRTC viewer (RTCStats inbound-rtp)",
            (*STREAM_LABELS, "media"),
            registry=r,
        )
        self.rtp_lost = Counter(
            "streamer_rtp_packets_lost",
            "RTP packets lost on the way to the WebRTC viewer (RTCStats inbound-rtp)",
            (*STREAM_LABELS, "media"),
            registry=r,
        )
        self.rtp_jitter = Gauge(
            "streamer_rtp_jitter_seconds",
            "Interarrival jitter of the WebRTC viewer's RTP stream (RFC 3550), latest",
            (*STREAM_LABELS, "media"),
            registry=r,
        )
        self.last_success = Gauge(
            "streamer_last_session_success",
            "1 when the last finished session succeeded",
            STREAM_LABELS,
            registry=r,
        )
        self.last_success_time = Gauge(
            "streamer_last_success_timestamp_seconds",
            "When the last successful session ended",
            STREAM_LABELS,
            registry=r,
        )
        # The SRT ingest leg, from the publisher's link statistics (sampled every 2 s).
        self.srt_rtt = Histogram(
            "streamer_srt_rtt_seconds",
            "SRT round-trip time to the ingest, as the publisher measures it",
            STREAM_LABELS,
            buckets=RTT_BUCKETS,
            registry=r,
        )
        self.srt_retransmitted = Counter(
            "streamer_srt_packets_retransmitted",
            "SRT packets the publisher sent again after the ingest reported them lost",
            STREAM_LABELS,
            registry=r,
        )
        self.srt_dropped = Counter(
            "streamer_srt_packets_dropped",
            "SRT packets the publisher dropped: too late to send within the latency window",
            STREAM_LABELS,
            registry=r,
        )
        self.srt_send_buffer = Gauge(
            "streamer_srt_send_buffer_bytes",
            "Bytes the SRT publisher sent that the ingest has not acknowledged yet",
            STREAM_LABELS,
            registry=r,
        )
        self.build = Gauge("streamer_build_info", "streamer version", ("version",), registry=r)
        self.build.labels(__version__).set(1)
        self.api_latency = Histogram(
            "streamer_api_latency_seconds",
            "Livepeer Studio API call latency",
            ("operation",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def register_stream(self, labels: StreamLabels) -> None:
        """Creates a stream's series at 0, so that dashboards and alerts see it from start."""
        values = stream_label_values(labels)
        self.active.labels(*values).set(0)
        for outcome in ("success", "failure", "aborted"):
            self.tests.labels(*values, outcome)

    def _rendition(self, values: tuple[str, ...], name: str | None) -> str:
        """The rendition label: the name, or OTHER_RENDITION once the stream has used
        MAX_RENDITION_LABELS others; "" for none."""
        if not name:
            return ""
        used = self._renditions.setdefault(values, set())
        if name in used:
            return name
        if len(used) >= MAX_RENDITION_LABELS:
            return OTHER_RENDITION
        used.add(name)
        return name

    def _part(self, values: tuple[str, ...], event: PartObserved) -> None:
        rendition = (*values, self._rendition(values, event.rendition))
        self.part_duration.labels(*rendition).observe(event.duration_seconds)
        if event.part_latency_seconds is not None:
            self.part_latency.labels(*rendition).observe(event.part_latency_seconds)
        if event.listed_latency_seconds is not None:
            self.part_listed_latency.labels(*rendition).observe(event.listed_latency_seconds)

    def handle(self, event: Event) -> None:
        values = stream_label_values(event.labels)
        if isinstance(event, SessionStarted):
            self.active.labels(*values).set(1)
        elif isinstance(event, PartObserved):
            self._part(values, event)
        elif isinstance(event, CheckFailed):
            rendition = self._rendition(values, event.rendition)
            self.errors.labels(*values, event.kind, rendition).inc()
        elif isinstance(event, RequestFailed):
            rendition = self._rendition(values, event.rendition)
            self.failed_requests.labels(*values, event.kind, rendition).inc()
        elif isinstance(event, PlaybackAnomaly):
            rendition = self._rendition(values, event.rendition)
            self.playback_anomalies.labels(*values, event.anomaly, rendition).inc()
        elif isinstance(event, SegmentObserved | FramesPlayed | FirstSegment | PlaybackMeasured):
            self._playback(values, event)
        elif isinstance(event, CheckObserved):
            rendition = self._rendition(values, event.rendition)
            self.observed[event.kind].labels(*values, rendition).inc(event.count)
        elif isinstance(event, IngestLinkStats):
            self._link_stats(values, event)
        elif isinstance(event, SessionEnded):
            self._session_ended(values, event)

    def _link_stats(self, values: tuple[str, ...], event: IngestLinkStats) -> None:
        self.srt_rtt.labels(*values).observe(event.rtt_seconds)
        self.srt_retransmitted.labels(*values).inc(event.packets_retransmitted)
        self.srt_dropped.labels(*values).inc(event.packets_dropped)
        self.srt_send_buffer.labels(*values).set(event.send_buffer_bytes)

    def _session_ended(self, values: tuple[str, ...], event: SessionEnded) -> None:
        self.active.labels(*values).set(0)
        self.tests.labels(*values, event.outcome).inc()
        if event.startup_latency_seconds is not None:
            self.startup.labels(*values).observe(event.startup_latency_seconds)
        if event.outcome != "aborted":
            self.last_success.labels(*values).set(1 if event.outcome == "success" else 0)
        if event.outcome == "success":
            self.last_success_time.labels(*values).set(event.at)

    def _playback(
        self,
        values: tuple[str, ...],
        event: SegmentObserved | FramesPlayed | FirstSegment | PlaybackMeasured,
    ) -> None:
        if isinstance(event, SegmentObserved):
            rendition = (*values, self._rendition(values, event.rendition))
            self.segment_duration.labels(*rendition).observe(event.extinf_seconds)
            if event.segment_latency_seconds is not None:
                self.segment_latency.labels(*rendition).observe(event.segment_latency_seconds)
            if event.listed_latency_seconds is not None:
                self.listed_latency.labels(*rendition).observe(event.listed_latency_seconds)
        elif isinstance(event, FramesPlayed):
            histogram = self.frame_latency.labels(*values, self._rendition(values, event.rendition))
            for latency in event.latencies_seconds:
                histogram.observe(latency)
        elif isinstance(event, FirstSegment):
            if not event.primary:  # the session's own protocol: counted at SessionEnded
                self.startup.labels(*values).observe(event.startup_latency_seconds)
        else:
            self._measured(values, event.measurement)

    def _measured(self, values: tuple[str, ...], measurement: object) -> None:
        if isinstance(measurement, ConnectTime):
            self.webrtc_connect.labels(*values).observe(measurement.seconds)
        elif isinstance(measurement, FreezeEnded):
            rendition = (*values, self._rendition(values, measurement.rendition))
            self.freezes.labels(*rendition).inc()
            self.freeze_seconds.labels(*rendition).inc(measurement.seconds)
        elif isinstance(measurement, TransportStats):
            media = (*values, measurement.kind)
            self.rtp_received.labels(*media).inc(measurement.packets_received)
            self.rtp_lost.labels(*media).inc(measurement.packets_lost)
            self.rtp_jitter.labels(*media).set(measurement.jitter_seconds)
