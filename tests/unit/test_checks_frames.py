"""frame_drop and frozen_video: frame numbers read from every picture, judged as a viewer
sees them (a freeze is W3C webrtc-stats': no new picture for max(3 frames, 1 frame + 150 ms),
183 ms at 30 fps); anything shorter is counted, never a failure."""

from __future__ import annotations

import math

import pytest

from streamer.checks import validate_settings
from streamer.checks.base import SegmentRecord
from streamer.checks.frame_drop import FrameDrop
from streamer.checks.frames import FreezeRule, advance_limits
from streamer.checks.frozen_video import FrozenVideo
from tests.support.check_records import (
    FPS,
    LOOP,
    SyntheticRendition,
    context,
    feed,
    findings,
    observed,
    replace_analysis,
)

R = SyntheticRendition()
HALF = SyntheticRendition(step=2)  # 15 fps


def held(frames: list[int], frame: int, times: int) -> list[int]:
    """`frames` with `frame` shown `times` times in a row (the later ones shown late)."""
    at = frames.index(frame)
    return frames[:at] + [frame] * times + frames[at + 1 :]


def still_frames(milliseconds: float, frame_seconds: float = 1 / FPS) -> int:
    """Frames a picture is shown for to stand still that long (rounded up)."""
    return math.ceil(milliseconds / 1000 / frame_seconds - 1e-9)


@pytest.mark.parametrize(
    ("step", "limits"),
    [(1.0, (1, 1)), (0.99, (1, 1)), (2.0, (2, 1)), (1.2, (2, 1)), (0.5, (1, 2)), (2.5, (3, 1))],
)
def test_advance_limits_follow_the_frame_step(step: float, limits: tuple[int, int]) -> None:
    assert advance_limits(step) == limits


@pytest.mark.parametrize(
    ("fps", "threshold_ms"), [(30, 183.3), (15, 216.7), (60, 166.7), (10, 300.0)]
)
def test_the_freeze_threshold_is_webrtcs(fps: int, threshold_ms: float) -> None:
    # max(3 x frame, frame + 150 ms): W3C webrtc-stats' freezeCount definition.
    assert FreezeRule().threshold(1 / fps) * 1000 == pytest.approx(threshold_ms, abs=0.1)


@pytest.mark.parametrize("step", [1, 2, 3])
def test_healthy_renditions_at_any_frame_step(step: int) -> None:
    r = SyntheticRendition(step=step)
    records = [r.segment(n) for n in range(5)]
    assert findings(FrameDrop(context(), {}), records) == []
    assert findings(FrozenVideo(context(), {}), records) == []


def test_double_rate_rendition_shows_each_frame_twice() -> None:
    def doubled(n: int) -> list[int]:  # 60 fps of the 30 fps clip
        return [f for f in R.frames(n) for _ in (0, 1)]

    records = [
        replace_analysis(R.segment(n, frames=doubled(n)), frame_duration=1 / 60) for n in (0, 1)
    ]
    assert findings(FrozenVideo(context(), {}), records) == []
    assert findings(FrameDrop(context(), {}), records) == []


def test_a_repeated_first_frame_is_counted_not_failed() -> None:
    # FFmpeg's constant-frame-rate output shows the first frame of a stream twice.
    records = [R.segment(0, frames=held(R.frames(0), 0, 2)), R.segment(1)]
    assert feed(FrozenVideo(context(), {}), records) == []
    assert observed(FrozenVideo(context(), {}), records) == {"repeated_frames": 1}
    assert findings(FrameDrop(context(), {}), records) == []


@pytest.mark.parametrize(("still_ms", "fails"), [(100, False), (150, False), (200, True)])
def test_a_still_picture_fails_from_183_ms_at_30_fps(still_ms: int, fails: bool) -> None:
    times = still_frames(still_ms)  # 150 ms: 5 frames (167 ms); 200 ms: 6 frames
    records = [R.segment(0), R.segment(1, frames=held(R.frames(1), 89, times))]
    failures = feed(FrozenVideo(context(), {}), records)
    assert observed(FrozenVideo(context(), {}), records) == {"repeated_frames": times - 1}
    if not fails:
        assert failures == []
        return
    (failure,) = failures
    assert (failure.kind, failure.rendition) == ("frozen_video", "source")
    assert failure.detail == f"segment 1: frame 89 frozen for {still_ms} ms"


