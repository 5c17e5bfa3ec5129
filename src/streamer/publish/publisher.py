"""Publishes the pre-encoded clip into an RTMP(S) ingest in real time, looped, in copy mode.

One asyncio task per publish: the clip's FLV tags are prepared once, so each send is a
header and a socket write. Timestamps are rewritten to keep rising across loops; the send
time of every video frame goes into the send log.

Pacing runs on the monotonic clock: a wall-clock step (NTP, a VM resumed) neither stalls
the publish nor bursts the step into the socket. The send log keeps wall-clock times, which
is what latency is measured against (a viewer's clock is the wall clock too).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from streamer.publish import amf0
from streamer.publish.errors import PublishError
from streamer.publish.flv import FlvClip
from streamer.publish.pacing import TICK_SECONDS, pacing_clock
from streamer.publish.rtmp import AUDIO, DATA_AMF0, VIDEO, RTMPPublishConnection
from streamer.publish.sendlog import SendLog
from streamer.urls import IngestURL

# Packets due within this window are sent in one wake-up: fewer timer callbacks per stream.
# The wake-ups of every publisher of the process fall on one shared tick grid
# (publish/pacing.py).
_BATCH_SECONDS = TICK_SECONDS


@dataclass(frozen=True)
class FaultInjection:
    """Test-only publisher faults: withhold some video frames, shift audio against video."""

    skip_frames: frozenset[int] = field(default_factory=frozenset)  # absolute frame numbers
    audio_shift_seconds: float = 0.0


class Publisher:
    def __init__(
        self,
        flv: FlvClip,
        frames_per_loop: int,
        fps: float,
        ingest: IngestURL,
        *,
        tls_context: ssl.SSLContext | None = None,
        connect_timeout: float = 10.0,
        io_timeout: float = 10.0,
        faults: FaultInjection | None = None,
    ) -> None:
        self._flv = flv
        self._frames_per_loop = frames_per_loop
        self._ingest = ingest
        self._tls_context = tls_context
        self._connect_timeout = connect_timeout
        self._io_timeout = io_timeout
        self._faults = faults or FaultInjection()
        self._stopping = False
        self.send_log = SendLog(frames_per_loop, fps)

    def stop(self) -> None:
        """Asks the running publish to end cleanly: right before its next keyframe.

        The last segment of the publish is then a whole GOP. A publish cut right after a
        keyframe leaves a one-frame segment behind; on an origin that keeps a stream key's
        playlist across publishes, the next session on that key would find it listed, with
        a frame number it has just sent itself, and take it for its own. Cancelling the
        publish task still ends it at once.
        """
        self._stopping = True

    async def run(self, on_connected: Callable[[float], None] | None = None) -> None:
        """Publishes until stop(); raises PublishError when the ingest fails."""
        connection = RTMPPublishConnection(
            self._ingest, tls_context=self._tls_context, io_timeout=self._io_timeout
        )
        await connection.connect(self._connect_timeout)
        try:
            await self._stream(connection, on_connected)
        finally:
            await connection.close()

    async def _stream(
        self, connection: RTMPPublishConnection, on_connected: Callable[[float], None] | None
    ) -> None:
        flv = self._flv
        connection.send_media(
            DATA_AMF0, 0, amf0.encode("@setDataFrame", "onMetaData", flv.metadata)
        )
        connection.send_media(VIDEO, 0, flv.video_sequence_header)
        connection.send_media(AUDIO, 0, flv.audio_sequence_header)
        loop_seconds = float(Fraction(self._frames_per_loop) / Fraction(self.send_log.fps))
        audio_shift = float(Fraction(self._faults.audio_shift_seconds).limit_denominator(1000))
        skip = self._faults.skip_frames
        # Per tag, once: (message type, offset in the loop in seconds, frame, keyframe,
        # body). Float seconds are exact to far below a millisecond here, and cheap to add.
        tags = [
            (
                VIDEO if tag.is_video else AUDIO,
                float(tag.dts) + (0.0 if tag.is_video else audio_shift),
                tag.frame,
                tag.is_video and tag.is_keyframe,
                tag.body,
            )
            for tag in flv.tags
        ]
        start: float | None = None  # monotonic time of the clip's offset 0
        clock = pacing_clock()
        loop = 0
        while True:
            base = loop * loop_seconds
            for type_id, offset, frame, keyframe, body in tags:
                if self._stopping and keyframe:
                    return
                absolute = -1
                if frame is not None:
                    absolute = loop * self._frames_per_loop + frame
                    if absolute in skip:
                        continue
                due = base + offset
                if start is not None:
                    delay = start + due - time.monotonic()
                    if delay > _BATCH_SECONDS:
                        await connection.drain()
                        await clock.sleep_until(start + due - _BATCH_SECONDS)
                        if self._stopping and keyframe:
                            return
                # A small constant offset keeps shifted audio timestamps non-negative.
                timestamp_ms = round((due + 1) * 1000)
                connection.send_media(type_id, timestamp_ms, body)
                now = time.time()
                if start is None:
                    await connection.drain()
                    now = time.time()
                    start = time.monotonic() - due
                    self.send_log.first_packet_at = now
                    if on_connected is not None:
                        on_connected(now)
                if absolute >= 0:
                    self.send_log.record(absolute, now)
            loop += 1


async def publish_until_stopped(
    publisher: Publisher, stop: asyncio.Event, on_connected: Callable[[float], None] | None = None
) -> None:
    """Runs `publisher` until `stop` is set; PublishError propagates."""
    task = asyncio.create_task(publisher.run(on_connected))
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        publisher.stop()
        await task
    finally:
        waiter.cancel()
        if not task.done():
            task.cancel()


__all__ = ["FaultInjection", "PublishError", "Publisher", "publish_until_stopped"]
