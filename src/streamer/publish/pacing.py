"""One pacing clock for every publisher of an event loop.

Each publisher sends the packets due within the next batch and then sleeps until its next
packet is due. With their own timers, N publishers started at different moments wake the
loop N times per batch period, each wake-up one pass of the loop for one socket write. On
a shared tick grid (monotonic clock, `TICK_SECONDS` apart) the loop wakes once per tick and
every publisher due by then writes in that one pass: the same packets, the same bound on
how early they leave (a tick), a fraction of the wake-ups.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref

TICK_SECONDS = 0.05


class PacingClock:
    """Wakes waiters on the tick at or after their deadline, one timer per tick."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float = TICK_SECONDS) -> None:
        self._loop = loop
        self.tick = tick
        self._ticks: dict[int, asyncio.Event] = {}

    async def sleep_until(self, deadline: float) -> None:
        """Returns at the first tick at or after `deadline` (monotonic seconds)."""
        index = math.ceil(deadline / self.tick)
        event = self._ticks.get(index)
        if event is None:
            event = self._ticks[index] = asyncio.Event()
            delay = max(0.0, index * self.tick - time.monotonic())
            self._loop.call_later(delay, self._fire, index)
        # Each waiter waits on its own future inside the event: a cancelled publisher does
        # not cancel the tick for the others.
        await event.wait()

    def _fire(self, index: int) -> None:
        event = self._ticks.pop(index, None)
        if event is not None:
            event.set()


_clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PacingClock] = (
    weakref.WeakKeyDictionary()
)


def pacing_clock() -> PacingClock:
    """The running loop's clock."""
    loop = asyncio.get_running_loop()
    clock = _clocks.get(loop)
    if clock is None:
        clock = _clocks[loop] = PacingClock(loop)
    return clock
