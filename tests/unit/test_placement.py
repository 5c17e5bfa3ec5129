"""Frame placement against the send log, from small synthetic renditions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from streamer.placement import Placement, Unplaced, place
from streamer.playback.segment import SegmentAnalysis
from streamer.publish.sendlog import SendLog
from tests.support.check_records import FPS, LOOP, T0, SyntheticRendition


def _send_log(frames: int, *, skip: frozenset[int] = frozenset()) -> SendLog:
    log = SendLog(LOOP, FPS)
    for frame in range(frames):
        if frame not in skip:
            log.record(frame, T0 + frame / FPS)
    return log


def _analysis(rendition: SyntheticRendition, sequence: int) -> SegmentAnalysis:
    return rendition.segment(sequence).analysis


def test_full_rate_segment_is_placed_on_its_frames() -> None:
    analysis = _analysis(SyntheticRendition(), 3)  # frames 180..239
    placed = place(analysis, _send_log(400), T0 + 9.0, FPS)
    assert placed == Placement(first_frame=180, newest_frame=239, newest_sent_at=T0 + 239 / FPS)


def test_half_rate_rendition_is_placed_by_pts() -> None:
    analysis = _analysis(SyntheticRendition(step=2), 3)  # frames 180, 182, .. 238
    placed = place(analysis, _send_log(400), T0 + 9.0, FPS)
    assert isinstance(placed, Placement)
    assert (placed.first_frame, placed.newest_frame) == (180, 238)


def test_unreadable_last_frames_are_placed_by_their_distance_to_a_readable_one() -> None:
    rendition = SyntheticRendition()
    codes = [f % LOOP for f in range(180, 230)] + [None] * 10
    analysis = rendition.segment(3, codes=codes).analysis
    placed = place(analysis, _send_log(400), T0 + 9.0, FPS)
    assert isinstance(placed, Placement)
    assert (placed.first_frame, placed.newest_frame) == (180, 239)
    assert placed.newest_sent_at == pytest.approx(T0 + 239 / FPS)


def test_without_pts_one_decoded_frame_is_one_clip_frame() -> None:
    analysis = replace(_analysis(SyntheticRendition(), 1), frame_pts=())
    placed = place(analysis, _send_log(200), T0 + 5.0, FPS)
    assert isinstance(placed, Placement)
    assert (placed.first_frame, placed.newest_frame) == (60, 119)


def test_a_looped_clip_frame_resolves_to_the_copy_sent_last_before_it_was_seen() -> None:
    # Clip frame 10 was sent as absolute frames 10 and LOOP + 10.
    log = _send_log(LOOP + 100)
    codes = [10]
    analysis = replace(
        _analysis(SyntheticRendition(), 0),
        timecodes=tuple(codes),
        frame_count=1,
        frame_pts=(1.0,),
        first_pts=1.0,
        last_pts=1.0,
    )
    seen_late = T0 + (LOOP + 20) / FPS
    placed = place(analysis, log, seen_late, FPS)
    assert isinstance(placed, Placement) and placed.newest_frame == LOOP + 10
    seen_early = T0 + 20 / FPS
    placed = place(analysis, log, seen_early, FPS)
    assert isinstance(placed, Placement) and placed.newest_frame == 10


def test_a_frame_never_sent_before_it_was_seen_is_foreign() -> None:
    analysis = _analysis(SyntheticRendition(), 5)  # frames 300..359
    assert place(analysis, _send_log(200), T0 + 20.0, FPS) is Unplaced.FOREIGN
    # Sent, but only after the segment was listed: an earlier session's segment.
    assert place(analysis, _send_log(400), T0 + 1.0, FPS) is Unplaced.FOREIGN


def test_no_readable_timecode_is_unreadable() -> None:
    rendition = SyntheticRendition()
    analysis = rendition.segment(2, codes=[None] * 60).analysis
    assert place(analysis, _send_log(400), T0 + 9.0, FPS) is Unplaced.UNREADABLE


def test_newest_frame_withheld_by_the_publisher_falls_back_to_the_resolved_frame() -> None:
    # The newest placed frame was never sent (skipped): its send time is unknown, the
    # newest readable frame's is the best bound.
    analysis = _analysis(SyntheticRendition(), 3)
    codes = [f % LOOP for f in range(180, 239)] + [None]
    analysis = replace(analysis, timecodes=tuple(codes))
    placed = place(analysis, _send_log(400, skip=frozenset({239})), T0 + 9.0, FPS)
    assert isinstance(placed, Placement)
    assert placed.newest_frame == 239 and placed.newest_sent_at == T0 + 238 / FPS
