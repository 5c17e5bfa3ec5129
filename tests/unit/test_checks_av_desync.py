"""av_desync with segments cut where a burst starts: every burst at a segment's start (FFmpeg's
1 s fMP4 segments, cut at every second) must still be measured, from the quiet the previous
segment ended with; a segment cut inside a burst must not make one up."""

from __future__ import annotations

import io
from dataclasses import replace
from functools import cache

import av
import pytest

from streamer.checks import validate_settings
from streamer.checks.av_desync import AvDesync
from streamer.playback.segment import SegmentAnalysis, analyse, joined_onset
from streamer.testsignal.clip import ClipSpec, load_clip
from tests.support.check_records import SyntheticRendition, context, feed

R = SyntheticRendition()


@cache
def cut(video_from: float, video_to: float, audio_from: float, audio_to: float) -> bytes:
    """An MPEG-TS segment of the clip: video packets in [video_from, video_to), audio
    packets that start at or after `audio_from` and end by `audio_to` (a packager's cut)."""
    clip = load_clip(ClipSpec())
    out_buffer = io.BytesIO()
    with av.open(str(clip.path)) as src, av.open(out_buffer, "w", format="mpegts") as out:
        video, audio = src.streams.video[0], src.streams.audio[0]
        video_out = out.add_stream_from_template(video)
        audio_out = out.add_stream_from_template(audio)
        for packet in src.demux(video, audio):
            if packet.pts is None or packet.dts is None or packet.time_base is None:
                continue
            start = float(packet.pts * packet.time_base)
            if packet.stream.index == video.index:
                if not video_from <= start < video_to:
                    continue
                packet.stream = video_out
            else:
                end = start + float((packet.duration or 0) * packet.time_base)
                if start < audio_from - 1e-6 or end > audio_to + 1e-6:
                    continue
                packet.stream = audio_out
            out.mux(packet)
    return out_buffer.getvalue()


def marker(analysis: SegmentAnalysis, frame: int) -> float:
    (pts,) = [p for p, c in zip(analysis.frame_pts, analysis.timecodes, strict=True) if c == frame]
    return pts


def test_a_burst_at_a_segment_start_is_found_from_the_quiet_before_it() -> None:
    # Cut at 2 s: the burst of frame 60 starts segment B's audio (its first packet starts
    # 16 ms before it, less than the 50 ms of quiet an onset needs inside one segment).
    a = analyse(cut(0.0, 2.0, 0.0, 2.0))
    b = analyse(cut(2.0, 4.0, 2.0 - 0.03, 4.0))
    assert a.audio is not None and b.audio is not None
    assert all(abs(onset - marker(b, 60)) > 0.5 for onset in b.audio.burst_onsets)
    onset = joined_onset(a.audio, b.audio)
    assert onset is not None and abs(onset - marker(b, 60)) < 0.012


def test_a_segment_cut_inside_a_burst_does_not_make_up_an_onset() -> None:
    # The burst of frame 60 starts in A's last audio packet: A finds it; B starts loud.
    a = analyse(cut(0.0, 2.0, 0.0, 2.03))
    b = analyse(cut(2.0, 4.0, 2.03, 4.0))
    assert a.audio is not None and b.audio is not None
    assert any(abs(onset - marker(b, 60)) < 0.005 for onset in a.audio.burst_onsets)
    assert joined_onset(a.audio, b.audio) is None


def test_joined_only_along_one_unbroken_audio_timeline() -> None:
    a = analyse(cut(0.0, 2.0, 0.0, 2.0))
    b = analyse(cut(2.0, 4.0, 2.0 - 0.03, 4.0))
    assert a.audio is not None and b.audio is not None
    holed = replace(b.audio, first_pts=b.audio.first_pts + 0.1)
    assert joined_onset(a.audio, holed) is None


def bursts_at_segment_starts(offset: float) -> list:  # type: ignore[type-arg]
    """Segments whose every burst is at their start: measured only through the join."""
    records = []
    for n in range(4):
        audio = R.audio(n)
        records.append(
            R.segment(
                n,
                audio=replace(
                    audio,
                    burst_onsets=(),
                    leading_loud=audio.first_pts + offset,
                    quiet_end_seconds=0.9,
                ),
            )
        )
    return records


def test_av_desync_measures_bursts_only_a_join_finds() -> None:
    assert feed(AvDesync(context(), {}), bursts_at_segment_starts(0.0)) == []
    late = bursts_at_segment_starts(0.03)
    (failure,) = feed(AvDesync(context(), {"max_late_seconds": 0.02}), late)
    assert failure.detail == "audio 30 ms late against video"


def test_threshold_seconds_is_refused_naming_its_replacement() -> None:
    with pytest.raises(ValueError, match="threshold_seconds is no longer supported; use max_early"):
        validate_settings({"av_desync": {"threshold_seconds": 0.1}})
