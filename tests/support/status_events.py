"""Synthetic session events, for feeding the status store (and any other sink) in tests."""

from __future__ import annotations

import dataclasses

from streamer.events import (
    CheckFailed,
    ConnectTime,
    EventSink,
    FirstSegment,
    FramesPlayed,
    FreezeEnded,
    Outcome,
    PlaybackMeasured,
    PublishConnected,
    RenditionDiscovered,
    SegmentObserved,
    SessionEnded,
    SessionStarted,
    StreamLabels,
)

ALPHA = StreamLabels("alpha", "eu-west", "us-east")
BETA = StreamLabels("beta", "ap-south", "ap-south")


class Clock:
    """A settable clock for `StatusStore(clock=...)`."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def started(labels: StreamLabels, sid: str, at: float) -> SessionStarted:
    return SessionStarted(
        labels=labels,
        session_id=sid,
        at=at,
        ingest="rtmp://ingest.example/live/****",
        playback="https://play.example/hls/abc/index.m3u8?jwt=****",
        duration_seconds=240.0,
    )


def connected(labels: StreamLabels, sid: str, at: float) -> PublishConnected:
    return PublishConnected(labels=labels, session_id=sid, at=at)


def discovered(
    labels: StreamLabels,
    sid: str,
    at: float,
    rendition: str = "360p",
    resolution: str | None = "640x360",
    codecs: str | None = "avc1.64001e,mp4a.40.2",
) -> RenditionDiscovered:
    return RenditionDiscovered(
        labels=labels,
        session_id=sid,
        rendition=rendition,
        resolution=resolution,
        codecs=codecs,
        bandwidth=900_000,
        at=at,
    )


def first_segment(
    labels: StreamLabels, sid: str, at: float, latency: float = 2.2, rendition: str = "360p"
) -> FirstSegment:
    return FirstSegment(
        labels=labels, session_id=sid, rendition=rendition, startup_latency_seconds=latency, at=at
    )


def segment(
    labels: StreamLabels,
    sid: str,
    downloaded_at: float,
    latency: float | None,
    rendition: str = "360p",
    sequence: int = 0,
    resolution: str | None = "640x360",
) -> SegmentObserved:
    sent = None if latency is None else downloaded_at - latency
    return SegmentObserved(
        labels=labels,
        session_id=sid,
        rendition=rendition,
        sequence=sequence,
        listed_at=downloaded_at - 0.1,
        downloaded_at=downloaded_at,
        extinf_seconds=2.0,
        media_duration_seconds=2.0,
        newest_frame_sent_at=sent,
        resolution=resolution,
        video_codec="h264",
        size_bytes=250_000,
    )


def check_failed(
    labels: StreamLabels,
    sid: str,
    at: float,
    kind: str = "segment_latency",
    detail: str = "segment 12 took 9.1 s",
    rendition: str | None = "360p",
) -> CheckFailed:
    return CheckFailed(
        labels=labels, session_id=sid, kind=kind, rendition=rendition, detail=detail, at=at
    )


def ended(
    labels: StreamLabels,
    sid: str,
    at: float,
    outcome: Outcome = "success",
    startup: float | None = 2.2,
    failed_kinds: tuple[str, ...] = (),
) -> SessionEnded:
    return SessionEnded(
        labels=labels,
        session_id=sid,
        outcome=outcome,
        at=at,
        startup_latency_seconds=startup,
        failed_kinds=failed_kinds,
    )


def play_session(
    sink: EventSink,
    labels: StreamLabels,
    sid: str,
    start: float,
    *,
    seconds: float = 60.0,
    renditions: tuple[tuple[str, str], ...] = (("360p", "640x360"), ("144p", "256x144")),
    base_latency: float = 3.0,
    end: Outcome | None = "success",
    clock: Clock | None = None,
) -> float:
    """Feed a whole session (segments every 2 s per rendition); returns its last event time.

    With `clock`, it is kept at each segment's time, as if the session ran for real.
    """
    sink.handle(started(labels, sid, start))
    sink.handle(connected(labels, sid, start + 0.2))
    for name, size in renditions:
        sink.handle(discovered(labels, sid, start + 1.0, name, size))
    sink.handle(first_segment(labels, sid, start + 2.4, 2.2, renditions[0][0]))
    t = start + 2.4
    sequence = 0
    while t < start + seconds:
        if clock is not None:
            clock.now = t
        for i, (name, size) in enumerate(renditions):
            latency = base_latency + 0.4 * i + 0.3 * (sequence % 5)
            sink.handle(segment(labels, sid, t + 0.05 * i, latency, name, sequence, size))
        sequence += 1
        t += 2.0
    if end is not None:
        sink.handle(ended(labels, sid, t, end, 2.2))
    return t


def play_webrtc_beside(
    sink: EventSink, labels: StreamLabels, sid: str, start: float, seconds: float
) -> None:
    """WebRTC played beside the session's own protocol: connected after 40 ms, first frame
    after 0.6 s, frames every second at 60 ms + 10 ms per frame of the second (25 a second),
    and one 0.8 s freeze."""
    webrtc = dataclasses.replace(labels, playback_protocol="webrtc")

    def measured(measurement: ConnectTime | FreezeEnded, at: float) -> PlaybackMeasured:
        return PlaybackMeasured(labels=webrtc, session_id=sid, measurement=measurement, at=at)

    sink.handle(measured(ConnectTime(0.04), start + 0.3))
    sink.handle(
        FirstSegment(
            labels=webrtc,
            session_id=sid,
            rendition="webrtc",
            startup_latency_seconds=0.6,
            at=start + 0.6,
            primary=False,
        )
    )
    for second in range(1, int(seconds)):
        latencies = tuple(0.06 + 0.01 * (i % 3) for i in range(25))
        sink.handle(
            FramesPlayed(
                labels=webrtc,
                session_id=sid,
                rendition="webrtc",
                latencies_seconds=latencies,
                at=start + second,
            )
        )
    sink.handle(measured(FreezeEnded("webrtc", 0.8), start + seconds / 2))
