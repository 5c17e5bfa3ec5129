"""When to poll a media playlist next.

The error of a segment's "listed" time is bounded by the polling: poll too slowly and the
number is late; too fast and the origin is hammered. Live segments arrive about one segment
duration apart, so the scheduler predicts the next arrival and polls densely only around it:

- Each new segment's arrival is bracketed by the last poll that did not list it (when its
  request was sent) and the first that did (when its answer arrived); the bracket's middle
  is the arrival estimate, and the next arrival is predicted one segment duration later.
- How far arrivals stray from their predictions is tracked (a high quantile of recent
  prediction errors); that spread, never below `min_step`, is the window polled around the
  prediction: a first poll at its start, then polls `min_step` apart or so, at most about
  `window_polls` of them.
- A segment later than the window backs off geometrically, up to `max_step_fraction` of the
  target duration; an early one (the window's first poll already lists it) widens the next
  window, so that the prediction re-locks within a few segments either way.
- Before anything is known (a stream joined in the middle of a segment), polls go
  `learn_fraction` of the target duration apart until the first arrival is bracketed.
- A playlist that keeps listing media faster than real time (a new segment on every poll,
  whatever the poll rate) cannot be bracketed and would draw learning polls without end:
  while recent listings hold more than twice the media time they took (plus a target
  duration of slack, for a burst after a stall), polls go the slowest step apart.

On a steady origin this costs two to three requests per segment and lands within about one
`min_step` of the arrival.

Times are on one clock, the follower's monotonic one: a wall-clock step must neither stall
nor burst polling.

Two guards for what the platform answers:

- `BlockingReloads`: where a playlist offers LL-HLS blocking reloads, the server should
  hold each request until the next segment exists. Whatever it claims, two blocking requests
  are never sent closer than `blocking_floor` (a quarter of the part target, else of the
  target duration), and a server that answers at once without the segment asked for is
  counted; after `unheld_limit` such answers in a row, the follower stops asking it to
  block and polls like above instead.
- `FailureBackoff`: after failed requests, the next goes out later and later, with jitter,
  up to a cap of half a target duration, so that a recovery is seen within one.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass

_RESIDUALS = 8  # recent prediction errors kept
_ANCHORS = 3  # recent bracketed arrivals the prediction is the median of
_EARLY_RELEARN = 2  # after this many early segments in a row, the next one relearns
_SPREAD_RANK = 0.75  # the quantile of recent |errors| taken as the window's half-width
_RECENT_HITS = 6  # listings of new media looked at to tell an origin racing real time
_RACING_FACTOR = 2.0


@dataclass
class PollScheduler:
    target_duration: float
    startup_step: float = 0.1  # before the first segment: arrival cannot be predicted
    min_step: float = 0.01  # finest spacing between polls around the predicted arrival
    window_polls: int = 5  # at most this many polls spread over the window
    max_step_fraction: float = 0.25  # slowest polling while overdue, x target duration
    learn_fraction: float = 0.04  # spacing before the first arrival is bracketed

    def __post_init__(self) -> None:
        self._expected: float | None = None  # predicted arrival of the next segment
        self._spread = self.min_step  # half-width of the window around the prediction
        self._lower: float | None = None  # latest time the next segment was known absent
        self._last_hit: float | None = None
        self._bracketed = False  # whether any arrival has been bracketed yet
        self._overdue_polls = 0
        self._early = 0  # segments in a row listed before their window opened
        self._residuals: deque[float] = deque(maxlen=_RESIDUALS)
        # (estimated arrival, media time listed by then): the next arrival is predicted from
        # each, and the median taken, so that one odd arrival does not move the prediction.
        self._anchors: deque[tuple[float, float, float]] = deque(maxlen=_ANCHORS)
        self._expected_half = 0.0  # half-width of the bracket the prediction comes from
        self._media_time = 0.0  # sum of the newest durations seen at each new listing
        self._hits: deque[tuple[float, float]] = deque(maxlen=_RECENT_HITS)  # (at, media)

    @property
    def expected_arrival(self) -> float | None:
        return self._expected

    @property
    def spread(self) -> float:
        return self._spread

    def observe(
        self,
        polled_at: float,
        new_segment: bool,
        newest_duration: float | None,
        started_at: float | None = None,
    ) -> None:
        """Records one poll's result: `polled_at` is when its answer arrived, `started_at`
        when its request was sent (defaults to `polled_at`)."""
        sent = polled_at if started_at is None else min(started_at, polled_at)
        if not new_segment:
            self._observe_absent(sent, polled_at)
            return
        duration = newest_duration if newest_duration and newest_duration > 0 else None
        if duration is not None:
            self._hits.append((polled_at, duration))
        lower = self._lower
        self._lower = None
        self._overdue_polls = 0
        previous_hit, self._last_hit = self._last_hit, polled_at
        if duration is None:
            return
        self._media_time += duration
        if lower is not None:
            half = (polled_at - lower) / 2
            arrival = lower + half
            if self._expected is not None and self._bracketed:
                # How far the arrival strayed at least: neither this bracket's width nor
                # the uncertainty the prediction came with is the origin's jitter.
                slack = (half + self._expected_half) / 2
                self._residuals.append(max(0.0, abs(arrival - self._expected) - slack))
            self._bracketed = True
            self._early = 0
        elif self._expected is not None and self._bracketed and self._early < _EARLY_RELEARN:
            # Listed already at the window's first poll: it came early by an unknown amount
            # (at most since the previous segment). Aim earlier and widen the window.
            self._early += 1
            early = self._spread * 2
            if previous_hit is not None:
                early = min(early, max(0.0, polled_at - previous_hit) / 2)
            arrival = polled_at - early
            self._residuals.append(2 * self._spread)
        else:
            # Nothing bracketed yet (the segment may have been listed long ago), or early
            # again and again (the rhythm moved): learn it anew.
            self._expected = None
            self._bracketed = False
            self._early = 0
            self._anchors.clear()
            self._residuals.clear()
            self._spread = self.min_step
            return
        if lower is not None:
            self._anchors.append((arrival, self._media_time, half))
        predictions = sorted(
            (at + self._media_time - media, width) for at, media, width in self._anchors
        )
        self._expected_half = self._spread
        if predictions:
            arrival, self._expected_half = predictions[len(predictions) // 2]
        self._expected = arrival + duration
        self._spread = self._window_half_width()

    def _observe_absent(self, sent: float, polled_at: float) -> None:
        """A poll sent at `sent` listed no new segment: it was absent then."""
        if self._lower is None or sent > self._lower:
            self._lower = sent
        if self._expected is not None and polled_at >= self._expected + self._spread:
            self._overdue_polls += 1
        elif (
            self._expected is None
            and self._last_hit is not None
            and polled_at - self._last_hit > self._learn_limit
        ):
            self._overdue_polls += 1  # learning, but nothing comes: back off too

    @property
    def learn_step(self) -> float:
        return self.learn_fraction * max(self.target_duration, 0.5)

    @property
    def _learn_limit(self) -> float:
        """How long learning polls go on after a segment before backing off."""
        return 1.5 * max(self.target_duration, 0.5)

    @property
    def _ceiling(self) -> float:
        return self.max_step_fraction * max(self.target_duration, 0.5)

    def _window_half_width(self) -> float:
        if not self._residuals:
            return max(self.min_step, self.learn_step / 2)
        ordered = sorted(self._residuals)
        quantile = ordered[min(len(ordered) - 1, math.floor(_SPREAD_RANK * len(ordered)))]
        return min(max(self.min_step, quantile), self._ceiling)

    @property
    def racing(self) -> bool:
        """Whether the origin lists media faster than real time (see the module doc)."""
        if len(self._hits) < _RECENT_HITS:
            return False
        took = self._hits[-1][0] - self._hits[0][0]
        listed = sum(media for _, media in list(self._hits)[1:])
        return listed > _RACING_FACTOR * took + max(self.target_duration, 0.5)

    def next_poll(self, now: float) -> float:
        """The time of the next poll (never before `now`)."""
        if self._last_hit is None:
            return now + self.startup_step
        if self.racing:
            return now + self._ceiling
        if self._expected is None:  # bracketing the first arrival
            if now - self._last_hit <= self._learn_limit:
                return now + self.learn_step
            backoff: float = self.learn_step * 2**self._overdue_polls
            return now + min(backoff, self._ceiling)
        start = self._expected - self._spread
        if now < start:
            return start
        end = self._expected + self._spread
        intervals = min(max(1, self.window_polls - 1), math.ceil(2 * self._spread / self.min_step))
        step = max(self.min_step, 2 * self._spread / max(1, intervals))
        if now < end:
            return min(now + step, max(now, end))
        # Overdue: back off geometrically, up to a share of the target duration.
        overdue: float = step * 2**self._overdue_polls
        return now + min(overdue, self._ceiling)


BLOCKING_FLOOR_FRACTION = 0.25
_MIN_BLOCKING_FLOOR = 0.05


def blocking_floor(target_duration: float, part_target: float | None = None) -> float:
    """The least time between two blocking reloads: no server has a new segment (or part)
    sooner than a fraction of its target."""
    basis = part_target if part_target and 0 < part_target < target_duration else target_duration
    return max(_MIN_BLOCKING_FLOOR, BLOCKING_FLOOR_FRACTION * basis)


@dataclass
class BlockingReloads:
    unheld_limit: int = 3  # answers in a row at once and without the segment: stop blocking

    def __post_init__(self) -> None:
        self.unheld = 0  # all such answers so far
        self._in_a_row = 0
        self.abandoned = False  # the server does not hold: poll instead

    def answered(self, sent: float, received: float, new_segment: bool, floor: float) -> bool:
        """Records the answer to a blocking request; True when the server answered at once
        without the segment asked for (a server that already has it answers at once too,
        with it: that is fine)."""
        if new_segment or received - sent >= floor:
            self._in_a_row = 0
            return False
        self.unheld += 1
        self._in_a_row += 1
        if self._in_a_row >= self.unheld_limit:
            self.abandoned = True
        return True


@dataclass
class FailureBackoff:
    base: float = 0.05  # the first delay after a failure
    cap_fraction: float = 0.5  # of the target duration: a recovery is seen within one

    def delay(self, failures: int, target_duration: float, cap: float | None = None) -> float:
        """How long to wait after the `failures`-th failed request in a row: doubling from
        `base`, capped, then drawn from its upper half (jitter: many followers failing
        together do not retry in step)."""
        limit = cap if cap is not None else self.cap_fraction * max(target_duration, 0.5)
        step = min(limit, self.base * 2 ** min(max(failures - 1, 0), 30))
        return random.uniform(step / 2, step)