def test_a_freeze_across_a_segment_boundary_is_caught_once() -> None:
    # 100 ms still at the end of segment 0 and 100 ms more at the start of segment 1: each
    # half is no freeze, together they are (200 ms). A longer one is not reported again.
    end = [*range(57), 57, 57, 57]
    start = [57, 57, 57, *range(58, 115)]
    frozen = [R.segment(0, frames=end), R.segment(1, frames=start), R.segment(2)]
    assert feed(FrozenVideo(context(), {}), frozen[:1]) == []
    failures = feed(FrozenVideo(context(), {}), frozen)
    assert [f.detail for f in failures] == ["segment 1: frame 57 frozen for 200 ms"]
    longer = [R.segment(0, frames=end), R.segment(1, frames=[57] * 60), R.segment(2)]
    failures = feed(FrozenVideo(context(), {}), longer)
    assert [f.detail for f in failures] == ["segment 1: frame 57 frozen for 2100 ms so far"]


def test_a_freeze_is_not_joined_across_a_missing_segment() -> None:
    end = [*range(57), 57, 57, 57]
    start = [117, 117, 117, *range(120, 177)]
    records = [R.segment(0, frames=end), R.segment(2, frames=start)]
    assert feed(FrozenVideo(context(), {}), records) == []


def test_half_rate_rendition_is_not_frozen_and_has_its_own_threshold() -> None:
    # 15 fps shows every other clip frame for 67 ms: normal. Its threshold is 217 ms.
    healthy = [HALF.segment(n) for n in range(3)]
    assert findings(FrozenVideo(context(), {}), healthy) == []
    three = [HALF.segment(0), HALF.segment(1, frames=held(HALF.frames(1), 80, 3))]  # 200 ms
    assert feed(FrozenVideo(context(), {}), three) == []
    assert observed(FrozenVideo(context(), {}), three) == {"repeated_frames": 2}
    four = [HALF.segment(0), HALF.segment(1, frames=held(HALF.frames(1), 80, 4))]  # 267 ms
    (failure,) = feed(FrozenVideo(context(), {}), four)
    assert failure.detail == "segment 1: frame 80 frozen for 267 ms"


def test_double_rate_rendition_freezes_by_time_not_frame_count() -> None:
    def at_60fps(shown: dict[int, int]) -> list[SegmentRecord]:
        """Segments 0 and 1 at 60 fps: every picture twice, or as often as `shown` says."""
        return [
            replace_analysis(
                R.segment(n, frames=[f for f in R.frames(n) for _ in range(shown.get(f, 2))]),
                frame_duration=1 / 60,
            )
            for n in (0, 1)
        ]

    # Picture 70 shown 4 times (67 ms, 2 frames more than normal): counted.
    short = at_60fps({70: 4})
    assert feed(FrozenVideo(context(), {}), short) == []
    assert observed(FrozenVideo(context(), {}), short) == {"repeated_frames": 2}
    # Shown 12 times: 200 ms, beyond the 183 ms of its 30 pictures a second.
    (failure,) = feed(FrozenVideo(context(), {}), at_60fps({70: 12}))
    assert failure.detail == "segment 1: frame 70 frozen for 200 ms"


def test_tuned_freeze_threshold() -> None:
    records = [R.segment(0), R.segment(1, frames=held(R.frames(1), 89, 6))]  # 200 ms
    assert feed(FrozenVideo(context(), {"min_freeze_ms": 500}), records) == []
    strict = FrozenVideo(context(), {"min_freeze_ms": 0, "min_freeze_frames": 2})
    (failure,) = feed(strict, [R.segment(0), R.segment(1, frames=held(R.frames(1), 89, 2))])
    assert failure.detail == "segment 1: frame 89 frozen for 67 ms"


def test_max_repeats_is_refused_naming_its_replacement() -> None:
    with pytest.raises(ValueError, match="max_repeats is no longer supported; use min_freeze_ms"):
        validate_settings({"frozen_video": {"max_repeats": 1}})
    with pytest.raises(ValueError, match="max_missing is no longer supported; use min_gap_ms"):
        validate_settings({"frame_drop": {"max_missing": 3}})


