"""Publisher pacing: on the monotonic clock (a wall-clock step neither stalls nor bursts),
and a stop that ends the publish on a whole GOP."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

import streamer.publish.publisher as publisher_module
from streamer.publish.flv import FlvClip
from streamer.publish.pacing import pacing_clock
from streamer.publish.publisher import Publisher
from streamer.publish.rtmp import VIDEO
from streamer.testsignal.clip import ClipSpec
from streamer.urls import parse_ingest


class _CountingConnection:
    """Stands in for the socket: counts the video packets handed to it."""

    def __init__(self) -> None:
        self.video_packets = 0

    def send_media(self, type_id: int, timestamp_ms: int, body: bytes) -> None:
        if type_id == VIDEO:
            self.video_packets += 1

    async def drain(self) -> None:
        return None


class _SteppedWallClock:
    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.monotonic() + 1_700_000_000.0 + self.offset


class _PatchedTime:
    """The `time` module as the publisher sees it, with a wall clock that can step."""

    def __init__(self, clock: _SteppedWallClock) -> None:
        self.time = clock.time
        self.monotonic = time.monotonic


@pytest.mark.parametrize("step", [-30.0, 30.0])
async def test_wall_clock_step_neither_stalls_nor_bursts(
    flv: FlvClip, monkeypatch: pytest.MonkeyPatch, step: float
) -> None:
    spec = ClipSpec()
    clock = _SteppedWallClock()
    monkeypatch.setattr(publisher_module, "time", _PatchedTime(clock))
    publisher = Publisher(flv, spec.frame_count, spec.fps, parse_ingest("rtmp://h/live/k"))
    connection = _CountingConnection()
    task = asyncio.create_task(publisher._stream(connection, None))  # type: ignore[arg-type]
    await asyncio.sleep(0.5)
    before = connection.video_packets
    clock.offset = step
    await asyncio.sleep(1.0)
    sent_in_window = connection.video_packets - before
    publisher.stop()
    await task
    # One second at 30 fps, give or take the 50 ms send batches and a busy machine.
    assert 20 <= sent_in_window <= 40
    sent = publisher.send_log.sent_at(publisher.send_log.frames_sent - 1)
    assert sent is not None and abs(sent - clock.time()) < 0.5  # the log keeps wall time


async def test_stop_ends_the_publish_right_before_the_next_keyframe(flv: FlvClip) -> None:
    spec = ClipSpec()
    publisher = Publisher(flv, spec.frame_count, spec.fps, parse_ingest("rtmp://h/live/k"))
    connection = _CountingConnection()
    task = asyncio.create_task(publisher._stream(connection, None))  # type: ignore[arg-type]
    await asyncio.sleep(0.3)
    publisher.stop()
    await asyncio.wait_for(task, timeout=spec.gop_seconds + 1)
    # One whole GOP: frames 0 .. gop-1, and not the keyframe that starts the next one.
    assert connection.video_packets == 1 + spec.gop_frames  # the sequence header first
    assert publisher.send_log.frames_sent == spec.gop_frames


async def test_publishers_due_within_one_tick_wake_together_and_never_before() -> None:
    clock = pacing_clock()
    tick = clock.tick
    boundary = (math.ceil(time.monotonic() / tick) + 2) * tick
    woken: dict[int, float] = {}

    async def wait(i: int, deadline: float) -> None:
        await clock.sleep_until(deadline)
        woken[i] = time.monotonic()

    deadlines = [boundary - tick + tick * (i + 1) / 12 for i in range(10)]
    tasks = [asyncio.create_task(wait(i, d)) for i, d in enumerate(deadlines)]
    cancelled = asyncio.create_task(wait(99, deadlines[3]))
    await asyncio.sleep(0)
    cancelled.cancel()  # one publisher stopping does not cancel the tick for the others
    await asyncio.gather(*tasks)
    assert sorted(woken) == list(range(10))
    assert min(woken.values()) >= boundary - 0.002
    assert max(woken.values()) - min(woken.values()) < 0.005  # one pass of the loop
