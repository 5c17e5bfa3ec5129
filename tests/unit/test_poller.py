"""The media playlist poll scheduler, driven by simulated arrivals on a virtual clock."""

from __future__ import annotations

import random

import pytest

from streamer.playback.poller import PollScheduler

RTT = 0.001


def _follow(
    arrivals: list[float], durations: list[float], start: float, end: float, lag: float = 0.0
) -> tuple[list[float], int]:
    """(listed-time errors, polls) of a follower polling with the scheduler."""
    scheduler = PollScheduler(2.0)
    now, known, polls = start, -1, 0
    errors: list[float] = []
    while now < end:
        sent = now + lag
        seen = sum(1 for a in arrivals if a <= sent + RTT / 2) - 1
        done = sent + RTT
        polls += 1
        new = seen > known
        if new and known >= 0:
            errors.extend(done - arrivals[k] for k in range(known + 1, seen + 1))
        if new:
            known = seen
        scheduler.observe(done, new, durations[seen] if new else None, started_at=sent)
        now = max(done, scheduler.next_poll(done))
    return errors, polls


def _periodic(count: int, jitter: float, seed: int = 1) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    arrivals = [1000.0 + 2.0 * i + rng.gauss(0, jitter) for i in range(count)]
    return arrivals, [2.0] * count


def test_locks_on_to_a_steady_origin_within_a_few_segments() -> None:
    arrivals, durations = _periodic(60, 0.002)
    errors, polls = _follow(arrivals, durations, 1000.5, arrivals[-1] - 1)
    steady = sorted(errors[3:])
    assert steady[len(steady) // 2] < 0.015
    assert max(steady) < 0.05
    assert max(errors) < 0.1  # the first segments too (learning polls 80 ms apart)
    assert polls / ((arrivals[-1] - 1 - 1000.5) / 2.0) < 4  # requests per target duration


def test_jittery_origin_stays_within_budget() -> None:
    arrivals, durations = _periodic(120, 0.02)
    errors, polls = _follow(arrivals, durations, 1000.5, arrivals[-1] - 1)
    errors.sort()
    assert errors[len(errors) // 2] < 0.03
    assert polls / ((arrivals[-1] - 1 - 1000.5) / 2.0) < 4


def test_an_odd_arrival_does_not_move_the_prediction() -> None:
    arrivals, durations = _periodic(40, 0.001)
    arrivals[20] += 0.4  # one late segment
    for i in range(21, 40):
        arrivals[i] = max(arrivals[i], arrivals[20] + 0.001)
    errors, _ = _follow(arrivals, durations, 1000.5, arrivals[-1] - 1)
    assert sorted(errors)[len(errors) // 2] < 0.015
    assert max(errors[22:]) < 0.05  # back on the rhythm right after


def test_a_shifted_rhythm_is_relearned() -> None:
    arrivals, durations = _periodic(40, 0.001)
    for i in range(20, 40):
        arrivals[i] -= 0.6  # the origin now lists 0.6 s earlier (e.g. after a restart)
    errors, _ = _follow(arrivals, durations, 1000.5, arrivals[-1] - 1)
    assert max(errors[30:]) < 0.05


def test_stall_backs_off_to_a_quarter_of_the_target_duration() -> None:
    scheduler = PollScheduler(2.0)
    scheduler.observe(10.0, True, 2.0)
    now = 10.0
    for _ in range(40):  # learning polls, then the stream stops
        now = scheduler.next_poll(now)
        scheduler.observe(now, False, None)
    steps = []
    for _ in range(10):
        after = scheduler.next_poll(now)
        steps.append(after - now)
        scheduler.observe(after, False, None)
        now = after
    assert max(steps) <= 0.5 + 1e-9
    assert steps[-1] == pytest.approx(0.5)


def test_before_the_first_segment_polls_at_the_startup_step() -> None:
    scheduler = PollScheduler(2.0, startup_step=0.1)
    assert scheduler.next_poll(5.0) == pytest.approx(5.1)
    scheduler.observe(5.1, False, None)
    assert scheduler.next_poll(5.1) == pytest.approx(5.2)
    assert scheduler.expected_arrival is None


def test_an_origin_listing_faster_than_real_time_is_not_chased() -> None:
    # A new 2 s segment on every poll, however often it is asked: it cannot be bracketed.
    scheduler = PollScheduler(2.0)
    now, polls = 100.0, 0
    while now < 120.0:
        scheduler.observe(now, True, 2.0, started_at=now - RTT)
        now = scheduler.next_poll(now)
        polls += 1
    assert scheduler.racing
    assert polls / (20.0 / 2.0) <= 6  # per target duration; learning would poll 25 times


def test_a_burst_after_a_stall_is_not_racing() -> None:
    scheduler = PollScheduler(2.0)
    for at in [10.0, 12.0, 14.0, 24.0, 24.1, 24.2, 26.0, 28.0]:  # three segments at once
        scheduler.observe(at, True, 2.0)
        assert not scheduler.racing