def test_a_one_frame_step_back_is_counted_a_replay_fails() -> None:
    # A transcoder's one-frame step back: 70, 71, 70, 72 ...
    frames = R.frames(1)
    jitter = [*frames[:12], 70, *frames[12:]]  # 60..71, then 70 again
    records = [R.segment(0), R.segment(1, frames=jitter)]
    assert feed(FrozenVideo(context(), {}), records) == []
    assert observed(FrozenVideo(context(), {}), records) == {"repeated_frames": 1}
    assert findings(FrameDrop(context(), {}), records) == []  # 71 was shown before 70 again
    # Segment 1's pictures again at segment 3: two seconds of video shown again.
    replayed = R.segment(3, frames=range(60, 120))
    (failure,) = feed(FrozenVideo(context(), {}), [R.segment(2), replayed])
    assert failure.detail == "segment 3: video went back from frame 179 to frame 60 (119 frames)"


@pytest.mark.parametrize(("missing", "fails"), [(1, False), (4, False), (5, True), (10, True)])
def test_frame_drop_fails_from_a_hole_of_183_ms(missing: int, fails: bool) -> None:
    frames = [f for f in R.frames(1) if not 70 <= f < 70 + missing]
    records = [R.segment(0), R.segment(1, frames=frames)]
    failures = feed(FrameDrop(context(), {}), records)
    assert observed(FrameDrop(context(), {}), records) == {"dropped_frames": missing}
    if not fails:
        assert failures == []
        return
    (failure,) = failures
    assert (failure.kind, failure.rendition) == ("frame_drop", "source")
    gap = round((missing + 1) * 1000 / FPS)
    assert failure.detail == (
        f"segment 1: {missing} frame(s) missing between frames 69 and {70 + missing} "
        f"({gap} ms without a new picture)"
    )


def test_frame_drop_across_segments_and_tuning() -> None:
    frames = list(range(65, 120))  # 60..64 never shown: 5 frames, 200 ms
    records = [R.segment(0), R.segment(1, frames=frames)]
    assert len(feed(FrameDrop(context(), {}), records)) == 1
    assert feed(FrameDrop(context(), {"min_gap_ms": 300}), records) == []
    strict = FrameDrop(context(), {"min_gap_ms": 0, "min_gap_frames": 0})
    one = [R.segment(0), R.segment(1, frames=list(range(61, 120)))]
    assert len(feed(strict, one)) == 1  # any missing frame


def test_frame_drop_at_half_rate_counts_rendition_frames() -> None:
    frames = [f for f in HALF.frames(1) if f not in (80, 82)]  # 2 frames: 200 ms
    records = [HALF.segment(0), HALF.segment(1, frames=frames)]
    assert feed(FrameDrop(context(), {}), records) == []
    assert observed(FrameDrop(context(), {}), records) == {"dropped_frames": 2}
    frames = [f for f in HALF.frames(1) if f not in (80, 82, 84)]  # 3 frames: 267 ms
    (failure,) = feed(FrameDrop(context(), {}), [HALF.segment(0), HALF.segment(1, frames=frames)])
    assert "3 frame(s) missing between frames 78 and 86 (267 ms" in failure.detail


def test_unreadable_frames_are_neither_drops_nor_freezes() -> None:
    codes = [None if 10 <= i < 20 else (60 + i) for i in range(60)]
    records = [R.segment(0), R.segment(1, codes=codes)]
    assert findings(FrameDrop(context(), {}), records) == []
    assert findings(FrozenVideo(context(), {}), records) == []


def test_not_compared_across_a_missing_segment() -> None:
    records = [R.segment(0), R.segment(2)]
    assert findings(FrameDrop(context(), {}), records) == []


def test_frames_wrap_at_the_clip_loop() -> None:
    start = LOOP // 60 - 1  # the segment with the clip's last frames
    records = [R.segment(start), R.segment(start + 1)]  # codes go 1799 -> 0
    assert findings(FrameDrop(context(), {}), records) == []
    assert findings(FrozenVideo(context(), {}), records) == []


