"""The status page's playback protocols side by side (HLS, WebRTC) for the current session.

Per protocol: its startup latency, its latency (glass-to-glass per frame where frames are
seen one by one, WebRTC; newest frame sent -> segment downloaded otherwise, HLS), its
freezes and, for WebRTC, the connect time. Memory is bounded: the latest MAX_SAMPLES
latencies of each protocol.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamer.events import (
    ConnectTime,
    Event,
    FirstSegment,
    FramesPlayed,
    FreezeEnded,
    PlaybackMeasured,
    SegmentObserved,
)

MAX_SAMPLES = 3000  # two minutes of frames at 25 fps
MAX_PROTOCOLS = 8


def _rounded(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 3)


@dataclass
class _Protocol:
    startup_latency_seconds: float | None = None
    frame_latencies: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    segment_latencies: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    frames: int = 0
    freezes: int = 0
    freeze_seconds: float = 0.0
    connect_seconds: float | None = None

    def to_json(self, name: str) -> dict[str, Any]:
        per_frame = bool(self.frame_latencies)
        latencies = self.frame_latencies if per_frame else self.segment_latencies
        p50 = p95 = None
        if latencies:
            p50, p95 = (float(v) for v in np.percentile(np.fromiter(latencies, float), [50, 95]))
        return {
            "protocol": name,
            "startup_latency_seconds": _rounded(self.startup_latency_seconds),
            # "frame": glass-to-glass of every frame; "segment": newest frame sent ->
            # segment downloaded (what a player adds on top is its buffer).
            "latency_kind": "frame" if per_frame else "segment",
            "latency_p50_seconds": _rounded(p50),
            "latency_p95_seconds": _rounded(p95),
            "frames": self.frames,
            "freezes": self.freezes,
            "freeze_seconds": _rounded(self.freeze_seconds),
            "connect_seconds": _rounded(self.connect_seconds),
        }


class ProtocolFigures:
    """One session's figures by playback protocol (the events' `playback_protocol`)."""

    def __init__(self) -> None:
        self._protocols: dict[str, _Protocol] = {}

    def handle(self, event: Event) -> None:
        if not isinstance(event, FirstSegment | SegmentObserved | FramesPlayed | PlaybackMeasured):
            return
        protocol = self._protocol(event.labels.playback_protocol)
        if protocol is None:
            return
        if isinstance(event, FirstSegment):
            if protocol.startup_latency_seconds is None:
                protocol.startup_latency_seconds = event.startup_latency_seconds
        elif isinstance(event, SegmentObserved):
            if event.segment_latency_seconds is not None:
                protocol.segment_latencies.append(event.segment_latency_seconds)
        elif isinstance(event, FramesPlayed):
            protocol.frames += len(event.latencies_seconds)
            protocol.frame_latencies.extend(event.latencies_seconds)
        else:
            measured = event.measurement
            if isinstance(measured, FreezeEnded):
                protocol.freezes += 1
                protocol.freeze_seconds += measured.seconds
            elif isinstance(measured, ConnectTime):
                protocol.connect_seconds = measured.seconds

    def _protocol(self, name: str) -> _Protocol | None:
        found = self._protocols.get(name)
        if found is None and len(self._protocols) < MAX_PROTOCOLS:
            found = self._protocols[name] = _Protocol()
        return found

    def to_json(self) -> list[dict[str, Any]]:
        return [protocol.to_json(name) for name, protocol in self._protocols.items()]
