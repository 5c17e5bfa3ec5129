"""Hostile segment bytes: analysis ends in a SegmentAnalysis or a clean SegmentDecodeError
(reported as segment_decode_error), never another exception or a hang, and the checks
digest whatever analysis comes out."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.checks.base import SegmentRecord
from streamer.checks.registry import build_checks
from streamer.playback.playlist import Segment
from streamer.playback.segment import SegmentAnalysis, SegmentDecodeError, analyse
from tests.support.check_records import T0, context, real_segment

FUZZ = settings(max_examples=120, deadline=5000, suppress_health_check=[HealthCheck.too_slow])


def _analyse(data: bytes, init: bytes | None = None) -> SegmentAnalysis | None:
    try:
        analysis = analyse(data, init)
    except SegmentDecodeError as exc:
        assert str(exc)
        return None
    assert analysis.frame_count == len(analysis.timecodes) >= 1
    return analysis


def _checks_digest(analysis: SegmentAnalysis | None) -> None:
    if analysis is None:
        return
    checks = build_checks(context())
    for sequence in range(3):  # the same analysis as consecutive segments
        record = SegmentRecord(
            rendition="r",
            segment=Segment(sequence, f"http://o/{sequence}.ts", 2.0, sequence == 1, None),
            listed_at=T0 + sequence,
            downloaded_at=T0 + sequence + 0.1,
            analysis=analysis,
            first_frame=None,
            newest_frame=None,
            newest_frame_sent_at=None,
        )
        for check in checks:
            check.on_segment(record)
            check.on_tick(T0 + sequence)
    for check in checks:
        check.on_end(T0 + 10)


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(data: bytes) -> None:
    _checks_digest(_analyse(data))


@st.composite
def mutated_segments(draw: st.DrawFn) -> bytes:
    data = bytearray(real_segment())
    for _ in range(draw(st.integers(1, 12))):
        action = draw(st.sampled_from(["flip", "zero", "cut", "splice", "duplicate"]))
        at = draw(st.integers(0, len(data) - 1))
        size = draw(st.integers(1, 4096))
        if action == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif action == "zero":
            data[at : at + size] = bytes(len(data[at : at + size]))
        elif action == "cut":
            del data[at : at + size]
        elif action == "splice":
            data[at:at] = draw(st.binary(min_size=1, max_size=512))
        else:
            data[at:at] = data[at : at + size]
        if not data:
            break
    return bytes(data)


@FUZZ
@given(mutated_segments())
def test_damaged_real_segments(data: bytes) -> None:
    _checks_digest(_analyse(data))


@FUZZ
@given(st.integers(0, len(real_segment())))
def test_truncated_real_segment(keep: int) -> None:
    _checks_digest(_analyse(real_segment()[:keep]))


@FUZZ
@given(st.binary(max_size=2048))
def test_hostile_init_section(init: bytes) -> None:
    # fMP4 init sections come from the platform too: they are parsed with the segment.
    _analyse(real_segment(), init)


def test_intact_segment_is_analysed() -> None:
    analysis = _analyse(real_segment())
    assert analysis is not None
    assert analysis.timecodes == tuple(range(30))
    assert analysis.audio is not None and analysis.audio.codec == "aac"
