"""The session report: per-rendition latency and duration statistics, and the errors."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamer.events import (
    CheckFailed,
    ConnectTime,
    Event,
    FirstSegment,
    FramesPlayed,
    FreezeEnded,
    PartObserved,
    PlaybackMeasured,
    RenditionDiscovered,
    SegmentObserved,
    SessionEnded,
    SessionStarted,
    TransportStats,
)

MAX_ERRORS_LISTED = 200
MAX_FRAME_LATENCIES = 200_000  # an hour at 30 fps and more; beyond, the first are kept


@dataclass
class _WebRtc:
    """What a WebRTC (WHEP) playback measured beside the per-unit figures."""

    frame_latency: list[float] = field(default_factory=list)
    startup: float | None = None
    connect: float | None = None
    freezes: list[float] = field(default_factory=list)
    packets_received: int = 0
    packets_lost: int = 0

    def add(self, event: FramesPlayed | FirstSegment | PlaybackMeasured) -> None:
        if isinstance(event, FramesPlayed):
            room = MAX_FRAME_LATENCIES - len(self.frame_latency)
            self.frame_latency.extend(event.latencies_seconds[: max(0, room)])
        elif isinstance(event, FirstSegment):
            self.startup = event.startup_latency_seconds
        else:
            measurement = event.measurement
            if isinstance(measurement, ConnectTime):
                self.connect = measurement.seconds
            elif isinstance(measurement, FreezeEnded):
                self.freezes.append(measurement.seconds)
            elif isinstance(measurement, TransportStats):
                self.packets_received += measurement.packets_received
                self.packets_lost += measurement.packets_lost

    def document(self) -> dict[str, Any]:
        return {
            "startup_latency_seconds": _rounded(self.startup),
            "connect_seconds": _rounded(self.connect),
            "frames": len(self.frame_latency),
            "frame_latency_seconds": _quantiles(self.frame_latency),
            "freezes": len(self.freezes),
            "freeze_seconds": round(sum(self.freezes), 4),
            "rtp_packets_received": self.packets_received,
            "rtp_packets_lost": self.packets_lost,
        }


def _rounded(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


@dataclass
class _Rendition:
    resolution: str | None = None
    codecs: str | None = None
    segment_latency: list[float] = field(default_factory=list)
    listed_latency: list[float] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    segments: int = 0
    parts: int = 0  # LL-HLS parts downloaded
    part_latency: list[float] = field(default_factory=list)
    part_listed_latency: list[float] = field(default_factory=list)


def _quantiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    array = np.asarray(values)
    return {
        "p50": round(float(np.percentile(array, 50)), 4),
        "p95": round(float(np.percentile(array, 95)), 4),
        "max": round(float(array.max()), 4),
    }


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    array = np.asarray(values)
    return {
        "min": round(float(array.min()), 4),
        "mean": round(float(array.mean()), 4),
        "max": round(float(array.max()), 4),
    }


def _parts(rendition: _Rendition) -> dict[str, Any]:
    """LL-HLS figures, only for a rendition that had parts."""
    if not rendition.parts:
        return {}
    return {
        "parts": rendition.parts,
        "part_latency_seconds": _quantiles(rendition.part_latency),
        "part_listed_latency_seconds": _quantiles(rendition.part_listed_latency),
    }


class SessionReport:
    """Collects one session's events (an event sink) into the probe's report document."""

    def __init__(self) -> None:
        self.stream: str | None = None
        self.session_id: str | None = None
        self.ingest: str | None = None
        self.playback: str | None = None
        self.outcome: str | None = None
        self.startup_latency: float | None = None
        self.renditions: dict[str, _Rendition] = defaultdict(_Rendition)
        self.errors: list[dict[str, Any]] = []
        self._error_index: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.webrtc: _WebRtc | None = None

    def handle(self, event: Event) -> None:
        if isinstance(event, SessionStarted):
            self.stream, self.session_id = event.labels.stream, event.session_id
            self.ingest, self.playback = event.ingest, event.playback
        elif isinstance(event, RenditionDiscovered):
            rendition = self.renditions[event.rendition]
            rendition.resolution = rendition.resolution or event.resolution
            rendition.codecs = event.codecs
        elif isinstance(event, SegmentObserved | PartObserved):
            self._observed(event)
        elif isinstance(event, FramesPlayed | FirstSegment | PlaybackMeasured):
            if event.labels.playback_protocol == "webrtc":
                self.webrtc = self.webrtc or _WebRtc()
                self.webrtc.add(event)
        elif isinstance(event, CheckFailed):
            self._error(event)
        elif isinstance(event, SessionEnded):
            self.outcome = event.outcome
            self.startup_latency = event.startup_latency_seconds

    def _observed(self, event: SegmentObserved | PartObserved) -> None:
        rendition = self.renditions[event.rendition]
        if isinstance(event, SegmentObserved):
            rendition.resolution = rendition.resolution or event.resolution
            rendition.segments += 1
            rendition.durations.append(event.extinf_seconds)
            if event.segment_latency_seconds is not None:
                rendition.segment_latency.append(event.segment_latency_seconds)
            if event.listed_latency_seconds is not None:
                rendition.listed_latency.append(event.listed_latency_seconds)
        else:
            rendition.parts += 1
            if event.part_latency_seconds is not None:
                rendition.part_latency.append(event.part_latency_seconds)
            if event.listed_latency_seconds is not None:
                rendition.part_listed_latency.append(event.listed_latency_seconds)

    def _error(self, event: CheckFailed) -> None:
        key = (event.kind, event.rendition, event.labels.playback_protocol)
        existing = self._error_index.get(key)
        if existing is not None:
            existing["count"] += 1
        elif len(self.errors) < MAX_ERRORS_LISTED:
            entry = {
                "kind": event.kind,
                "rendition": event.rendition,
                "protocol": event.labels.playback_protocol,
                "detail": event.detail,
                "count": 1,
            }
            self._error_index[key] = entry
            self.errors.append(entry)

    def document(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "stream": self.stream,
            "session_id": self.session_id,
            "ingest": self.ingest,
            "playback": self.playback,
            "startup_latency_seconds": (
                round(self.startup_latency, 4) if self.startup_latency is not None else None
            ),
            "renditions": [
                {
                    "name": name,
                    "resolution": r.resolution,
                    "codecs": r.codecs,
                    "segments": r.segments,
                    "segment_latency_seconds": _quantiles(r.segment_latency),
                    "listed_latency_seconds": _quantiles(r.listed_latency),
                    "segment_duration_seconds": _spread(r.durations),
                    **_parts(r),
                }
                for name, r in sorted(self.renditions.items())
            ],
            "errors": list(self.errors),
            **({"webrtc": self.webrtc.document()} if self.webrtc is not None else {}),
        }
