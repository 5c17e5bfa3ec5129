"""frame_drop and frozen_video: frame numbers read from every picture."""

from __future__ import annotations

import pytest

from streamer.checks.frame_drop import FrameDrop
from streamer.checks.frames import advance_limits
from streamer.checks.frozen_video import FrozenVideo
from tests.support.check_records import LOOP, SyntheticRendition, context, feed, replace_analysis

R = SyntheticRendition()


@pytest.mark.parametrize(
    ("step", "limits"),
    [(1.0, (1, 1)), (0.99, (1, 1)), (2.0, (2, 1)), (1.2, (2, 1)), (0.5, (1, 2)), (2.5, (3, 1))],
)
def test_advance_limits_follow_the_frame_step(step: float, limits: tuple[int, int]) -> None:
    assert advance_limits(step) == limits


@pytest.mark.parametrize("step", [1, 2, 3])
def test_healthy_renditions_at_any_frame_step(step: int) -> None:
    r = SyntheticRendition(step=step)
    records = [r.segment(n) for n in range(5)]
    assert feed(FrameDrop(context(), {}), records) == []
    assert feed(FrozenVideo(context(), {}), records) == []


def test_double_rate_rendition_shows_each_frame_twice() -> None:
    def doubled(n: int) -> list[int]:  # 60 fps of the 30 fps clip
        return [f for f in R.frames(n) for _ in (0, 1)]

    records = [
        replace_analysis(R.segment(n, frames=doubled(n)), frame_duration=1 / 60) for n in (0, 1)
    ]
    assert feed(FrozenVideo(context(), {}), records) == []
    assert feed(FrameDrop(context(), {}), records) == []


def test_frame_drop_inside_a_segment() -> None:
    check = FrameDrop(context(), {})
    frames = [f for f in range(60, 120) if not 70 <= f < 80]
    (failure,) = feed(check, [R.segment(0), R.segment(1, frames=frames)])
    assert (failure.kind, failure.rendition) == ("frame_drop", "source")
    assert failure.detail == "segment 1: 10 frame(s) missing between frames 69 and 80"


def test_frame_drop_across_segments_and_tolerance() -> None:
    frames = list(range(63, 120))  # 60..62 never shown
    assert len(feed(FrameDrop(context(), {}), [R.segment(0), R.segment(1, frames=frames)])) == 1
    lenient = FrameDrop(context(), {"max_missing": 3})
    assert feed(lenient, [R.segment(0), R.segment(1, frames=frames)]) == []


def test_frame_drop_at_half_rate_counts_rendition_frames() -> None:
    half = SyntheticRendition(step=2)
    frames = [f for f in half.frames(1) if f not in (80, 82)]
    (failure,) = feed(FrameDrop(context(), {}), [half.segment(0), half.segment(1, frames=frames)])
    assert "2 frame(s) missing between frames 78 and 84" in failure.detail


def test_unreadable_frames_are_neither_drops_nor_freezes() -> None:
    codes = [None if 10 <= i < 20 else (60 + i) for i in range(60)]
    records = [R.segment(0), R.segment(1, codes=codes)]
    assert feed(FrameDrop(context(), {}), records) == []
    assert feed(FrozenVideo(context(), {}), records) == []


def test_not_compared_across_a_missing_segment() -> None:
    records = [R.segment(0), R.segment(2)]
    assert feed(FrameDrop(context(), {}), records) == []


def test_frames_wrap_at_the_clip_loop() -> None:
    start = LOOP // 60 - 1  # the segment with the clip's last frames
    records = [R.segment(start), R.segment(start + 1)]  # codes go 1799 -> 0
    assert feed(FrameDrop(context(), {}), records) == []
    assert feed(FrozenVideo(context(), {}), records) == []


def test_frozen_video_repeated_frame() -> None:
    frames = list(range(60, 90)) + [89] * 10 + list(range(100, 120))
    check = FrozenVideo(context(), {})
    (failure,) = feed(check, [R.segment(0), R.segment(1, frames=frames)])
    assert (failure.kind, failure.rendition) == ("frozen_video", "source")
    assert failure.detail == "segment 1: frame 89 shown 2 times"  # reported when it starts
    # The same freeze is not frame_drop's business, the frames skipped after it are.
    assert len(feed(FrameDrop(context(), {}), [R.segment(0), R.segment(1, frames=frames)])) == 1


def test_frozen_video_across_segments_once_per_freeze() -> None:
    check = FrozenVideo(context(), {"max_repeats": 1})
    frozen = [R.segment(0, frames=[*range(59), 58])]  # 58 twice: allowed
    frozen.append(R.segment(1, frames=[58] * 60))
    frozen.append(R.segment(2, frames=[58] * 60))
    failures = feed(check, frozen)
    assert [f.detail for f in failures] == ["segment 1: frame 58 shown 3 times"]


def test_video_going_back_is_frozen_video() -> None:
    check = FrozenVideo(context(), {})
    replayed = R.segment(3, frames=range(60, 120))  # segment 1's pictures again
    (failure,) = feed(check, [R.segment(2), replayed])
    assert failure.detail == "segment 3: video went back from frame 179 to frame 60"
