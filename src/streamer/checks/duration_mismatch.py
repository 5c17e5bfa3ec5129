"""`duration_mismatch`: a segment's EXTINF disagrees with its media, or exceeds the target.

- EXTINF vs the measured media duration (first to last frame plus one frame): off by more
  than `tolerance_seconds` (at least one frame) misleads players about the timeline.
- EXTINF rounded to the nearest integer above EXT-X-TARGETDURATION breaks the HLS spec
  (RFC 8216, 4.3.3.1), and players that size buffers by the target duration stall.

Each segment is judged once the next one of its rendition arrives: the final segment after
publishing stopped is cut short and never judged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from streamer.checks.base import Failure, SegmentRecord, SessionContext
from streamer.checks.common import ConfiguredCheck
from streamer.checks.registry import register
from streamer.playback.playlist import MediaPlaylist

KIND = "duration_mismatch"


@register
class DurationMismatch(ConfiguredCheck):
    name = KIND
    kinds = (KIND,)
    defaults: ClassVar[Mapping[str, Any]] = {"tolerance_seconds": 0.25}

    def __init__(self, context: SessionContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self.tolerance = self.number("tolerance_seconds")
        self._target: dict[str, float] = {}
        self._pending: dict[str, SegmentRecord] = {}

    def on_playlist(self, rendition: str, playlist: MediaPlaylist, at: float) -> list[Failure]:
        if playlist.target_duration > 0:
            self._target[rendition] = playlist.target_duration
        return []

    def on_segment(self, record: SegmentRecord) -> list[Failure]:
        previous = self._pending.get(record.rendition)
        self._pending[record.rendition] = record
        return self._judge(previous) if previous is not None else []

    def on_end(self, now: float) -> list[Failure]:
        self._pending.clear()  # each rendition's last segment: cut short by the stop
        return []

    def _judge(self, record: SegmentRecord) -> list[Failure]:
        extinf = record.segment.duration
        media = record.analysis.media_duration
        sequence = record.segment.sequence
        failures = []
        tolerance = max(self.tolerance, record.analysis.frame_duration)
        if abs(extinf - media) > tolerance:
            failures.append(
                Failure(
                    KIND,
                    record.rendition,
                    f"segment {sequence}: EXTINF {extinf:.3f}s but its media lasts {media:.3f}s",
                )
            )
        target = self._target.get(record.rendition)
        if target and round(extinf) > target:
            failures.append(
                Failure(
                    KIND,
                    record.rendition,
                    f"segment {sequence}: EXTINF {extinf:.3f}s exceeds the target duration "
                    f"{target:g}s",
                )
            )
        return failures
