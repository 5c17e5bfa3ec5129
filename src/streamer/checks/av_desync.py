"""`av_desync`: audio ahead of or behind the picture by more than a viewer notices.

The clip's audio has a tone burst at the start of every second, where the frame number is a
multiple of the frame rate. Each burst onset (segment analysis finds them, also one a
segment starts with, given the previous segment) is paired with the nearest such frame by
PTS; offset = onset - frame (positive: audio late). Bursts are 1 s apart, so only offsets
within +-0.45 s can be paired unambiguously; farther ones are not measured.

Viewers notice sound ahead of the picture sooner than sound behind it: the thresholds of
detectability of ITU-R BT.1359 are 45 ms early and 125 ms late (`max_early_seconds`,
`max_late_seconds`). Reported when `min_count` offsets in a row exceed them (one misread
burst is not a desync), once per episode. (`threshold_seconds`, one symmetric limit, is
replaced by the two.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from streamer.checks.base import Failure, SegmentRecord, SessionContext
from streamer.checks.common import ConfiguredCheck
from streamer.checks.registry import register
from streamer.playback.segment import AudioInfo, joined_onset

KIND = "av_desync"
PAIRING_WINDOW_SECONDS = 0.45
_KEEP = 16  # markers and onsets remembered: a few segments' worth


@dataclass
class _Rendition:
    sequence: int
    markers: deque[float] = field(default_factory=lambda: deque(maxlen=_KEEP))
    onsets: deque[float] = field(default_factory=lambda: deque(maxlen=_KEEP))  # unpaired
    video_end: float = float("-inf")
    audio: AudioInfo | None = None  # the previous segment's
    over: int = 0  # offsets in a row beyond the threshold
    reported: bool = False


@register
class AvDesync(ConfiguredCheck):
    name = KIND
    kinds = (KIND,)
    defaults: ClassVar[Mapping[str, Any]] = {
        "max_early_seconds": 0.045,
        "max_late_seconds": 0.125,
        "min_count": 2,
    }
    replaced: ClassVar[Mapping[str, str]] = {
        "threshold_seconds": "max_early_seconds and max_late_seconds (viewers notice audio "
        "ahead of the picture sooner than behind it)"
    }

    def __init__(self, context: SessionContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self.max_early = self.number("max_early_seconds")
        self.max_late = self.number("max_late_seconds")
        self.min_count = int(self.number("min_count", minimum=1))
        self._period = max(1, round(context.fps))  # frames between bursts
        self._renditions: dict[str, _Rendition] = {}

    def on_segment(self, record: SegmentRecord) -> list[Failure]:
        analysis, sequence = record.analysis, record.segment.sequence
        state = self._renditions.get(record.rendition)
        if state is None or state.sequence + 1 != sequence or record.segment.discontinuity:
            # PTS are only comparable along one unbroken timeline.
            old = state
            state = _Rendition(sequence)
            if old is not None:
                state.over, state.reported = old.over, old.reported
            self._renditions[record.rendition] = state
        state.sequence = sequence
        pts = analysis.frame_pts
        if len(pts) == len(analysis.timecodes):
            state.markers.extend(
                p
                for p, code in zip(pts, analysis.timecodes, strict=True)
                if code is not None and code % self._period == 0
            )
            if pts:
                state.video_end = max(state.video_end, pts[-1])
        audio = analysis.audio
        if audio is not None:
            if state.audio is not None:  # the segment right before, on the same timeline
                onset = joined_onset(state.audio, audio)
                if onset is not None:
                    state.onsets.append(onset)
            state.onsets.extend(audio.burst_onsets)
        state.audio = audio
        return self._pair(record.rendition, state)

    def _pair(self, rendition: str, state: _Rendition) -> list[Failure]:
        failures = []
        while state.onsets and state.onsets[0] + PAIRING_WINDOW_SECONDS <= state.video_end:
            onset = state.onsets.popleft()  # the video around it has been seen
            nearest = min(state.markers, key=lambda m: abs(onset - m), default=None)
            if nearest is None or abs(onset - nearest) > PAIRING_WINDOW_SECONDS:
                continue  # its frame was dropped or unreadable: nothing to measure
            offset = onset - nearest
            if -self.max_early <= offset <= self.max_late:
                state.over, state.reported = 0, False
                continue
            state.over += 1
            if state.over >= self.min_count and not state.reported:
                state.reported = True
                direction = "late" if offset > 0 else "early"
                failures.append(
                    Failure(
                        KIND,
                        rendition,
                        f"audio {abs(offset) * 1000:.0f} ms {direction} against video",
                    )
                )
        return failures
