"""`timestamp_gap`: a segment does not start where the previous one ended.

Next first PTS vs previous first PTS + previous media duration, for consecutive segments
of a rendition, beyond `tolerance_seconds`: a hole or an overlap in the timeline that
players stall on or skip over. A segment tagged EXT-X-DISCONTINUITY may restart its
timeline (that tag is the `discontinuity` check's business); a segment after a sequence gap
is not compared (that is `media_sequence_gap`'s).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from streamer.checks.base import Failure, SegmentRecord, SessionContext
from streamer.checks.common import ConfiguredCheck, pts_delta
from streamer.checks.registry import register

KIND = "timestamp_gap"


@register
class TimestampGap(ConfiguredCheck):
    name = KIND
    kinds = (KIND,)
    defaults: ClassVar[Mapping[str, Any]] = {"tolerance_seconds": 0.1}

    def __init__(self, context: SessionContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self.tolerance = self.number("tolerance_seconds")
        self._previous: dict[str, SegmentRecord] = {}

    def on_segment(self, record: SegmentRecord) -> list[Failure]:
        previous = self._previous.get(record.rendition)
        self._previous[record.rendition] = record
        if (
            previous is None
            or record.segment.sequence != previous.segment.sequence + 1
            or record.segment.discontinuity
        ):
            return []
        before = previous.analysis
        expected = before.first_pts + before.media_duration
        gap = pts_delta(record.analysis.first_pts, expected)
        if abs(gap) <= self.tolerance:
            return []
        what = "hole" if gap > 0 else "overlap"
        return [
            Failure(
                KIND,
                record.rendition,
                f"segment {record.segment.sequence}: {abs(gap):.3f}s {what} in timestamps after "
                f"segment {previous.segment.sequence}",
            )
        ]