def test_a_freeze_then_a_skip_is_both_a_freeze_and_a_drop() -> None:
    # A live stream that freezes for 367 ms, then skips what it missed to catch up.
    frames = list(range(60, 90)) + [89] * 10 + list(range(100, 120))
    records = [R.segment(0), R.segment(1, frames=frames)]
    (freeze,) = feed(FrozenVideo(context(), {}), records)
    assert freeze.detail == "segment 1: frame 89 frozen for 367 ms"
    (drop,) = feed(FrameDrop(context(), {}), records)
    assert "10 frame(s) missing between frames 89 and 100" in drop.detail


def test_a_replayed_segment_counts_its_frames_and_what_it_hid() -> None:
    # Segment 3 shows segment 1's pictures again; segment 4 is live again: the viewer saw
    # 60 pictures twice and never saw segment 3's own 60.
    records = [R.segment(2), R.segment(3, frames=range(60, 120)), R.segment(4)]
    assert observed(FrozenVideo(context(), {}), records) == {"repeated_frames": 60}
    assert observed(FrameDrop(context(), {}), records) == {"dropped_frames": 60}
    (drop,) = feed(FrameDrop(context(), {}), records)
    assert drop.detail.startswith("segment 4: 60 frame(s) missing between frames 179 and 240")


def test_a_step_back_then_on_at_an_offset_repeats_until_past_the_newest() -> None:
    # Back 10 frames at 75, then on from there: 65..75 are shown twice, then new pictures.
    frames = [*range(60, 76), *range(65, 120)]
    records = [R.segment(0), R.segment(1, frames=frames)]
    (failure,) = feed(FrozenVideo(context(), {}), records)  # 333 ms of video again
    assert failure.detail == "segment 1: video went back from frame 75 to frame 65 (10 frames)"
    assert observed(FrozenVideo(context(), {}), records) == {"repeated_frames": 11}
    assert findings(FrameDrop(context(), {}), records) == []


# Keyframe decoding: one readable frame per segment (its keyframe), the others known by
# their packets only.


def keyframes_only(frames: list[int]) -> list[int | None]:
    return [frames[0] % LOOP, *([None] * (len(frames) - 1))]


def keyframe_segment(sequence: int, frames: list[int] | None = None) -> SegmentRecord:
    shown = frames if frames is not None else R.frames(sequence)
    return R.segment(sequence, frames=shown, codes=keyframes_only(shown))


def test_keyframe_decoding_of_a_healthy_rendition_finds_nothing() -> None:
    records = [keyframe_segment(n) for n in range(4)]
    assert findings(FrozenVideo(context(), {}), records) == []
    assert findings(FrameDrop(context(), {}), records) == []


def test_keyframe_decoding_sees_a_freeze_that_reaches_a_keyframe() -> None:
    # The picture stood still for 10 frames in segment 1 and the video went on from where
    # it stopped: segment 2's keyframe shows frame 110 where frame 120 is due.
    late = list(range(110, 170))
    records = [keyframe_segment(0), keyframe_segment(1), keyframe_segment(2, late)]
    (freeze,) = feed(FrozenVideo(context(), {}), records)
    assert freeze.detail == (
        "segment 2: the picture stood still for at least 367 ms between frames 60 and 110"
    )
    assert observed(FrozenVideo(context(), {}), records) == {"repeated_frames": 10}
    assert findings(FrameDrop(context(), {}), records) == []


def test_keyframe_decoding_counts_a_short_stall_without_failing() -> None:
    late = list(range(117, 177))  # 3 frames behind: 133 ms, below 183 ms
    records = [keyframe_segment(0), keyframe_segment(1), keyframe_segment(2, late)]
    assert feed(FrozenVideo(context(), {}), records) == []
    assert observed(FrozenVideo(context(), {}), records) == {"repeated_frames": 3}


def test_keyframe_decoding_sees_dropped_frames_by_their_missing_packets() -> None:
    # 10 frames of segment 1 never packaged: 50 packets, then segment 2's keyframe is 60
    # frames on: 10 more than the packets explain.
    dropped = [f for f in R.frames(1) if not 70 <= f < 80]
    records = [keyframe_segment(0), keyframe_segment(1, dropped), keyframe_segment(2)]
    (drop,) = feed(FrameDrop(context(), {}), records)
    assert "10 frame(s) missing between frames 60 and 120" in drop.detail
    assert findings(FrozenVideo(context(), {}), records) == []
