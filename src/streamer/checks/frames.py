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
Anything shorter is counted, never a failure.
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
    sequence: int
    code: int  # last readable clip frame of the segment
    after: int  # frames after it in the segment
    run: int  # frames the same code has been shown so far
    frozen: bool  # that run already reached the threshold


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
        analysis = record.analysis
        clip_frame = 1 / self._fps
        frame = self._frame_seconds.get(record.rendition, clip_frame)
        if analysis.frame_duration > 0:
            frame = analysis.frame_duration
            self._frame_seconds[record.rendition] = frame
        step = frame * self._fps
        largest, longest = advance_limits(step)
        picture = max(frame, clip_frame)  # a 60 fps rendition of the clip: 2 frames each
        threshold = self._rule.threshold(picture)
        walk = Walk()
        tail = self._tails.pop(record.rendition, None)
        # (position, code) of readable frames; the previous segment's last one when adjacent.
        previous: tuple[int, int] | None = None
        run, frozen = 1, False
        if tail is not None and tail.sequence + 1 == record.segment.sequence:
            previous, run, frozen = (-1 - tail.after, tail.code), tail.run, tail.frozen
        freeze: Freeze | None = None  # the current run's, when it reached the threshold here
        last_index = -1
        for index, code in enumerate(analysis.timecodes):
            if code is None:
                continue
            last_index = index
            if previous is None:
                previous = (index, code)
                continue
            apart = index - previous[0]
            advance = (code - previous[1]) % self._loop
            if advance == 0:
                walk.repeated += max(0, run + apart - longest) - max(0, run - longest)
                run += apart
                if freeze is not None:
                    freeze.seconds = run * frame
                elif not frozen and run * frame >= threshold:
                    frozen = True
                    freeze = Freeze(code, run * frame, ongoing=False)
                    walk.freezes.append(freeze)
                previous = (index, code)
                continue
            if advance > self._loop // 2:
                back = self._loop - advance
                pictures = max(1, round(back / max(step, 1.0)))
                walk.repeated += pictures
                noticed = pictures * picture >= threshold
                walk.steps_back.append(StepBack(previous[1], code, pictures, noticed))
            else:
                excess = advance - largest * apart
                if excess > 0:  # in output frames: what the step would have shown
                    missing = max(1, round(excess / step))
                    gap = excess * clip_frame + picture
                    walk.dropped += missing
                    jump = Jump(previous[1], code, missing, gap, noticed=gap >= threshold)
                    walk.jumps.append(jump)
            run, frozen, freeze = 1, False, None
            previous = (index, code)
        if freeze is not None:
            freeze.ongoing = True
        if previous is not None and last_index >= 0:
            after = len(analysis.timecodes) - 1 - last_index
            self._tails[record.rendition] = _Tail(
                record.segment.sequence, previous[1], after, run, frozen
            )
        return walk
