"""`frame_drop`: frame numbers missing inside a segment or across consecutive segments.

The rendition's frame step (clip rate / rendition rate) is allowed: 30 -> 15 fps skips every
other frame by design. More than `max_missing` frames missing at once is reported, once per
segment (with the number of jumps in it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from streamer.checks.base import Failure, SegmentRecord, SessionContext
from streamer.checks.common import ConfiguredCheck
from streamer.checks.frames import FrameWalker
from streamer.checks.registry import register

KIND = "frame_drop"


@register
class FrameDrop(ConfiguredCheck):
    name = KIND
    kinds = (KIND,)
    defaults: ClassVar[Mapping[str, Any]] = {"max_missing": 0}

    def __init__(self, context: SessionContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self.max_missing = self.number("max_missing")
        self._walker = FrameWalker(context.fps, context.send_log.frames_per_loop)

    def on_segment(self, record: SegmentRecord) -> list[Failure]:
        jumps, _ = self._walker.walk(record)
        jumps = [j for j in jumps if j.missing > self.max_missing]
        if not jumps:
            return []
        first = jumps[0]
        more = f" and {len(jumps) - 1} more jump(s)" if len(jumps) > 1 else ""
        return [
            Failure(
                KIND,
                record.rendition,
                f"segment {record.segment.sequence}: {first.missing} frame(s) missing between "
                f"frames {first.before} and {first.after}{more}",
            )
        ]
