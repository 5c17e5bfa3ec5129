"""`segment_latency`: segments that reach the viewer later than a service level allows.

The latency itself is always measured and exported; this check turns "too far behind live"
into a failure: a segment downloaded more than `max_seconds` after its newest frame was
sent. Reported once per rendition and session, with the worst value seen by then.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from streamer.checks.base import Failure, SegmentRecord, SessionContext
from streamer.checks.common import ConfiguredCheck
from streamer.checks.registry import register

KIND = "segment_latency"


@register
class SegmentLatency(ConfiguredCheck):
    name = KIND
    kinds = (KIND,)
    # Generous: newest frame -> downloaded is well under 10 s on healthy platforms.
    defaults: ClassVar[Mapping[str, Any]] = {"max_seconds": 30.0}

    def __init__(self, context: SessionContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self._limit = self.number("max_seconds", minimum=0.001)
        self._reported: set[str] = set()

    def on_segment(self, record: SegmentRecord) -> list[Failure]:
        if record.newest_frame_sent_at is None or record.rendition in self._reported:
            return []
        latency = record.downloaded_at - record.newest_frame_sent_at
        if latency <= self._limit:
            return []
        self._reported.add(record.rendition)
        return [
            Failure(
                KIND,
                record.rendition,
                f"segment {record.segment.sequence} arrived {latency:.2f}s after its "
                f"newest frame was sent (limit {self._limit:g}s)",
            )
        ]
