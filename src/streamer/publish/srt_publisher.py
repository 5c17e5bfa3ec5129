"""Publishes the pre-encoded clip as MPEG-TS over SRT (live mode, caller) in real time.

No process per stream: libsrt through ctypes, in this process. The connect blocks (the
handshake, up to the connect timeout), so it runs in a worker thread; sends are
non-blocking (SRTO_SNDSYN off) and go from the event loop, paced like the RTMP publisher:
each video frame's TS bytes (with the audio muxed beside it) leave at the frame's time, in
messages of at most 1316 bytes (7 TS packets), and the send log records when. A session
ends right before a keyframe, so that it published whole GOPs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable

from streamer.publish import libsrt
from streamer.publish.errors import PublishError
from streamer.publish.flv import FlvClip
from streamer.publish.ingest import LinkSample
from streamer.publish.sendlog import SendLog
from streamer.publish.srt_url import SrtURL
from streamer.publish.tsclip import TS_PACKET, TsClip, cached_ts

MESSAGE_BYTES = 7 * TS_PACKET  # 1316: SRT's live-mode payload for MPEG-TS
# Frames due within this window are sent in one wake-up: fewer timer callbacks per stream.
_BATCH_SECONDS = 0.05
STATS_INTERVAL_SECONDS = 2.0
_FULL_BUFFER_RETRY_SECONDS = 0.01
_DRAIN_SECONDS = 1.0  # at the end, how long the last GOP may take to leave the send buffer

# Listener reject codes (SRT access control, 1400s as in HTTP) and what they say.
_REJECT_NAMES = {
    1000: "rejected",
    1400: "bad request",
    1401: "unauthorized",
    1403: "forbidden",
    1404: "not found",
    1409: "conflict: already published",
    1503: "service unavailable",
}


def connect_failure(error: libsrt.SrtError, target: SrtURL, timeout: float) -> PublishError:
    """The publish_failed reason for a failed SRT handshake, from libsrt's reject reason."""
    where = f"{target.host}:{target.port}"
    reject = error.reject
    if reject == libsrt.REJ_TIMEOUT or error.code == libsrt.ENOSERVER:
        return PublishError(
            f"connection refused or timed out: no SRT listener answered at {where} within "
            f"{timeout:g}s"
        )
    if reject == libsrt.REJ_BADSECRET:
        return PublishError(f"passphrase mismatch: {where} rejected the passphrase")
    if reject == libsrt.REJ_UNSECURE:
        if target.passphrase:
            return PublishError(f"encryption failure: {where} takes no passphrase")
        return PublishError(f"passphrase missing: {where} requires one (encryption failure)")
    if reject >= libsrt.REJX_PREDEFINED or reject == libsrt.REJ_PEER:
        name = _REJECT_NAMES.get(reject, libsrt.reject_text(reject))
        return PublishError(f"stream id rejected by {where} ({name}, code {reject})")
    if reject:
        return PublishError(f"connection rejected by {where}: {libsrt.reject_text(reject)}")
    return PublishError(f"cannot connect to {where}: {error}")


