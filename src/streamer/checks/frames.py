"""Walking a rendition's frame numbers: what frame_drop and frozen_video share.

Every frame carries its clip frame number (modulo the clip length, which loops). Between two
readable frames `k` positions apart, the number should advance by about k x the rendition's
frame step: the clip's frame rate over the rendition's (a transcoder that halves the rate
shows every other frame: step 2). A larger advance means frames were dropped; no advance
means the picture stood still longer than the step explains; going back means earlier
pictures were shown again.

What a viewer notices is judged as WebRTC judges a freeze (W3C webrtc-stats,
RTCInboundRtpStreamStats.freezeCount): an interval between two rendered pictures of at
least max(3 x the average picture duration, the average picture duration + 150 ms), 183 ms
at 30 fps. The same interval measures the three ways a picture can fail to move on: a still
picture (it lasts that long), a drop (the hole between the pictures either side of it, as a
player that keeps the timing shows it), and a step back (that much video shown again).
Anything shorter is counted, never a failure. After a step back, frames count as repeated
until the video passes the newest picture shown, and a drop is measured from that picture.

Between readable frames far apart (keyframe decoding: one readable frame per GOP, every
other frame known by its packet), a picture that advanced less than the frames between them
explain stood still somewhere in between, at least that long: a freeze, seen at GOP
granularity. A still picture that resumes on time before the next readable frame leaves no
trace there (see docs/checks.md, "Decode modes").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from streamer.checks.base import SegmentRecord

W3C_FREEZE_FRAMES = 3.0
W3C_FREEZE_MS = 150.0


@dataclass(frozen=True)
class FreezeRule:
    """The shortest interval without a new picture that a viewer notices."""

    min_frames: float = W3C_FREEZE_FRAMES  # x the average picture duration
    min_ms: float = W3C_FREEZE_MS  # + one average picture duration

    def threshold(self, picture_seconds: float) -> float:
        return max(self.min_frames * picture_seconds, picture_seconds + self.min_ms / 1000)


@dataclass(frozen=True)
class Jump:
    """Frames missing between two readable frames."""

    before: int  # clip frame numbers
    after: int
    missing: int  # frames of the rendition's rate missing beyond what its step explains
    gap_seconds: float  # from showing `before` to showing `after`, had the timing been kept
    noticed: bool


@dataclass
class Freeze:
    """A still picture that reached the rule's threshold (once per run of one picture)."""

    frame: int
    seconds: float  # how long it stood still, up to the end of this segment
    ongoing: bool  # still at the end of the segment
    # Seen only between two readable frames far apart (keyframes): the later one. The
    # picture fell behind its timing somewhere between them, by `seconds` at least.
    until: int | None = None


@dataclass(frozen=True)
class StepBack:
    """An earlier picture shown again."""

    before: int
    after: int
    pictures: int  # pictures of the rendition's rate gone back
    noticed: bool


@dataclass
class Walk:
    """What one segment showed, against the previous frames of its rendition."""

    jumps: list[Jump] = field(default_factory=list)
    freezes: list[Freeze] = field(default_factory=list)
    steps_back: list[StepBack] = field(default_factory=list)
    repeated: int = 0  # frames that showed an earlier picture again, noticed or not
    dropped: int = 0  # frames missing, noticed or not


@dataclass
class _Tail:
    """Where a rendition's walk stands at the last readable frame of its newest segment."""

    sequence: int
    code: int  # that frame's clip frame number
    after: int  # frames after it in the segment
    run: int = 1  # frames the same picture has been shown so far
    frozen: bool = False  # that run already reached the threshold
    behind: int = 0  # clip frames the picture is behind the newest one shown (a step back)


@dataclass(frozen=True)
class _Rates:
    """A segment's frame timing, and what it makes normal."""

    frame: float  # seconds per frame of the rendition
    step: float  # clip frames per rendition frame
    largest: int  # largest normal advance per frame
    longest: int  # longest normal run of one picture
    picture: float  # seconds per picture (a 60 fps rendition of the clip: 2 frames each)
    threshold: float  # seconds without a new picture that a viewer notices


def advance_limits(step: float) -> tuple[int, int]:
    """(largest normal advance per frame, longest normal run of one picture) for a step."""
    nearest = round(step)
    largest = nearest if nearest >= 1 and abs(step - nearest) < 0.1 else math.ceil(step)
    run = math.ceil(1 / step - 0.1) if step < 1 else 1
    return max(1, largest), max(1, run)


