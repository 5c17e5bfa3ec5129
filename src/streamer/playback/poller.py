"""When to poll a media playlist next.

The error of a segment's "listed" time is bounded by the polling: poll too slowly and the
number is late; too fast and the origin is hammered. The scheduler predicts the next
segment's arrival from the previous one (its arrival lies between the last poll that missed
it and the first poll that saw it) plus the newest segment's duration, then polls just
before and just after the predicted instant, widening its steps only while the segment is
overdue.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PollScheduler:
    target_duration: float
    startup_step: float = 0.1  # before the first segment: arrival cannot be predicted
    window: float = 0.02  # half-width of the poll pair around the predicted arrival
    max_step_fraction: float = 0.25  # slowest polling while overdue, x target duration

    def __post_init__(self) -> None:
        self._last_poll: float | None = None
        self._last_miss: float | None = None
        self._expected: float | None = None
        self._misses_since_expected = 0

    @property
    def expected_arrival(self) -> float | None:
        return self._expected

    def observe(self, polled_at: float, new_segment: bool, newest_duration: float | None) -> None:
        """Records one poll's result; `polled_at` is when its answer arrived."""
        if new_segment and newest_duration:
            lower = self._last_miss if self._last_miss is not None else self._last_poll
            arrival = polled_at
            if lower is not None and polled_at - lower < newest_duration / 2:
                arrival = (lower + polled_at) / 2
            self._expected = arrival + newest_duration
            self._misses_since_expected = 0
            self._last_miss = None
        elif not new_segment:
            self._last_miss = polled_at
            if self._expected is not None and polled_at >= self._expected:
                self._misses_since_expected += 1
        self._last_poll = polled_at

    def next_poll(self, now: float) -> float:
        """The wall-clock time of the next poll (never before `now`)."""
        if self._expected is None:
            return now + self.startup_step
        first = self._expected - self.window
        if now < first:
            return first
        if now < self._expected + self.window:
            return max(now, self._expected + self.window)
        # Overdue: back off geometrically, up to a quarter of the target duration.
        step: float = min(
            2 * self.window * 2**self._misses_since_expected,
            self.max_step_fraction * max(self.target_duration, 0.5),
        )
        return now + step
