"""The latency arithmetic: which send of a looped frame a viewer saw, and how late."""

from __future__ import annotations

from streamer.events import SegmentObserved, StreamLabels
from streamer.publish.sendlog import SendLog


def _log(frames: int, per_loop: int = 100, fps: float = 10.0, start: float = 1000.0) -> SendLog:
    log = SendLog(per_loop, fps)
    for n in range(frames):
        log.record(n, start + n / fps)
    return log


def test_resolves_to_the_latest_copy_sent_before_the_observation() -> None:
    log = _log(250)  # two and a half loops of 100 frames
    # Clip frame 20 was sent as absolute 20 (t=1002), 120 (t=1012) and 220 (t=1022).
    assert log.resolve(20, observed_at=1012.5) == 120
    assert log.resolve(20, observed_at=1030.0) == 220
    assert log.resolve(20, observed_at=1005.0) == 20


def test_a_frame_not_yet_sent_is_not_from_this_session() -> None:
    log = _log(50)
    assert log.resolve(80, observed_at=2000.0) is None
    assert log.resolve(10, observed_at=999.0) is None  # observed before it was ever sent
    assert log.resolve(-1, observed_at=2000.0) is None
    assert log.resolve(100, observed_at=2000.0) is None  # not a clip frame


def test_skipped_frames_have_no_send_time() -> None:
    log = SendLog(100, 10.0)
    log.record(0, 1.0)
    log.record(3, 1.3)  # frames 1 and 2 withheld
    assert log.sent_at(1) is None
    assert log.sent_at(3) == 1.3
    assert log.frames_sent == 4
    assert log.resolve(1, observed_at=5.0) is None


def test_latencies_are_measured_from_the_newest_frame() -> None:
    event = SegmentObserved(
        labels=StreamLabels("s", "eu", "eu"),
        session_id="x",
        rendition="source",
        sequence=3,
        listed_at=110.25,
        downloaded_at=110.5,
        extinf_seconds=2.0,
        media_duration_seconds=2.0,
        newest_frame_sent_at=110.0,
        resolution="640x360",
        video_codec="h264",
        size_bytes=1,
    )
    assert event.listed_latency_seconds == 0.25
    assert event.segment_latency_seconds == 0.5
    unknown = SegmentObserved(**{**event.__dict__, "newest_frame_sent_at": None})
    assert unknown.segment_latency_seconds is None
