"""`discontinuity`: an EXT-X-DISCONTINUITY the test stream did not cause.

The test stream publishes one continuous timeline, so only its start may carry one (nginx-rtmp
tags the very first segment of a stream): the rendition's first segment of this session is
exempt, every later tagged segment is a fault (a transcoder or packager restart, a splice).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamer.checks.base import Failure, SegmentRecord, SessionContext
from streamer.checks.common import ConfiguredCheck
from streamer.checks.registry import register

KIND = "discontinuity"


@register
class Discontinuity(ConfiguredCheck):
    name = KIND
    kinds = (KIND,)

    def __init__(self, context: SessionContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self._started: set[str] = set()

    def on_segment(self, record: SegmentRecord) -> list[Failure]:
        # Records are this session's segments only, in order: the first one is the start.
        first = record.rendition not in self._started
        self._started.add(record.rendition)
        if first or not record.segment.discontinuity:
            return []
        return [
            Failure(
                KIND,
                record.rendition,
                f"segment {record.segment.sequence} carries EXT-X-DISCONTINUITY",
            )
        ]
