"""The public RTMP port: accepts publishers and relays each one to its own FFmpeg listener.

Why a relay in front of FFmpeg's listener rather than FFmpeg listening on the public port
itself: FFmpeg's listener accepts one connection and then stops listening, so a port
check (a connect without RTMP), a second publisher or a half-open connection would
refuse or block everyone else, and FFmpeg does not say which stream key arrived. Here
the port listens all the time, each publisher gets a private listener and transcoder,
and the relay reads the stream key on the way (rtmp_sniff).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from streamer.origin.rtmp_sniff import PublishSniffer, SniffError
from streamer.origin.worker import PublishWorker, fresh_directory

log = logging.getLogger("streamer.origin")

FIRST_BYTES_TIMEOUT_S = 10.0
CONNECT_WORKER_TIMEOUT_S = 5.0
WORKER_EXIT_TIMEOUT_S = 1.5  # flushing the encoders and the playlists takes milliseconds
READ_SIZE = 65536
_KeyCallback = Callable[[str | None, str], None]  # (app, stream name)
# The key names a directory and a URL path: plain characters only, never "..".
_KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class RejectedError(Exception):
    """A publisher that the origin turns away; the message is safe to log."""


def mask_key(key: str) -> str:
    """Same rule as the ingest URL masking: first 4 characters, and only of long keys."""
    return key[:4] + "****" if len(key) > 8 else "****"


def stream_key(stream_name: str) -> str:
    """The key in an RTMP stream name ("key" or "key?query"); raises RejectedError."""
    key = stream_name.split("?", 1)[0]
    if not _KEY_PATTERN.fullmatch(key):
        raise RejectedError("stream key must be 1-128 letters, digits, '.', '_' or '-'")
    return key


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PublishRelay:
    """asyncio's connection handler for the RTMP port; `close()` ends every publish."""

    def __init__(self, hls_root: Path) -> None:
        self._hls_root = hls_root
        self._active_keys: set[str] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        peer = _peer(writer)
        try:
            await self._serve(reader, writer, peer)
        except RejectedError as exc:
            log.warning("publish from %s rejected: %s", peer, exc)
        except Exception:
            log.exception("publish from %s failed", peer)
        finally:
            await _close(writer)
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def close(self) -> None:
        """Disconnects every publisher; their workers then finish their HLS output."""
        for writer in list(self._writers):
            writer.close()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=WORKER_EXIT_TIMEOUT_S + 0.5)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        try:
            first = await asyncio.wait_for(reader.read(READ_SIZE), FIRST_BYTES_TIMEOUT_S)
        except (TimeoutError, OSError):
            return
        if not first:
            return  # a port check: connected and left without a word
        if first[0] != 3:  # C0, the RTMP version
            raise RejectedError(f"not RTMP (first byte {first[0]})")
        exited = asyncio.Event()
        worker = PublishWorker(free_loopback_port(), self._hls_root, _threadsafe(exited.set))
        worker.start()
        try:
            upstream_reader, upstream = await _connect_worker(worker)
        except OSError as exc:
            await _worker_exit(exited)
            raise RejectedError(f"no transcoder ({worker.error or exc})") from None
        self._writers.add(upstream)
        key: list[str] = []  # set once the publisher names its key
        try:
            await _pump_both(
                _Uplink(reader, upstream, first, self._on_stream_name(worker, peer, key)),
                _copy(upstream_reader, writer),
            )
        finally:
            await _close(upstream)
            self._writers.discard(upstream)
            await _worker_exit(exited)
            if key:
                self._active_keys.discard(key[0])
            _log_end(worker, key[0] if key else None, peer)

    def _on_stream_name(self, worker: PublishWorker, peer: str, claimed: list[str]) -> _KeyCallback:
        def on_stream_name(app: str | None, name: str) -> None:
            key = stream_key(name)
            if key in self._active_keys:
                raise RejectedError(f"stream key {mask_key(key)} is already publishing")
            self._active_keys.add(key)
            claimed.append(key)
            # Before any media arrives, so that no viewer of this session (whose clock
            # starts with the first media packet) sees the previous session's files.
            fresh_directory(self._hls_root / key)
            worker.set_key(key)
            log.info(
                "publisher connected: key %s, app %s, from %s", mask_key(key), app or "?", peer
            )

        return on_stream_name


class _Uplink:
    """Publisher -> worker bytes, read by the sniffer until the key is known."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        first: bytes,
        on_stream_name: _KeyCallback,
    ) -> None:
        self._reader, self._writer, self._first = reader, writer, first
        self._on_stream_name = on_stream_name
        self._sniffer = PublishSniffer()

    async def run(self) -> None:
        data = self._first
        while data:
            if not self._sniffer.done:
                self._sniff(data)
            self._writer.write(data)
            await self._writer.drain()
            data = await self._reader.read(READ_SIZE)

    def _sniff(self, data: bytes) -> None:
        try:
            self._sniffer.feed(data)
        except SniffError as exc:
            raise RejectedError(str(exc)) from None
        if self._sniffer.stream_name is not None:
            # Before the publish command reaches FFmpeg: the worker knows the key by
            # the time FFmpeg hands it the streams.
            self._on_stream_name(self._sniffer.app, self._sniffer.stream_name)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(READ_SIZE):
        writer.write(data)
        await writer.drain()


async def _pump_both(uplink: _Uplink, downlink: Coroutine[Any, Any, None]) -> None:
    """Runs both directions until either ends; a peer hanging up is a normal end."""
    tasks = [asyncio.ensure_future(uplink.run()), asyncio.ensure_future(downlink)]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        exc = task.exception()
        if exc is not None and not isinstance(exc, ConnectionError):
            raise exc  # a rejection, or a bug worth a traceback


async def _connect_worker(
    worker: PublishWorker,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connects once FFmpeg listens; refusals before that are expected and retried."""
    deadline = time.monotonic() + CONNECT_WORKER_TIMEOUT_S
    while True:
        try:
            return await asyncio.open_connection("127.0.0.1", worker.port)
        except OSError:
            if not worker.is_alive() or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.005)


async def _worker_exit(exited: asyncio.Event) -> None:
    """Gives the worker time to finish its output (EXT-X-ENDLIST) after its input ended."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(exited.wait(), WORKER_EXIT_TIMEOUT_S)


def _threadsafe(callback: Callable[[], None]) -> Callable[[], None]:
    """`callback`, callable from another thread; a no-op once the loop has closed."""
    loop = asyncio.get_running_loop()

    def call() -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(callback)

    return call


def _log_end(worker: PublishWorker, key: str | None, peer: str) -> None:
    if key is None:
        log.debug("connection from %s ended before publishing: %s", peer, worker.error)
        return
    seconds = time.monotonic() - worker.started_at if worker.started_at else 0.0
    outcome = f"error: {worker.error}" if worker.error else "ok"
    log.info(
        "publisher disconnected: key %s after %.1fs, %d frames, renditions [%s], %s",
        mask_key(key),
        seconds,
        worker.frames,
        ", ".join(worker.renditions),
        outcome,
    )


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 1.0)