class FrameWalker:
    """Per rendition: finds jumps, freezes and steps back in each new segment and across
    its start (when the previous segment is the one right before it)."""

    def __init__(self, fps: float, frames_per_loop: int, rule: FreezeRule) -> None:
        self._fps = fps if fps > 0 else 30.0
        self._loop = max(1, frames_per_loop)
        self._rule = rule
        self._tails: dict[str, _Tail] = {}
        self._frame_seconds: dict[str, float] = {}

    def walk(self, record: SegmentRecord) -> Walk:
        rates = self._rates(record)
        walk = Walk()
        codes = record.analysis.timecodes
        tail = self._tails.pop(record.rendition, None)
        state: _Tail | None = None
        position = 0  # of the frame `state` stands at (the previous segment's: negative)
        if tail is not None and tail.sequence + 1 == record.segment.sequence:
            state, position = tail, -1 - tail.after
        freeze: Freeze | None = None  # the current run's, when it reached the threshold here
        last_index = -1
        for index, code in enumerate(codes):
            if code is None:
                continue
            last_index = index
            if state is None:
                state, position = _Tail(record.segment.sequence, code, 0), index
                continue
            apart = index - position
            advance = (code - state.code) % self._loop
            if advance == 0:
                freeze = self._still(walk, state, rates, apart, freeze)
            else:
                if advance > self._loop // 2:
                    self._back(walk, state, rates, self._loop - advance, code)
                else:
                    self._forward(walk, state, rates, advance, apart, code)
                state.run, state.frozen, freeze = 1, False, None
            state.code, position = code, index
        if freeze is not None:
            freeze.ongoing = True
        if state is not None and last_index >= 0:
            state.sequence, state.after = record.segment.sequence, len(codes) - 1 - last_index
            self._tails[record.rendition] = state
        return walk

    def _rates(self, record: SegmentRecord) -> _Rates:
        clip_frame = 1 / self._fps
        frame = self._frame_seconds.get(record.rendition, clip_frame)
        if record.analysis.frame_duration > 0:
            frame = record.analysis.frame_duration
            self._frame_seconds[record.rendition] = frame
        step = frame * self._fps
        largest, longest = advance_limits(step)
        picture = max(frame, clip_frame)
        return _Rates(frame, step, largest, longest, picture, self._rule.threshold(picture))

    @staticmethod
    def _still(
        walk: Walk, state: _Tail, rates: _Rates, apart: int, freeze: Freeze | None
    ) -> Freeze | None:
        """The same picture again, `apart` frames later."""
        if state.behind > 0:  # a picture already shown before the step back: all again
            walk.repeated += apart
        else:
            extra = max(0, state.run + apart - rates.longest) - max(0, state.run - rates.longest)
            walk.repeated += extra
        state.run += apart
        seconds = state.run * rates.frame
        if freeze is not None:
            freeze.seconds = seconds
        elif not state.frozen and seconds >= rates.threshold:
            state.frozen = True
            freeze = Freeze(state.code, seconds, ongoing=False)
            walk.freezes.append(freeze)
        return freeze

    def _back(self, walk: Walk, state: _Tail, rates: _Rates, back: int, code: int) -> None:
        """An earlier picture, `back` clip frames before the previous one."""
        pictures = max(1, round(back / max(rates.step, 1.0)))
        noticed = pictures * rates.picture >= rates.threshold
        walk.steps_back.append(StepBack(state.code, code, pictures, noticed))
        walk.repeated += 1
        state.behind = min(self._loop // 2, state.behind + back)

    def _forward(
        self, walk: Walk, state: _Tail, rates: _Rates, advance: int, apart: int, code: int
    ) -> None:
        """A later picture, `advance` clip frames and `apart` frames after the previous."""
        if state.behind >= advance:  # still among pictures shown before a step back
            state.behind -= advance
            walk.repeated += apart
            return
        newest = (state.code + state.behind) % self._loop
        advance, state.behind = advance - state.behind, 0  # past the newest picture shown
        excess = advance - rates.largest * apart
        if excess > 0:  # in rendition frames: what the step would have shown
            missing = max(1, round(excess / rates.step))
            gap = excess / self._fps + rates.picture
            walk.dropped += missing
            walk.jumps.append(Jump(newest, code, missing, gap, noticed=gap >= rates.threshold))
        shortfall = rates.step * apart - advance  # clip frames the picture fell behind
        if apart > 1 and shortfall >= 1:
            walk.repeated += max(1, round(shortfall / rates.step))
            still = shortfall / self._fps + rates.picture
            if still >= rates.threshold:
                walk.freezes.append(Freeze(newest, still, ongoing=False, until=code))
