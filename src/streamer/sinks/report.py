"""The session report: per-rendition latency and duration statistics, and the errors."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamer.events import (
    CheckFailed,
    Event,
    PartObserved,
    RenditionDiscovered,
    SegmentObserved,
    SessionEnded,
    SessionStarted,
)

MAX_ERRORS_LISTED = 200


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
        self._error_index: dict[tuple[str, str | None], dict[str, Any]] = {}

    def handle(self, event: Event) -> None:
        if isinstance(event, SessionStarted):
            self.stream, self.session_id = event.labels.stream, event.session_id
            self.ingest, self.playback = event.ingest, event.playback
        elif isinstance(event, RenditionDiscovered):
            rendition = self.renditions[event.rendition]
            rendition.resolution = rendition.resolution or event.resolution
            rendition.codecs = event.codecs
        elif isinstance(event, SegmentObserved):
            rendition = self.renditions[event.rendition]
            rendition.resolution = rendition.resolution or event.resolution
            rendition.segments += 1
            rendition.durations.append(event.extinf_seconds)
            if event.segment_latency_seconds is not None:
                rendition.segment_latency.append(event.segment_latency_seconds)
            if event.listed_latency_seconds is not None:
                rendition.listed_latency.append(event.listed_latency_seconds)
        elif isinstance(event, PartObserved):
            rendition = self.renditions[event.rendition]
            rendition.parts += 1
            if event.part_latency_seconds is not None:
                rendition.part_latency.append(event.part_latency_seconds)
            if event.listed_latency_seconds is not None:
                rendition.part_listed_latency.append(event.listed_latency_seconds)
        elif isinstance(event, CheckFailed):
            key = (event.kind, event.rendition)
            existing = self._error_index.get(key)
            if existing is not None:
                existing["count"] += 1
            elif len(self.errors) < MAX_ERRORS_LISTED:
                entry = {
                    "kind": event.kind,
                    "rendition": event.rendition,
                    "detail": event.detail,
                    "count": 1,
                }
                self._error_index[key] = entry
                self.errors.append(entry)
        elif isinstance(event, SessionEnded):
            self.outcome = event.outcome
            self.startup_latency = event.startup_latency_seconds

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
        }
