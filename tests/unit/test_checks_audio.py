"""audio_missing and av_desync."""

from __future__ import annotations

from dataclasses import replace

import pytest

from streamer.checks.audio_missing import AudioMissing
from streamer.checks.av_desync import AvDesync
from streamer.playback import segment
from streamer.playback.segment import analyse
from tests.support.check_records import SyntheticRendition, context, feed, real_segment

R = SyntheticRendition()


def test_healthy_audio() -> None:
    records = [R.segment(n) for n in range(6)]
    assert feed(AudioMissing(context(), {}), records) == []
    assert feed(AvDesync(context(), {}), records) == []


def test_segment_without_audio_reported_once_until_audio_returns() -> None:
    check = AudioMissing(context(), {})
    silent = [R.segment(n, audio=None) for n in (1, 2)]
    failures = feed(check, [R.segment(0), *silent, R.segment(3), R.segment(4, audio=None)])
    assert [(f.kind, f.rendition, f.detail) for f in failures] == [
        ("audio_missing", "source", "segment 1 has no audio"),
        ("audio_missing", "source", "segment 4 has no audio"),
    ]


def test_short_silent_tail_segment_is_not_a_failure() -> None:
    # A publisher stopping right after a keyframe leaves a last segment of one video frame
    # and no audio: 33 ms of silence at the very end of the stream, which nobody hears.
    check = AudioMissing(context(), {})
    first_tail_frame = 3 * round(2.0 * 30)
    tail = R.segment(3, frames=[first_tail_frame], audio=None)
    assert feed(check, [R.segment(n) for n in range(3)] + [tail]) == []


def test_short_silences_add_up_to_an_audible_hole() -> None:
    check = AudioMissing(context(), {})
    one_frame = R.segment(3, frames=[180], audio=None)
    # Segment 4's audio starts 0.2 s after segment 2's ended: the one-frame segment between
    # them had none.
    late = replace(R.audio(4), first_pts=R.audio(3).first_pts + 0.2)
    failures = feed(check, [R.segment(2), one_frame, R.segment(4, audio=late)])
    assert [f.detail for f in failures] == ["segment 4: 0.200s of audio missing since segment 3"]


def test_silent_first_segment_is_measured_by_its_own_length() -> None:
    assert [f.detail for f in feed(AudioMissing(context(), {}), [R.segment(5, audio=None)])] == [
        "segment 5 has no audio"
    ]


def test_audio_hole_inside_a_segment() -> None:
    check = AudioMissing(context(), {})
    holed = replace(R.audio(1), gap_seconds=0.3)
    (failure,) = feed(check, [R.segment(0), R.segment(1, audio=holed)])
    assert failure.detail == "segment 1: 0.300s hole in audio"
    assert (
        feed(AudioMissing(context(), {"max_gap_seconds": 0.5}), [R.segment(1, audio=holed)]) == []
    )


def test_audio_missing_between_segments() -> None:
    check = AudioMissing(context(), {})
    late = replace(R.audio(1), first_pts=R.audio(1).first_pts + 0.5)
    (failure,) = feed(check, [R.segment(0), R.segment(1, audio=late)])
    assert failure.detail == "segment 1: 0.500s of audio missing since segment 0"
    # Not compared across a skipped segment or a discontinuity.
    assert feed(AudioMissing(context(), {}), [R.segment(0), R.segment(2, pts_shift=3)]) == []


@pytest.mark.parametrize("offset", [0.3, -0.3, 0.15, -0.44, 0.13, -0.05])
def test_av_desync_measured_from_bursts_and_marker_frames(offset: float) -> None:
    shifted = SyntheticRendition(audio_offset=offset)
    failures = feed(AvDesync(context(), {}), [shifted.segment(n) for n in range(4)])
    assert [(f.kind, f.rendition) for f in failures] == [("av_desync", "source")]
    direction = "late" if offset > 0 else "early"
    assert failures[0].detail == f"audio {abs(offset) * 1000:.0f} ms {direction} against video"


@pytest.mark.parametrize("offset", [0.05, 0.12, -0.04, 0.6])
def test_av_desync_within_threshold_or_unmeasurable(offset: float) -> None:
    # ITU-R BT.1359 detectability: audio 45 ms early, 125 ms late.
    # 0.6 s pairs each burst with the next second's frame: 0.4 s early... which is the
    # same picture as a real 0.4 s lead. Bursts 1 s apart measure only +-0.45 s.
    shifted = SyntheticRendition(audio_offset=offset)
    failures = feed(AvDesync(context(), {}), [shifted.segment(n) for n in range(4)])
    if offset == 0.6:
        assert [f.detail for f in failures] == ["audio 400 ms early against video"]
    else:
        assert failures == []


def test_av_desync_needs_min_count_offsets_in_a_row() -> None:
    check = AvDesync(context(), {"min_count": 3})
    one_bad = replace(
        R.audio(1), burst_onsets=(R.audio(1).burst_onsets[0] + 0.3, R.audio(1).burst_onsets[1])
    )
    records = [R.segment(0), R.segment(1, audio=one_bad), R.segment(2), R.segment(3)]
    assert feed(check, records) == []
    assert feed(AvDesync(context(), {"min_count": 1}), records) != []


def test_av_desync_once_per_episode_and_rearmed() -> None:
    check = AvDesync(context(), {})
    late = SyntheticRendition(audio_offset=0.3)
    records = [late.segment(n) for n in range(4)] + [R.segment(n) for n in range(4, 6)]
    records += [late.segment(n) for n in range(6, 9)]
    assert len(feed(check, records)) == 2


def test_av_desync_skips_bursts_without_their_frame() -> None:
    # The frame due with the burst was dropped (or unreadable): nothing to pair with.
    frames = [f for f in R.frames(1) if f % 30]
    records = [R.segment(0), R.segment(1, frames=frames), R.segment(2)]
    assert feed(AvDesync(context(), {"min_count": 1}), records) == []


def test_av_desync_pairs_across_segment_boundaries() -> None:
    # Audio 0.3 s early: the burst for segment 1's first frame is in segment 0's audio, and
    # can only be paired once segment 1's video is there.
    base = R.pts_origin
    first = replace(R.audio(0), burst_onsets=(base + 0.7, base + 1.7))
    second = replace(R.audio(1), burst_onsets=())
    check = AvDesync(context(), {"min_count": 2})
    assert check.on_segment(R.segment(0, audio=first)) == []
    (failure,) = check.on_segment(R.segment(1, audio=second))
    assert failure.detail == "audio 300 ms early against video"


def test_segment_analysis_finds_the_bursts_at_their_frames() -> None:
    analysis = analyse(real_segment(3.0))
    assert analysis.audio is not None
    markers = [
        pts
        for pts, code in zip(analysis.frame_pts, analysis.timecodes, strict=True)
        if code is not None and code % 30 == 0
    ]
    # The burst at 0 s starts with the audio: no quiet before it, so it is not an onset. The
    # audio runs a little past the last frame: the burst at 3 s has no frame here.
    onsets = analysis.audio.burst_onsets
    assert len(markers) == 3 and len(onsets) == 3
    for onset, marker in zip(onsets[:2], markers[1:], strict=True):
        assert abs(onset - marker) < 0.005


def test_audio_analysis_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    # A hostile segment may carry hours of audio: its envelope stops growing at the cap.
    monkeypatch.setattr(segment, "_MAX_AUDIO_WINDOWS", 1500)
    analysis = analyse(real_segment(3.0))
    assert analysis.audio is not None and len(analysis.audio.burst_onsets) == 1
    assert analysis.audio.duration > 2.9  # the packets are still all accounted for
