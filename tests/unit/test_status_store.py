"""StatusStore: what the status page will show for a stream, given the events it saw."""

from __future__ import annotations

from typing import Any

import pytest

from streamer.events import PartObserved
from streamer.sinks.status import (
    BUCKET_SECONDS,
    MAX_DETAIL,
    MAX_ERRORS,
    MAX_RENDITIONS,
    MAX_SESSIONS,
    WINDOW_SECONDS,
    StatusStore,
)
from tests.support.status_events import (
    ALPHA,
    BETA,
    Clock,
    check_failed,
    connected,
    discovered,
    ended,
    first_segment,
    play_session,
    play_webrtc_beside,
    segment,
    started,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> StatusStore:
    return StatusStore(clock=clock)


def detail(store: StatusStore, name: str = "alpha") -> dict[str, Any]:
    found = store.stream(name)
    assert found is not None
    return found


def state(store: StatusStore, name: str = "alpha") -> str:
    value: str = detail(store, name)["state"]
    return value


def test_registered_stream_is_shown_idle_before_its_first_session(store: StatusStore) -> None:
    store.register_stream(ALPHA)
    store.register_stream(BETA)
    [alpha, beta] = store.streams()
    assert (alpha["name"], alpha["state"]) == ("alpha", "idle")
    assert (alpha["ingest_region"], alpha["playback_region"]) == ("eu-west", "us-east")
    assert beta["name"] == "beta"
    assert alpha["session_id"] is None and alpha["elapsed_seconds"] is None
    assert alpha["last_outcome"] is None and alpha["renditions"] == []
    assert store.stream("nope") is None and store.sessions("nope") is None


def test_states_follow_a_successful_session(store: StatusStore, clock: Clock) -> None:
    t = clock.now
    store.handle(started(ALPHA, "s1", t))
    assert state(store) == "publishing"
    store.handle(connected(ALPHA, "s1", t + 0.3))
    assert state(store) == "waiting"
    store.handle(discovered(ALPHA, "s1", t + 1))
    assert state(store) == "waiting"
    store.handle(first_segment(ALPHA, "s1", t + 2.5))
    assert state(store) == "playing"
    store.handle(ended(ALPHA, "s1", t + 240, "success"))
    assert state(store) == "grace"
    assert detail(store)["last_outcome"] == "success"


def test_aborted_session_goes_to_grace(store: StatusStore, clock: Clock) -> None:
    store.handle(started(ALPHA, "s1", clock.now))
    store.handle(ended(ALPHA, "s1", clock.now + 5, "aborted", startup=None))
    assert state(store) == "grace"
    assert detail(store)["last_outcome"] == "aborted"


def test_failed_stays_shown_through_the_grace_period(store: StatusStore, clock: Clock) -> None:
    t = clock.now
    store.handle(started(ALPHA, "s1", t))
    store.handle(connected(ALPHA, "s1", t + 0.3))
    store.handle(ended(ALPHA, "s1", t + 30, "failure", startup=None))
    assert state(store) == "failed"
    clock.now = t + 55  # the grace period runs: nothing new happens
    assert state(store) == "failed"
    store.handle(started(ALPHA, "s2", t + 60))
    assert state(store) == "publishing"
    assert detail(store)["last_outcome"] == "failure"


def test_elapsed_is_computed_when_read(store: StatusStore, clock: Clock) -> None:
    store.handle(started(ALPHA, "s1", clock.now))
    clock.now += 42.0
    summary = store.streams()[0]
    assert summary["running"] is True
    assert summary["elapsed_seconds"] == pytest.approx(42.0)
    clock.now += 18.0
    assert store.streams()[0]["elapsed_seconds"] == pytest.approx(60.0)
    store.handle(ended(ALPHA, "s1", clock.now))
    clock.now += 100.0  # after the end, elapsed is the session's length
    summary = store.streams()[0]
    assert summary["running"] is False
    assert summary["elapsed_seconds"] == pytest.approx(60.0)


def test_events_of_an_older_session_do_not_change_the_state(
    store: StatusStore, clock: Clock
) -> None:
    t = clock.now
    store.handle(started(ALPHA, "s1", t))
    store.handle(ended(ALPHA, "s1", t + 10, "success"))
    store.handle(started(ALPHA, "s2", t + 20))
    store.handle(first_segment(ALPHA, "s1", t + 21))  # late, from s1
    assert state(store) == "publishing"
    assert detail(store)["session_id"] == "s2"


def test_sessions_keep_the_last_20_newest_first(store: StatusStore, clock: Clock) -> None:
    t = clock.now
    for i in range(MAX_SESSIONS + 5):
        store.handle(started(ALPHA, f"s{i}", t + 100 * i))
        store.handle(first_segment(ALPHA, f"s{i}", t + 100 * i + 3, latency=2.0 + i / 100))
        store.handle(ended(ALPHA, f"s{i}", t + 100 * i + 60, startup=None))
    sessions = store.sessions("alpha")
    assert sessions is not None
    assert len(sessions) == MAX_SESSIONS == 20
    assert sessions[0]["session_id"] == "s24" and sessions[-1]["session_id"] == "s5"
    assert sessions[0]["outcome"] == "success"
    assert sessions[0]["startup_latency_seconds"] == pytest.approx(2.24)
    assert sessions[0]["duration_seconds"] == pytest.approx(60.0)


def test_session_lists_its_failing_checks_once_each(store: StatusStore, clock: Clock) -> None:
    t = clock.now
    store.handle(started(ALPHA, "s1", t))
    store.handle(check_failed(ALPHA, "s1", t + 5, kind="segment_latency"))
    store.handle(check_failed(ALPHA, "s1", t + 7, kind="segment_latency"))
    store.handle(check_failed(ALPHA, "s1", t + 9, kind="rendition_missing"))
    store.handle(ended(ALPHA, "s1", t + 30, "failure", failed_kinds=("segment_latency", "stall")))
    [session] = detail(store)["sessions"]
    assert session["outcome"] == "failure"
    assert session["failed_kinds"] == ["segment_latency", "rendition_missing", "stall"]
    assert session["startup_latency_seconds"] == pytest.approx(2.2)


def test_running_session_is_listed_without_an_outcome(store: StatusStore, clock: Clock) -> None:
    store.handle(started(ALPHA, "s1", clock.now))
    [session] = detail(store)["sessions"]
    assert session["outcome"] is None and session["ended_at"] is None


def test_latency_is_bucketed_by_10_seconds(store: StatusStore, clock: Clock) -> None:
    t0 = 1_700_000_000.0  # a multiple of 10
    clock.now = t0 + 60
    store.handle(started(ALPHA, "s1", t0))
    for at, latency in [(t0 + 1, 2.0), (t0 + 5, 4.0), (t0 + 9.99, 3.0), (t0 + 12, 5.0)]:
        store.handle(segment(ALPHA, "s1", at, latency))
    store.handle(segment(ALPHA, "s1", t0 + 13, None))  # no timecode read: not a sample
    latency = detail(store)["latency"]
    assert latency["bucket_seconds"] == BUCKET_SECONDS == 10
    assert latency["t"] == [t0, t0 + 10]
    [series] = latency["series"]
    assert series["rendition"] == "360p"
    assert series["count"] == [3, 1]
    assert series["mean"] == [pytest.approx(3.0), pytest.approx(5.0)]
    assert series["max"] == [pytest.approx(4.0), pytest.approx(5.0)]


def test_renditions_share_one_time_axis_with_gaps(store: StatusStore, clock: Clock) -> None:
    t0 = 1_700_000_000.0
    clock.now = t0 + 60
    store.handle(started(ALPHA, "s1", t0))
    store.handle(segment(ALPHA, "s1", t0 + 1, 3.0, rendition="360p"))
    store.handle(segment(ALPHA, "s1", t0 + 21, 3.5, rendition="360p"))
    store.handle(segment(ALPHA, "s1", t0 + 11, 4.0, rendition="144p"))
    latency = detail(store)["latency"]
    assert latency["t"] == [t0, t0 + 10, t0 + 20]
    by_name = {s["rendition"]: s["mean"] for s in latency["series"]}
    assert by_name == {"360p": [3.0, None, 3.5], "144p": [None, 4.0, None]}


def test_latency_keeps_only_the_last_hour(store: StatusStore, clock: Clock) -> None:
    start = clock.now
    end = play_session(store, ALPHA, "s1", start, seconds=2 * WINDOW_SECONDS, end=None, clock=clock)
    clock.now = end
    latency = detail(store)["latency"]
    assert len(latency["t"]) <= WINDOW_SECONDS / BUCKET_SECONDS + 1
    assert min(latency["t"]) >= end - WINDOW_SECONDS - BUCKET_SECONDS
    assert {s["rendition"] for s in latency["series"]} == {"360p", "144p"}
    clock.now = end + WINDOW_SECONDS + 20  # an hour with no segments: the chart is empty
    assert detail(store)["latency"]["t"] == []
    assert detail(store)["latency"]["series"] == []


def test_latency_memory_stays_bounded_without_reads(store: StatusStore, clock: Clock) -> None:
    play_session(store, ALPHA, "s1", clock.now, seconds=3 * WINDOW_SECONDS, end=None, clock=clock)
    # white-box: what is held, not what is shown (reads prune too)
    held = store._streams["alpha"].latency._by_rendition
    assert all(len(b) <= WINDOW_SECONDS / BUCKET_SECONDS + 2 for b in held.values())


def test_samples_outside_the_window_are_dropped(store: StatusStore, clock: Clock) -> None:
    store.handle(started(ALPHA, "s1", clock.now))
    store.handle(segment(ALPHA, "s1", clock.now - WINDOW_SECONDS - 50, 3.0))
    store.handle(segment(ALPHA, "s1", clock.now + 3600, 3.0))  # a broken clock
    assert detail(store)["latency"]["t"] == []


def test_late_sample_goes_into_its_own_bucket(store: StatusStore, clock: Clock) -> None:
    t0 = 1_700_000_000.0
    clock.now = t0 + 100
    store.handle(started(ALPHA, "s1", t0))
    store.handle(segment(ALPHA, "s1", t0 + 1, 3.0))
    store.handle(segment(ALPHA, "s1", t0 + 41, 5.0))
    store.handle(segment(ALPHA, "s1", t0 + 21, 4.0))  # arrives out of order
    store.handle(segment(ALPHA, "s1", t0 + 42, 7.0))
    latency = detail(store)["latency"]
    assert latency["t"] == [t0, t0 + 20, t0 + 40]
    assert latency["series"][0]["mean"] == [3.0, 4.0, 6.0]


def test_renditions_show_resolution_codecs_and_segment_age(
    store: StatusStore, clock: Clock
) -> None:
    t = clock.now
    store.handle(started(ALPHA, "s1", t))
    store.handle(discovered(ALPHA, "s1", t + 1, "720p", "1280x720", "avc1.64001f"))
    store.handle(discovered(ALPHA, "s1", t + 1, "audio", None, "mp4a.40.2"))
    store.handle(segment(ALPHA, "s1", t + 4, 3.2, rendition="720p", resolution="1280x720"))
    store.handle(segment(ALPHA, "s1", t + 6, 3.4, rendition="720p", resolution="1280x720"))
    clock.now = t + 10
    renditions = {r["name"]: r for r in detail(store)["renditions"]}
    assert list(renditions) == ["720p", "audio"]
    hd = renditions["720p"]
    assert (hd["resolution"], hd["codecs"], hd["video_codec"]) == (
        "1280x720",
        "avc1.64001f",
        "h264",
    )
    assert hd["last_segment_age_seconds"] == pytest.approx(4.0)
    assert hd["last_segment_latency_seconds"] == pytest.approx(3.4)
    assert hd["segments"] == 2
    assert renditions["audio"]["last_segment_age_seconds"] is None
    # the list shows them too, and a new session starts with none
    assert [r["name"] for r in store.streams()[0]["renditions"]] == ["720p", "audio"]
    store.handle(started(ALPHA, "s2", t + 300))
    assert detail(store)["renditions"] == []


def test_renditions_are_capped(store: StatusStore, clock: Clock) -> None:
    store.handle(started(ALPHA, "s1", clock.now))
    for i in range(MAX_RENDITIONS * 4):
        store.handle(segment(ALPHA, "s1", clock.now - i, 3.0, rendition=f"r{i}"))
    found = detail(store)
    assert len(found["renditions"]) == MAX_RENDITIONS
    assert len(found["latency"]["series"]) == MAX_RENDITIONS


def test_errors_keep_the_last_50_newest_first(store: StatusStore, clock: Clock) -> None:
    t = clock.now
    store.handle(started(ALPHA, "s1", t))
    for i in range(MAX_ERRORS + 10):
        store.handle(check_failed(ALPHA, "s1", t + i, detail=f"problem {i}"))
    errors = detail(store)["errors"]
    assert len(errors) == MAX_ERRORS == 50
    assert errors[0] == {
        "at": t + 59,
        "kind": "segment_latency",
        "rendition": "360p",
        "detail": "problem 59",
        "session_id": "s1",
    }
    assert errors[-1]["detail"] == "problem 10"
    assert store.streams()[0]["error_count"] == 50


def test_long_error_details_are_clipped(store: StatusStore, clock: Clock) -> None:
    store.handle(started(ALPHA, "s1", clock.now))
    store.handle(check_failed(ALPHA, "s1", clock.now, detail="x" * 100_000, rendition=None))
    [error] = detail(store)["errors"]
    assert len(error["detail"]) == MAX_DETAIL
    assert error["rendition"] is None


def test_a_missed_session_start_is_adopted(store: StatusStore, clock: Clock) -> None:
    store.handle(first_segment(ALPHA, "s9", clock.now))
    assert state(store) == "playing"
    assert detail(store)["session_id"] == "s9"


def test_listeners_hear_each_change_until_unsubscribed(store: StatusStore, clock: Clock) -> None:
    heard: list[str] = []
    unsubscribe = store.subscribe(heard.append)
    store.register_stream(BETA)
    store.handle(started(ALPHA, "s1", clock.now))
    assert heard == ["beta", "alpha"]
    assert store.listener_count == 1
    unsubscribe()
    unsubscribe()  # twice is harmless
    store.handle(ended(ALPHA, "s1", clock.now))
    assert heard == ["beta", "alpha"]
    assert store.listener_count == 0


def test_a_failing_listener_does_not_break_the_sink(store: StatusStore, clock: Clock) -> None:
    def broken(name: str) -> None:
        raise RuntimeError("boom")

    store.subscribe(broken)
    store.handle(started(ALPHA, "s1", clock.now))
    assert state(store) == "publishing"


def test_ll_hls_renditions_show_their_last_part(store: StatusStore, clock: Clock) -> None:
    t = clock.now
    store.handle(started(ALPHA, "s1", t))
    store.handle(discovered(ALPHA, "s1", t + 1, "720p", "1280x720", "avc1.64001f"))
    for n in range(3):
        store.handle(
            PartObserved(
                labels=ALPHA,
                session_id="s1",
                rendition="720p",
                sequence=7,
                index=n,
                listed_at=t + 2 + n / 3,
                downloaded_at=t + 2.05 + n / 3,
                duration_seconds=1 / 3,
                newest_frame_sent_at=t + 1.95 + n / 3,
                hinted=True,
            )
        )
    clock.now = t + 5
    (hd,) = detail(store)["renditions"]
    # A part-level stall: the last part grows old while segments may still look fine.
    assert hd["parts"] == 3 and hd["last_part_age_seconds"] == pytest.approx(2.3, abs=0.05)
    assert hd["last_part_latency_seconds"] == pytest.approx(0.1)


def test_protocols_played_side_by_side_are_shown_each_with_its_figures(
    store: StatusStore, clock: Clock
) -> None:
    end = play_session(store, ALPHA, "s1", clock.now, seconds=20, end=None, base_latency=3.0)
    play_webrtc_beside(store, ALPHA, "s1", clock.now, seconds=20)
    clock.now = end
    detail = store.stream("alpha")
    assert detail is not None
    protocols = {p["protocol"]: p for p in detail["protocols"]}
    assert set(protocols) == {"hls", "webrtc"}
    hls, webrtc = protocols["hls"], protocols["webrtc"]
    assert hls["latency_kind"] == "segment" and hls["frames"] == 0
    assert 3.0 <= hls["latency_p50_seconds"] <= 4.6
    assert hls["startup_latency_seconds"] == 2.2
    assert webrtc["latency_kind"] == "frame"
    assert webrtc["frames"] == 19 * 25
    assert webrtc["latency_p50_seconds"] == 0.07
    assert webrtc["startup_latency_seconds"] == 0.6
    assert (webrtc["freezes"], webrtc["freeze_seconds"], webrtc["connect_seconds"]) == (
        1,
        0.8,
        0.04,
    )
    # A new session starts from nothing.
    store.handle(started(ALPHA, "s2", end + 5))
    detail = store.stream("alpha")
    assert detail is not None and detail["protocols"] == []


def test_a_session_startup_is_its_own_protocols_not_the_faster_one_beside_it(
    store: StatusStore, clock: Clock
) -> None:
    store.handle(started(ALPHA, "s1", clock.now))
    play_webrtc_beside(store, ALPHA, "s1", clock.now, seconds=3)  # first frame after 0.6 s
    store.handle(first_segment(ALPHA, "s1", clock.now + 2.4, 2.2))
    detail = store.stream("alpha")
    assert detail is not None
    assert detail["sessions"][0]["startup_latency_seconds"] == 2.2
