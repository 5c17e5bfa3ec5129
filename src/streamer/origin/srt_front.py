"""The embedded origin's SRT port: publishers send MPEG-TS over SRT with their stream key as
the streamid, and each accepted publish goes through the same HLS ladder as RTMP's.

The PyAV wheels have no SRT, so libsrt (through ctypes, as the SRT publisher uses it)
listens and receives; PyAV demuxes the received TS from a file-like reader, in the
publish's own worker thread. A streamid that is no valid key is rejected in the handshake
(SRT access-control code 1400), one that is publishing already with 1409 (conflict): the
publisher sees why. Keys are shared with the RTMP port: one publish per key, whichever
protocol it comes by.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from streamer.origin.llhls import UpdateCallback
from streamer.origin.relay import PublishRelay, RejectedError, mask_key, stream_key
from streamer.origin.worker import READ_TIMEOUT_S, TsPublishWorker
from streamer.publish import libsrt

log = logging.getLogger("streamer.origin")

REJECT_BAD_KEY = 1400  # SRT_REJX_BAD_REQUEST
REJECT_BUSY = 1409  # SRT_REJX_CONFLICT
LATENCY_MS = 120  # libsrt's live default; a caller asking for more gets its own
_MESSAGE = 1500


# MPEG-TS from an encoder carries codec parameters with every keyframe: half a second of
# probing finds them and keeps the publish -> first segment delay near one GOP.
class _SrtReader:
    """A file-like view of one SRT receiver for PyAV: `read` returns the next message."""

    def __init__(self, sock: libsrt.Socket) -> None:
        self._sock = sock
        self._pending = b""
        self.timed_out = False

    def read(self, size: int = -1) -> bytes:
        if not self._pending:
            try:
                self._pending = self._sock.receive(_MESSAGE)
            except libsrt.SrtError:
                self.timed_out = True  # nothing for READ_TIMEOUT_S: the publisher is gone
                return b""
        if size < 0 or size >= len(self._pending):
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:size], self._pending[size:]
        return data


class SrtPublishWorker(TsPublishWorker):
    """One SRT publish: PyAV reads the TS from the socket, the ladder writes HLS."""

    def __init__(
        self,
        sock: libsrt.Socket,
        hls_root: Path,
        key: str,
        on_exit: Callable[[], None],
        on_ll_update: UpdateCallback | None = None,
    ) -> None:
        self._srt_reader = _SrtReader(sock)
        super().__init__(
            self._srt_reader, "origin-srt-publish", hls_root, key, on_exit, on_ll_update
        )

    def _run(self) -> None:
        super()._run()
        if self._srt_reader.timed_out and self.error is None:
            self.error = f"publisher sent nothing for {READ_TIMEOUT_S:g}s"


class SrtFront:
    """Listens on host:port (UDP); `start()` raises OSError when it cannot bind."""

    def __init__(self, relay: PublishRelay, hls_root: Path, host: str, port: int) -> None:
        self._relay = relay
        self._hls_root = hls_root
        self._address = (host, port)
        self._listener: libsrt.Socket | None = None
        self._thread: threading.Thread | None = None
        self._callers: set[libsrt.Socket] = set()
        self._tasks: set[concurrent.futures.Future[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            listener = libsrt.Socket()
        except (libsrt.SrtError, libsrt.SrtUnavailableError) as exc:
            raise OSError(f"SRT: {exc}") from None
        try:
            listener.set_int(libsrt.TRANSTYPE, libsrt.TRANSTYPE_LIVE)
            listener.set_int(libsrt.LATENCY, LATENCY_MS)
            listener.bind(*self._address)
            listener.listen(16, self._judge)
        except libsrt.SrtError as exc:
            listener.close()
            raise OSError(f"SRT: {exc}") from None
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, name="origin-srt", daemon=True)
        self._thread.start()

    def _judge(self, _caller: libsrt.Socket, streamid: str) -> int:
        """In libsrt's handshake thread: whether this caller may publish."""
        try:
            key = stream_key(streamid)
        except RejectedError:
            return REJECT_BAD_KEY
        return REJECT_BUSY if self._relay.is_publishing(key) else 0

    def _accept(self) -> None:
        listener, loop = self._listener, self._loop
        assert listener is not None and loop is not None
        while True:
            try:
                caller = listener.accept()
            except libsrt.SrtError:
                return  # the listener closed
            try:
                future = asyncio.run_coroutine_threadsafe(self._serve(caller), loop)
            except RuntimeError:  # the loop has closed
                caller.close()
                return
            self._tasks.add(future)
            future.add_done_callback(self._tasks.discard)

    async def _serve(self, caller: libsrt.Socket) -> None:
        self._callers.add(caller)
        try:
            key = stream_key(caller.get_text(libsrt.STREAMID))
            await self._relay.claim(key)
        except (RejectedError, libsrt.SrtError) as exc:
            log.warning("SRT publish rejected: %s", exc)
            self._callers.discard(caller)
            caller.close()
            return
        try:
            caller.set_int(libsrt.RCVTIMEO, round(READ_TIMEOUT_S * 1000))
            exited = asyncio.Event()
            loop = asyncio.get_running_loop()

            def on_exit() -> None:  # in the worker's thread, last
                with contextlib.suppress(RuntimeError):  # the loop has closed
                    loop.call_soon_threadsafe(exited.set)

            worker = SrtPublishWorker(
                caller, self._hls_root, key, on_exit, self._relay.on_ll_update
            )
            log.info("SRT publisher connected: key %s", mask_key(key))
            worker.start()
            await exited.wait()
            outcome = f"error: {worker.error}" if worker.error else "ok"
            log.info(
                "SRT publisher disconnected: key %s, %d frames, %s",
                mask_key(key),
                worker.frames,
                outcome,
            )
        finally:
            self._callers.discard(caller)
            caller.close()
            self._relay.release(key)

    async def close(self) -> None:
        """Stops listening and ends every publish (their playlists get EXT-X-ENDLIST)."""
        if self._listener is not None:
            self._listener.close()
        for caller in list(self._callers):
            caller.close()  # a blocked read returns: the worker finishes its files
        if self._tasks:
            await asyncio.wait([asyncio.wrap_future(f) for f in self._tasks], timeout=3)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 2)
