"""What checks count without failing: CheckObserved events become Prometheus counters."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

from streamer.events import CheckObserved, ObservationKind, StreamLabels
from streamer.sinks.logs import LogSink
from streamer.sinks.metrics import MetricsSink

LABELS = StreamLabels("eu", "fra", "ams")


def observed(kind: ObservationKind, count: int, rendition: str | None = "640x360") -> CheckObserved:
    return CheckObserved(
        labels=LABELS,
        session_id="s1",
        kind=kind,
        rendition=rendition,
        count=count,
        detail=f"segment 3: {count} frame(s)",
        at=1.0,
    )


@pytest.mark.parametrize(
    ("kind", "metric"),
    [
        ("repeated_frames", "streamer_repeated_frames_total"),
        ("dropped_frames", "streamer_dropped_frames_total"),
    ],
)
def test_observations_are_counted_per_rendition(kind: ObservationKind, metric: str) -> None:
    registry = CollectorRegistry()
    sink = MetricsSink(registry)
    sink.handle(observed(kind, 1))
    sink.handle(observed(kind, 4))
    sink.handle(observed(kind, 2, rendition="256x144"))
    labels = {
        "stream": "eu",
        "ingest_region": "fra",
        "playback_region": "ams",
        "ingest_protocol": "rtmp",
        "playback_protocol": "hls",
    }
    assert registry.get_sample_value(metric, {**labels, "rendition": "640x360"}) == 5
    assert registry.get_sample_value(metric, {**labels, "rendition": "256x144"}) == 2
    # Counted, never an error.
    assert registry.get_sample_value("streamer_errors_total", {**labels, "kind": kind}) is None


def test_observations_are_logged_at_debug_only(caplog: pytest.LogCaptureFixture) -> None:
    sink = LogSink(logging.getLogger("test.observations"))
    with caplog.at_level(logging.DEBUG, logger="test.observations"):
        sink.handle(observed("repeated_frames", 1))
    (record,) = caplog.records
    assert record.levelno == logging.DEBUG
    assert record.getMessage() == "repeated_frames [640x360]: segment 3: 1 frame(s)"
