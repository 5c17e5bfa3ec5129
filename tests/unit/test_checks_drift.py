"""rendition_drift: the same frame listed at very different times in two renditions."""

from __future__ import annotations

from streamer.checks.rendition_drift import RenditionDrift
from tests.support.check_records import SyntheticRendition, context

HIGH = SyntheticRendition("640x360")
LOW = SyntheticRendition("256x144", width=256, height=144)


def _run(
    check: RenditionDrift,
    lag: float,
    segments: range,
    late: SyntheticRendition = LOW,
    early: SyntheticRendition = HIGH,
) -> list[tuple[str | None, str]]:
    found = []
    for name in (early.name, late.name):
        check.on_playlist(name, early.playlist(0, -1), early.listed(0) - 2)
    for n in segments:
        check.on_playlist(early.name, early.playlist(0, n), early.listed(n))
        found += check.on_segment(early.segment(n))
        check.on_playlist(late.name, late.playlist(0, n), late.listed(n) + lag)
        found += check.on_segment(late.segment(n, listed_at=late.listed(n) + lag))
    return [(f.rendition, f.detail) for f in found]


def test_aligned_renditions_do_not_drift() -> None:
    assert _run(RenditionDrift(context(), {}), 0.3, range(8)) == []


def test_lagging_rendition_reported_once() -> None:
    failures = _run(RenditionDrift(context(), {}), 3.0, range(8))
    assert failures == [("256x144", "frame 59 listed 3.0s after rendition 640x360 listed it")]


def test_the_later_rendition_is_reported_whichever_lists_first() -> None:
    failures = _run(RenditionDrift(context(), {}), 3.0, range(4), late=HIGH, early=LOW)
    assert [rendition for rendition, _ in failures] == ["640x360"]


def test_drift_threshold_scales_with_target_duration() -> None:
    assert _run(RenditionDrift(context(), {"factor": 2}), 3.0, range(6)) == []
    assert len(_run(RenditionDrift(context(), {"factor": 0.5}), 1.5, range(6))) == 1


def test_segments_of_the_first_playlist_are_not_compared() -> None:
    # The low rendition is discovered late: its first playlist lists old segments at once.
    check = RenditionDrift(context(), {})
    for n in range(3):
        check.on_playlist(HIGH.name, HIGH.playlist(0, n), HIGH.listed(n))
        assert check.on_segment(HIGH.segment(n)) == []
    late_seen = HIGH.listed(2) + 0.1
    check.on_playlist(LOW.name, LOW.playlist(0, 2), late_seen)
    for n in range(3):
        assert check.on_segment(LOW.segment(n, listed_at=late_seen)) == []