class SrtPublisher:
    def __init__(
        self,
        flv: FlvClip,
        frames_per_loop: int,
        fps: int,
        target: SrtURL,
        *,
        connect_timeout: float = 10.0,
        io_timeout: float = 10.0,
        on_link_stats: Callable[[LinkSample], None] | None = None,
    ) -> None:
        self._flv = flv
        self._frames_per_loop = frames_per_loop
        self._fps = fps
        self._target = target
        self._connect_timeout = connect_timeout
        self._io_timeout = io_timeout
        self._on_link_stats = on_link_stats
        self._stopping = False
        self._last_totals = (0, 0)  # retransmitted, dropped: reported so far
        self.send_log = SendLog(frames_per_loop, fps)

    def stop(self) -> None:
        """Asks the running publish to end cleanly, right before its next keyframe."""
        self._stopping = True

    async def run(self, on_connected: Callable[[float], None] | None = None) -> None:
        """Publishes until stop(); raises PublishError when the ingest fails."""
        ts = await asyncio.to_thread(cached_ts, self._flv, self._frames_per_loop, self._fps)
        sock = await self._connect()
        stats = asyncio.create_task(self._report_stats(sock), name="srt-stats")
        try:
            await self._stream(sock, ts, on_connected)
            await self._drain(sock)
        finally:
            stats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stats
            self._sample(sock)
            sock.close()

    def _socket(self) -> libsrt.Socket:
        target = self._target
        sock = libsrt.Socket()
        try:
            sock.set_int(libsrt.TRANSTYPE, libsrt.TRANSTYPE_LIVE)
            sock.set_int(libsrt.CONNTIMEO, max(1, round(self._connect_timeout * 1000)))
            sock.set_int(libsrt.LATENCY, target.latency_ms)
            sock.set_bool(libsrt.SNDSYN, False)
            if target.streamid is not None:
                sock.set_text(libsrt.STREAMID, target.streamid)
            if target.passphrase is not None:
                sock.set_text(libsrt.PASSPHRASE, target.passphrase)
            if target.pbkeylen is not None:
                sock.set_int(libsrt.PBKEYLEN, target.pbkeylen)
        except libsrt.SrtError:
            sock.close()
            raise
        return sock

    async def _connect(self) -> libsrt.Socket:
        target = self._target
        try:
            sock = self._socket()
        except libsrt.SrtError as exc:
            raise PublishError(f"cannot set up the SRT socket: {exc}") from None
        try:
            await asyncio.to_thread(sock.connect, target.host, target.port)
        except libsrt.SrtError as exc:
            sock.close()
            raise connect_failure(exc, target, self._connect_timeout) from None
        except socket.gaierror:
            sock.close()
            raise PublishError(f"unknown host {target.host}") from None
        except BaseException:
            sock.close()  # a cancelled connect: closing ends the handshake in its thread
            raise
        return sock

    async def _stream(
        self,
        sock: libsrt.Socket,
        ts: TsClip,
        on_connected: Callable[[float], None] | None,
    ) -> None:
        loop_seconds = float(ts.loop_seconds)
        start: float | None = None  # monotonic time of the clip's offset 0
        loop = 0
        while True:
            base = loop * loop_seconds
            for frame in ts.frames:
                if self._stopping and frame.keyframe:
                    return
                due = base + frame.due
                if start is not None:
                    delay = start + due - time.monotonic()
                    if delay > _BATCH_SECONDS:
                        await asyncio.sleep(delay)
                        if self._stopping and frame.keyframe:
                            return
                await self._send(sock, ts.chunk(frame.start, frame.end, loop))
                now = time.time()
                if start is None:
                    start = time.monotonic() - due
                    self.send_log.first_packet_at = now
                    if on_connected is not None:
                        on_connected(now)
                self.send_log.record(loop * self._frames_per_loop + frame.frame, now)
            loop += 1

    async def _send(self, sock: libsrt.Socket, data: bytes) -> None:
        view = memoryview(data)
        for offset in range(0, len(view), MESSAGE_BYTES):
            message = bytes(view[offset : offset + MESSAGE_BYTES])
            deadline: float | None = None
            while True:
                try:
                    sock.send(message)
                    break
                except libsrt.SrtError as exc:
                    if exc.code != libsrt.EASYNCSND:
                        raise PublishError(f"connection lost ({exc})") from None
                # The send buffer is full: the link or the listener is not keeping up.
                now = time.monotonic()
                deadline = deadline if deadline is not None else now + self._io_timeout
                if now >= deadline:
                    raise PublishError(
                        f"ingest stopped taking data for {self._io_timeout:g}s (send buffer full)"
                    )
                await asyncio.sleep(_FULL_BUFFER_RETRY_SECONDS)

    async def _drain(self, sock: libsrt.Socket) -> None:
        """Lets the last GOP leave the send buffer, and the listener deliver it (it holds
        each packet for the latency window), before the socket closes: a listener drops
        what it still holds when the connection ends."""
        deadline = time.monotonic() + _DRAIN_SECONDS
        while time.monotonic() < deadline:
            try:
                if sock.stats().send_buffer_bytes == 0:
                    break
            except libsrt.SrtError:
                return
            await asyncio.sleep(0.02)
        await asyncio.sleep(self._target.latency_ms / 1000)

    async def _report_stats(self, sock: libsrt.Socket) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL_SECONDS)
            self._sample(sock)

    def _sample(self, sock: libsrt.Socket) -> None:
        if self._on_link_stats is None:
            return
        try:
            stats = sock.stats()
        except libsrt.SrtError:
            return
        retransmitted, dropped = self._last_totals
        self._last_totals = (stats.packets_retransmitted, stats.packets_dropped)
        self._on_link_stats(
            LinkSample(
                at=time.time(),
                rtt_seconds=stats.rtt_seconds,
                packets_retransmitted=max(0, stats.packets_retransmitted - retransmitted),
                packets_dropped=max(0, stats.packets_dropped - dropped),
                send_buffer_bytes=stats.send_buffer_bytes,
            )
        )
