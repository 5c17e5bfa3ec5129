"""The speed probe's arithmetic: a window's speed, the run's reference, normalised CPU."""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.speed import Sample, Speed, SpeedProbe, normalised, reference_ms, window_ms
from benchmarks.usage import Usage


def _usage(cpu_seconds: float, start: float, end: float) -> Usage:
    return Usage(cpu_seconds, end - start, 0.0, 0.0, 1, started_at=start, ended_at=end)


def test_a_window_twice_as_slow_as_the_reference_halves_its_cpu_seconds() -> None:
    fast = [Sample(float(t), 4.0) for t in range(100)]
    slow = [Sample(100.0 + t, 8.0) for t in range(20)]
    speed = Speed(fast + slow)
    assert speed.reference_ms == 4.0
    assert speed.chunk_ms(_usage(10.0, 100.0, 119.0)) == 8.0
    assert speed.cpu_seconds(_usage(10.0, 100.0, 119.0)) == 5.0
    assert speed.cpu_seconds(_usage(10.0, 10.0, 29.0)) == 10.0  # at full speed: unchanged
    assert speed.cores(_usage(10.0, 100.0, 120.0)) == 0.25
    assert speed.per_stream_minute(_usage(10.0, 100.0, 120.0), n=5) == 3.0


def test_the_reference_is_the_fast_tail_and_needs_enough_samples() -> None:
    samples = [Sample(float(t), float(t)) for t in range(1, 101)]
    assert reference_ms(samples) == 3.0  # the 2nd percentile of 1..100
    assert reference_ms(samples[:9]) is None
    assert window_ms(samples, 10.0, 12.0) == 11.0
    assert window_ms(samples, 500.0, 600.0) is None


def test_without_a_speed_the_raw_cpu_seconds_stand() -> None:
    assert normalised(7.0, None, 3.0) == 7.0
    assert normalised(7.0, 6.0, None) == 7.0
    assert normalised(7.0, 6.0, 3.0) == 3.5
    assert Speed([]).cpu_seconds(_usage(7.0, 0.0, 10.0)) == 7.0


def test_the_probe_process_times_its_chunks_until_stopped(tmp_path: Path) -> None:
    probe = SpeedProbe(tmp_path / "speed.txt").start()
    try:
        deadline = time.monotonic() + 20
        while len(probe.samples()) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        probe.stop()
    samples = probe.samples()
    assert len(samples) >= 3
    assert all(0 < s.chunk_ms < 1000 for s in samples)
    assert samples == sorted(samples, key=lambda s: s.at)
    count = len(probe.samples())
    time.sleep(0.6)
    assert len(probe.samples()) == count  # stopped: nothing more is written
