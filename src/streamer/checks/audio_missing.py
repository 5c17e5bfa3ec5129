"""`audio_missing`: a segment without audio, or holes in the audio.

- no audio stream or no audio packet in a segment (reported once until audio is back);
- a hole between audio packets inside a segment, or between the audio of consecutive
  segments, longer than `max_gap_seconds` (a viewer hears a dropout).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from streamer.checks.base import Failure, SegmentRecord, SessionContext
from streamer.checks.common import ConfiguredCheck, pts_delta
from streamer.checks.registry import register

KIND = "audio_missing"


@register
class AudioMissing(ConfiguredCheck):
    name = KIND
    kinds = (KIND,)
    defaults: ClassVar[Mapping[str, Any]] = {"max_gap_seconds": 0.1}

    def __init__(self, context: SessionContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self.max_gap = self.number("max_gap_seconds")
        self._silent: set[str] = set()
        self._audio_end: dict[str, tuple[int, float]] = {}  # rendition -> (sequence, end PTS)

    def on_segment(self, record: SegmentRecord) -> list[Failure]:
        name, sequence = record.rendition, record.segment.sequence
        audio = record.analysis.audio
        previous = self._audio_end.pop(name, None)
        if audio is None:
            if name in self._silent:
                return []
            self._silent.add(name)
            return [Failure(KIND, name, f"segment {sequence} has no audio")]
        self._silent.discard(name)
        if audio.end_pts is not None:
            self._audio_end[name] = (sequence, audio.end_pts)
        failures = []
        if audio.gap_seconds > self.max_gap:
            failures.append(
                Failure(KIND, name, f"segment {sequence}: {audio.gap_seconds:.3f}s hole in audio")
            )
        if (
            previous is not None
            and previous[0] + 1 == sequence
            and not record.segment.discontinuity
        ):
            hole = pts_delta(audio.first_pts, previous[1])
            if hole > self.max_gap:
                failures.append(
                    Failure(
                        KIND,
                        name,
                        f"segment {sequence}: {hole:.3f}s of audio missing since segment "
                        f"{previous[0]}",
                    )
                )
        return failures
