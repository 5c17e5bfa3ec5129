"""`audio_missing`: silence a listener would hear where the stream should have sound.

Every failure is a stretch without audio longer than `max_gap_seconds` (0.1 s: about the
shortest dropout a listener notices in a continuous tone):

- a hole between audio packets inside a segment;
- a hole between the audio of consecutive segments;
- segments without any audio, measured as the time from the last audio heard (or the
  segment's start) to the end of the silent segment's video. Reported once per silence,
  until audio is back.

Measuring silence as a duration, not "a segment without audio", matters at the end of a
stream: a publisher that stops right after a keyframe leaves a last segment of one video
frame and no audio (33 ms of silence at the very end), which no viewer hears.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from streamer.checks.base import Failure, SegmentRecord, SessionContext
from streamer.checks.common import ConfiguredCheck, pts_delta
from streamer.checks.registry import register

KIND = "audio_missing"


@dataclass(frozen=True)
class _Heard:
    sequence: int  # the newest segment seen, with or without audio
    audio_end: float  # PTS where the newest audio seen ended


@register
class AudioMissing(ConfiguredCheck):
    name = KIND
    kinds = (KIND,)
    defaults: ClassVar[Mapping[str, Any]] = {"max_gap_seconds": 0.1}

    def __init__(self, context: SessionContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self.max_gap = self.number("max_gap_seconds")
        self._silent: set[str] = set()  # renditions whose ongoing silence was reported
        self._heard: dict[str, _Heard] = {}

    def _since_last_audio(self, record: SegmentRecord) -> _Heard | None:
        """The audio heard last, when it is comparable with this segment's timestamps."""
        heard = self._heard.pop(record.rendition, None)
        if heard is None or heard.sequence + 1 != record.segment.sequence:
            return None  # nothing heard yet, or segments skipped: another check's business
        return None if record.segment.discontinuity else heard

    def on_segment(self, record: SegmentRecord) -> list[Failure]:
        name, sequence = record.rendition, record.segment.sequence
        analysis = record.analysis
        heard = self._since_last_audio(record)
        audio = analysis.audio
        if audio is None:
            video_end = analysis.last_pts + analysis.frame_duration
            silence = (
                pts_delta(video_end, heard.audio_end)
                if heard is not None
                else analysis.media_duration
            )
            if heard is not None:
                self._heard[name] = _Heard(sequence, heard.audio_end)
            if silence <= self.max_gap or name in self._silent:
                return []
            self._silent.add(name)
            return [Failure(KIND, name, f"segment {sequence} has no audio")]
        was_silent = name in self._silent
        self._silent.discard(name)
        if audio.end_pts is not None:
            self._heard[name] = _Heard(sequence, audio.end_pts)
        failures = []
        if audio.gap_seconds > self.max_gap:
            failures.append(
                Failure(KIND, name, f"segment {sequence}: {audio.gap_seconds:.3f}s hole in audio")
            )
        if heard is not None and not was_silent:
            hole = pts_delta(audio.first_pts, heard.audio_end)
            if hole > self.max_gap:
                failures.append(
                    Failure(
                        KIND,
                        name,
                        f"segment {sequence}: {hole:.3f}s of audio missing since segment "
                        f"{heard.sequence}",
                    )
                )
        return failures
