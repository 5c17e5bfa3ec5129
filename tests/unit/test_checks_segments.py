"""Checks on each analysed segment: discontinuity, duration_mismatch, timestamp_gap,
codec_mismatch."""

from __future__ import annotations

from dataclasses import replace

import pytest

from streamer.checks.codec_mismatch import CodecMismatch, declared_codecs
from streamer.checks.common import PTS_WRAP_SECONDS
from streamer.checks.discontinuity import Discontinuity
from streamer.checks.duration_mismatch import DurationMismatch
from streamer.checks.timestamp_gap import TimestampGap
from tests.support.check_records import (
    T0,
    SyntheticRendition,
    context,
    feed,
    master,
    replace_analysis,
)

R = SyntheticRendition()


def test_healthy_segments_pass_every_segment_check() -> None:
    for check in (
        Discontinuity(context(), {}),
        DurationMismatch(context(), {}),
        TimestampGap(context(), {}),
    ):
        check.on_playlist("source", R.playlist(0, 9), T0)
        assert feed(check, [R.segment(n) for n in range(10)]) == []
        assert check.on_end(T0 + 30) == []


def test_discontinuity_on_the_first_segment_is_the_stream_start() -> None:
    check = Discontinuity(context(), {})
    # The session may join late: its first segment is not sequence 0.
    assert feed(check, [R.segment(4, discontinuity=True), R.segment(5)]) == []
    (failure,) = check.on_segment(R.segment(6, discontinuity=True))
    assert (failure.kind, failure.rendition) == ("discontinuity", "source")
    assert "segment 6" in failure.detail
    other = SyntheticRendition("256x144")
    assert check.on_segment(other.segment(6, discontinuity=True)) == []  # its first


def test_duration_mismatch_extinf_against_media() -> None:
    check = DurationMismatch(context(), {})
    check.on_playlist("source", R.playlist(0, 5), T0)
    short = R.segment(1, frames=range(60, 100))  # 40 frames: 1.333 s of media
    assert feed(check, [R.segment(0), short]) == []  # judged when the next one arrives
    (failure,) = check.on_segment(R.segment(2))
    assert failure.kind == "duration_mismatch" and "EXTINF 2.000s" in failure.detail
    assert "1.333s" in failure.detail
    # Within the tolerance: 0.2 s off is fine by default, not with a tighter setting.
    near = R.segment(3, extinf=2.2)
    assert feed(check, [near, R.segment(4)]) == []
    strict = DurationMismatch(context(), {"tolerance_seconds": 0.1})
    assert len(feed(strict, [near, R.segment(4)])) == 1


def test_duration_mismatch_segment_longer_than_target() -> None:
    check = DurationMismatch(context(), {"tolerance_seconds": 5})
    check.on_playlist("source", R.playlist(0, 5), T0)
    # EXTINF 2.49 rounds to 2: allowed by RFC 8216 with a 2 s target; 2.5 rounds to 3.
    assert feed(check, [R.segment(0, extinf=2.49), R.segment(1)]) == []
    failures = feed(check, [R.segment(2, extinf=2.6), R.segment(3)])
    assert [f.detail for f in failures] == [
        "segment 2: EXTINF 2.600s exceeds the target duration 2s"
    ]


def test_duration_mismatch_never_judges_the_final_segment() -> None:
    check = DurationMismatch(context(), {})
    check.on_playlist("source", R.playlist(0, 5), T0)
    cut = R.segment(3, frames=range(180, 200), extinf=1.967)  # cut short by the stop
    assert feed(check, [R.segment(2), cut]) == []
    assert check.on_end(T0 + 10) == []


def test_timestamp_gap_hole_and_overlap() -> None:
    check = TimestampGap(context(), {})
    segments = [R.segment(0), R.segment(1), R.segment(2, pts_shift=0.5), R.segment(3)]
    failures = feed(check, segments)
    assert [(f.kind, f.rendition) for f in failures] == [("timestamp_gap", "source")] * 2
    assert "0.500s hole" in failures[0].detail and "0.500s overlap" in failures[1].detail


def test_timestamp_gap_tolerance_discontinuity_sequence_gap_and_wrap() -> None:
    check = TimestampGap(context(), {})
    assert feed(check, [R.segment(0), R.segment(1, pts_shift=0.09)]) == []  # within 100 ms
    # A discontinuity may restart the timeline; a skipped segment is another check's.
    assert check.on_segment(R.segment(2, pts_shift=50, discontinuity=True)) == []
    assert check.on_segment(R.segment(4, pts_shift=50)) == []
    # The 33-bit MPEG-TS clock wraps: continuous across the wrap is no gap.
    wrapped = R.segment(5, pts_shift=50 - PTS_WRAP_SECONDS)
    assert check.on_segment(wrapped) == []


@pytest.mark.parametrize(
    ("codecs", "expected"),
    [
        ("avc1.64001f,mp4a.40.2", {"video": {"h264"}, "audio": {"aac"}}),
        ("hvc1.1.6.L93.B0", {"video": {"hevc"}}),
        ("mp4a.40.34", {"audio": {"mp3"}}),
        ("AVC1.4D401E , EC-3", {"video": {"h264"}, "audio": {"eac3"}}),
        ("stpp.ttml.im1t,wvtt", {}),
        ("", {}),
    ],
)
def test_declared_codecs(codecs: str, expected: dict[str, set[str]]) -> None:
    assert declared_codecs(codecs) == expected


def test_codec_mismatch_against_the_master() -> None:
    check = CodecMismatch(context(), {})
    hd = SyntheticRendition("1280x720")
    top, names = master(("1280x720", "hvc1.1.6.L93.B0,mp4a.40.2"), ("640x360", None))
    check.on_master(top, names, T0)
    failures = check.on_segment(hd.segment(0))
    assert {f.rendition for f in failures} == {"1280x720"}
    assert sorted(f.detail for f in failures) == [
        "master declares RESOLUTION 1280x720, segment 0 has 640x360",
        "master declares video codec hevc, segment 0 has h264",
    ]
    assert check.on_segment(hd.segment(1)) == []  # reported once
    # 640x360 declares no codecs and its resolution matches.
    assert check.on_segment(SyntheticRendition("640x360").segment(0)) == []


def test_codec_mismatch_audio_and_matching_declarations() -> None:
    check = CodecMismatch(context(), {})
    top, names = master(("640x360", "avc1.64001e,ac-3"), ("256x144", "avc1.42c00c,mp4a.40.5"))
    check.on_master(top, names, T0)
    (failure,) = check.on_segment(SyntheticRendition("640x360").segment(0))
    assert failure.detail == "master declares audio codec ac3, segment 0 has aac"
    low = SyntheticRendition("256x144", width=256, height=144)
    assert check.on_segment(low.segment(0)) == []
    # No master (single media playlist): nothing declared, nothing to compare.
    assert CodecMismatch(context(), {}).on_segment(R.segment(0)) == []


def test_codec_mismatch_reports_again_when_the_actual_value_changes() -> None:
    check = CodecMismatch(context(), {})
    top, names = master(("640x360", None))
    check.on_master(top, names, T0)
    r = SyntheticRendition("640x360")
    assert check.on_segment(r.segment(0)) == []
    small = replace_analysis(r.segment(1), width=320, height=180)
    assert len(check.on_segment(small)) == 1
    assert check.on_segment(replace(small, segment=replace(small.segment, sequence=2))) == []
    assert len(check.on_segment(replace_analysis(r.segment(3), width=480, height=270))) == 1
