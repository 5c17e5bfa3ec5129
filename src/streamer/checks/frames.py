"""Walking a rendition's frame numbers: what frame_drop and frozen_video share.

Every frame carries its clip frame number (modulo the clip length, which loops). Between two
readable frames `k` positions apart, the number should advance by about k x the rendition's
frame step: the clip's frame rate over the rendition's (a transcoder that halves the rate
shows every other frame: step 2). A larger advance means frames were dropped; no advance, or
going back, means the picture repeated (frozen) for longer than the step explains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from streamer.checks.base import SegmentRecord


@dataclass(frozen=True)
class Jump:
    """Frames missing between two readable frames."""

    before: int  # clip frame numbers
    after: int
    missing: int  # frames of the rendition's rate missing beyond what its step explains


@dataclass(frozen=True)
class Repeat:
    """The same picture shown longer than the frame step explains, or an earlier one again."""

    frame: int  # the repeated frame, or the earlier frame gone back to
    shown: int  # frames it was shown for (0 when the video went back)
    previous: int  # the frame before (differs from `frame` when going back)


@dataclass
class _Tail:
    sequence: int
    code: int  # last readable clip frame of the segment
    after: int  # frames after it in the segment
    run: int  # frames the same code has been shown so far


def advance_limits(step: float) -> tuple[int, int]:
    """(largest normal advance per frame, longest normal run of one picture) for a step."""
    nearest = round(step)
    largest = nearest if nearest >= 1 and abs(step - nearest) < 0.1 else math.ceil(step)
    run = math.ceil(1 / step - 0.1) if step < 1 else 1
    return max(1, largest), max(1, run)


class FrameWalker:
    """Per rendition: finds jumps and repeats in each new segment and across its start."""

    def __init__(self, fps: float, frames_per_loop: int, max_extra_run: int = 0) -> None:
        self._fps = fps
        self._loop = max(1, frames_per_loop)
        self._extra_run = max_extra_run
        self._tails: dict[str, _Tail] = {}
        self._steps: dict[str, float] = {}

    def walk(self, record: SegmentRecord) -> tuple[list[Jump], list[Repeat]]:
        analysis = record.analysis
        step = self._steps.get(record.rendition, 1.0)
        if analysis.frame_duration > 0 and self._fps > 0:
            step = analysis.frame_duration * self._fps
            self._steps[record.rendition] = step
        largest, longest = advance_limits(step)
        longest += self._extra_run
        jumps: list[Jump] = []
        repeats: list[Repeat] = []
        tail = self._tails.pop(record.rendition, None)
        # (position, code) of readable frames; the previous segment's last one when adjacent.
        previous: tuple[int, int] | None = None
        run = 1
        if tail is not None and tail.sequence + 1 == record.segment.sequence:
            previous, run = (-1 - tail.after, tail.code), tail.run
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
                run += apart
                if run - apart <= longest < run:  # once per run, when it gets too long
                    repeats.append(Repeat(code, run, code))
            elif advance > self._loop // 2:
                repeats.append(Repeat(code, 0, previous[1]))
                run = 1
            else:
                excess = advance - largest * apart
                if excess > 0:  # in output frames: what the step would have shown
                    jumps.append(Jump(previous[1], code, max(1, round(excess / step))))
                run = 1
            previous = (index, code)
        if previous is not None and last_index >= 0:
            self._tails[record.rendition] = _Tail(
                record.segment.sequence, previous[1], len(analysis.timecodes) - 1 - last_index, run
            )
        return jumps, repeats
