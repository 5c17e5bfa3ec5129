from __future__ import annotations

import dataclasses

import pytest

from streamer.checks.segment_latency import SegmentLatency
from tests.support.check_records import SyntheticRendition, context, feed


def test_reports_a_late_segment_once_per_rendition() -> None:
    check = SegmentLatency(context(), {"max_seconds": 5})
    rendition = SyntheticRendition()
    records = [rendition.segment(n) for n in range(4)]
    late = [
        dataclasses.replace(r, downloaded_at=r.newest_frame_sent_at + 7.5)  # type: ignore[operator]
        for r in records[2:]
    ]
    failures = feed(check, records[:2] + late)
    assert [(f.kind, f.rendition) for f in failures] == [("segment_latency", "source")]
    assert "7.50s" in failures[0].detail and "limit 5s" in failures[0].detail


def test_healthy_latency_and_unknown_latency_pass() -> None:
    check = SegmentLatency(context(), {})
    rendition = SyntheticRendition()
    records = [rendition.segment(n) for n in range(3)]
    unknown = dataclasses.replace(records[0], newest_frame_sent_at=None)
    assert feed(check, [*records, unknown]) == []


def test_bad_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match="max_seconds"):
        SegmentLatency(context(), {"max_seconds": 0})
