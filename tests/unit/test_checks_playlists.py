"""Checks that watch playlists: stale_playlist, media_sequence_*, rendition_missing."""

from __future__ import annotations

from dataclasses import replace

from streamer.checks.base import Failure
from streamer.checks.media_sequence_gap import MediaSequenceGap
from streamer.checks.media_sequence_regression import MediaSequenceRegression
from streamer.checks.rendition_missing import RenditionMissing
from streamer.checks.stale_playlist import StalePlaylist
from tests.support.check_records import T0, SyntheticRendition, context, master

R = SyntheticRendition()


def _ticks(check: StalePlaylist, start: float, end: float) -> list[tuple[float, Failure]]:
    found = []
    now = start
    while now <= end:
        found += [(now, f) for f in check.on_tick(now)]
        now += 0.25
    return found


def test_stale_playlist_reported_once_within_the_limit_plus_a_tick() -> None:
    check = StalePlaylist(context(), {})
    for n in range(3):
        check.on_playlist("source", R.playlist(0, n), R.listed(n))
        check.on_segment(R.segment(n))
    last = R.listed(2)
    # The playlist keeps answering with segment 2: nothing new.
    for k in range(1, 30):
        check.on_playlist("source", R.playlist(0, 2), last + 0.2 * k)
    found = _ticks(check, last, last + 10)
    assert len(found) == 1
    at, failure = found[0]
    assert failure.kind == "stale_playlist" and failure.rendition == "source"
    assert last + 3.0 < at <= last + 3.0 + 0.25
    assert "after segment 2" in failure.detail


def test_stale_playlist_rearms_after_a_new_segment() -> None:
    check = StalePlaylist(context(), {"factor": 2})
    check.on_playlist("source", R.playlist(0, 0), T0)
    check.on_segment(R.segment(0))
    assert len(_ticks(check, T0, T0 + 4.0)) == 0  # 2 x 2 s: not yet
    assert len(_ticks(check, T0 + 4.25, T0 + 9)) == 1
    check.on_playlist("source", R.playlist(0, 1), T0 + 9)
    assert len(_ticks(check, T0 + 9, T0 + 14)) == 1


def test_stale_playlist_quiet_before_first_segment_and_after_publishing() -> None:
    ctx = context()
    check = StalePlaylist(ctx, {})
    check.on_playlist("source", R.playlist(0, 0), T0)
    assert _ticks(check, T0, T0 + 20) == []  # no segment of this session yet
    check.on_segment(R.segment(0))
    ctx.publish_stopped_at = T0 + 1
    assert _ticks(check, T0, T0 + 20) == []


def test_steady_segments_are_not_stale() -> None:
    check = StalePlaylist(context(), {})
    failures = []
    for n in range(10):
        check.on_playlist("source", R.playlist(0, n), R.listed(n))
        check.on_segment(R.segment(n))
        failures += _ticks(check, R.listed(n), R.listed(n) + 1.9)
    assert failures == []


def test_media_sequence_regression_once_per_episode() -> None:
    check = MediaSequenceRegression(context(), {})
    assert check.on_playlist("r", R.playlist(5, 9), T0) == []
    assert check.on_playlist("r", R.playlist(6, 10), T0 + 2) == []
    (failure,) = check.on_playlist("r", R.playlist(4, 8), T0 + 3)
    assert failure.kind == "media_sequence_regression" and failure.rendition == "r"
    assert "4..8" in failure.detail and "6..10" in failure.detail
    assert check.on_playlist("r", R.playlist(4, 8), T0 + 4) == []  # same episode
    assert check.on_playlist("r", R.playlist(6, 10), T0 + 5) == []  # recovered
    assert len(check.on_playlist("r", R.playlist(6, 9), T0 + 6)) == 1  # newest went back
    assert check.on_playlist("other", R.playlist(0, 1), T0 + 6) == []  # per rendition


def test_media_sequence_regression_ignores_a_sliding_window_and_empty_playlists() -> None:
    check = MediaSequenceRegression(context(), {})
    failures = []
    for n in range(20):
        failures += check.on_playlist("r", R.playlist(max(0, n - 5), n), T0 + 2 * n)
        failures += check.on_playlist("r", R.playlist(0, -1), T0 + 2 * n + 1)
    assert failures == []


def test_media_sequence_gap_reports_segments_never_listed() -> None:
    check = MediaSequenceGap(context(), {})
    assert check.on_playlist("r", R.playlist(0, 3), T0) == []
    assert check.on_playlist("r", R.playlist(1, 4), T0 + 2) == []
    assert check.on_playlist("r", R.playlist(5, 6), T0 + 4) == []  # 5 = 4 + 1: no gap
    (failure,) = check.on_playlist("r", R.playlist(9, 10), T0 + 6)
    assert failure.kind == "media_sequence_gap" and failure.rendition == "r"
    assert failure.detail.startswith("2 segment(s) never listed")
    # A regression is not a gap, and catching up again after it is not one either.
    assert check.on_playlist("r", R.playlist(7, 8), T0 + 7) == []
    assert check.on_playlist("r", R.playlist(9, 11), T0 + 8) == []


def test_rendition_missing_counts_against_the_first_master() -> None:
    check = RenditionMissing(context(), {})
    full, names = master(("640x360", None), ("256x144", None))
    assert check.on_master(full, names, T0) == []
    assert check.on_master(full, names, T0 + 5) == []
    one, one_names = master(("640x360", None))
    (failure,) = check.on_master(one, one_names, T0 + 10)
    assert (failure.kind, failure.rendition) == ("rendition_missing", "256x144")
    assert check.on_master(one, one_names, T0 + 15) == []  # reported once
    assert check.on_master(full, names, T0 + 20) == []  # back
    assert len(check.on_master(one, one_names, T0 + 25)) == 1  # gone again


def test_rendition_missing_against_expected_renditions() -> None:
    check = RenditionMissing(context(expected_renditions=3), {})
    two, names = master(("640x360", None), ("256x144", None))
    (failure,) = check.on_master(two, names, T0)
    assert failure.rendition is None and "2 of 3" in failure.detail
    assert check.on_master(two, names, T0 + 5) == []


def test_rendition_with_a_new_uri_is_not_missing() -> None:
    check = RenditionMissing(context(), {})
    first, names = master(("640x360", None), ("256x144", None))
    check.on_master(first, names, T0)
    moved = replace(first, variants=tuple(replace(v, uri=v.uri + "?v=2") for v in first.variants))
    assert check.on_master(moved, names, T0 + 5) == []


def test_single_media_playlist_when_renditions_are_expected() -> None:
    check = RenditionMissing(context(expected_renditions=2), {})
    (failure,) = check.on_playlist("source", R.playlist(0, 0), T0)
    assert failure.rendition is None and "single media playlist" in failure.detail
    assert check.on_playlist("source", R.playlist(0, 1), T0 + 2) == []
    assert RenditionMissing(context(), {}).on_playlist("source", R.playlist(0, 0), T0) == []
