"""The public RTMP port: accepts publishers and relays each one to its own FFmpeg listener.

Why a relay in front of FFmpeg's listener rather than FFmpeg listening on the public port
itself: FFmpeg's listener accepts one connection and then stops listening, so a port
check (a connect without RTMP), a second publisher or a half-open connection would
refuse or block everyone else, and FFmpeg does not say which stream key arrived. Here
the port listens all the time; the front (rtmp_front) answers each publisher up to
`publish`, and only a publisher whose key is accepted gets a private listener and
transcoder (worker). A session's files stay for a playlist's length after it ends, for
the viewers still fetching its last segments, and are then removed: disk use stays
bounded however many keys come and go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import socket
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamer.origin.ladder import PLAYLIST_SEGMENTS, SEGMENT_SECONDS
from streamer.origin.llhls import UpdateCallback
from streamer.origin.rtmp_chunks import ChunkError
from streamer.origin.rtmp_front import (
    FrontError,
    PublisherLeftError,
    PublishRequest,
    accept_publish,
    confirm,
    hand_over,
    pass_downstream,
    refuse,
)
from streamer.origin.worker import PublishWorker, fresh_directory

if TYPE_CHECKING:
    from streamer.origin.webrtc import WhepHub

log = logging.getLogger("streamer.origin")

FIRST_BYTES_TIMEOUT_S = 10.0
PUBLISH_WITHIN_S = 10.0  # from the first byte to `publish`
CONNECT_WORKER_TIMEOUT_S = 5.0
HAND_OVER_TIMEOUT_S = 10.0
WORKER_EXIT_TIMEOUT_S = 1.5  # flushing the encoders and the playlists takes milliseconds
# RFC 8216 6.2.2 keeps a segment available for its duration plus the playlist's after it
# leaves the playlist; a finished session's files get the same.
RETAIN_AFTER_END_S = float((PLAYLIST_SEGMENTS + 1) * SEGMENT_SECONDS)
READ_SIZE = 65536
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

    def __init__(
        self,
        hls_root: Path,
        retain_after_end: float = RETAIN_AFTER_END_S,
        on_ll_update: UpdateCallback | None = None,
        whep: WhepHub | None = None,
    ) -> None:
        self._hls_root = hls_root
        self.on_ll_update = on_ll_update  # LL-HLS rendition states, for blocking requests
        self._whep = whep  # also serves each publish over WHEP
        self._retain_after_end = retain_after_end
        self._active_keys: set[str] = set()
        # Keys whose publisher has left while their transcoder finishes the files: the same
        # key published again meanwhile (a session right after the last) waits for that.
        self._finishing: dict[str, asyncio.Event] = {}
        self._removals: dict[str, asyncio.TimerHandle] = {}  # finished sessions' files
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def transcoders(self) -> int:
        """Publishes being transcoded now (each one a worker thread)."""
        return len(self._active_keys)

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
        for handle in self._removals.values():
            handle.cancel()
        self._removals.clear()

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
        try:
            async with asyncio.timeout(PUBLISH_WITHIN_S):
                request = await accept_publish(reader, writer, first)
        except PublisherLeftError as exc:
            log.debug("connection from %s: %s", peer, exc)
            return
        except FrontError as exc:
            raise RejectedError(str(exc)) from None
        except TimeoutError:
            raise RejectedError(f"no publish command within {PUBLISH_WITHIN_S:g}s") from None
        try:
            key = await self.claim(stream_key(request.stream_name))
        except RejectedError as exc:
            refuse(writer, request, str(exc))
            raise
        try:
            await self._transcode(key, request, reader, writer, peer)
        finally:
            self.release(key)

    def is_publishing(self, key: str) -> bool:
        return key in self._active_keys

    async def claim(self, key: str) -> str:
        """Reserves `key` for one publish (any ingest protocol) and empties its directory;
        RejectedError when it is publishing already. `release(key)` when it ends."""
        finishing = self._finishing.get(key)
        if finishing is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finishing.wait(), WORKER_EXIT_TIMEOUT_S + 0.5)
        if key in self._active_keys:
            raise RejectedError(f"stream key {mask_key(key)} is already publishing")
        self._active_keys.add(key)
        pending = self._removals.pop(key, None)
        if pending is not None:
            pending.cancel()
        # Before the transcoder starts, so that no viewer of this session (whose clock
        # starts with the first media packet) sees the previous session's files.
        fresh_directory(self._hls_root / key)
        return key

    def release(self, key: str) -> None:
        """The publish of `key` has ended and its files are finished."""
        self._active_keys.discard(key)
        finished = self._finishing.pop(key, None)
        if finished is not None:
            finished.set()
        self._schedule_removal(key)

    async def _transcode(
        self,
        key: str,
        request: PublishRequest,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
    ) -> None:
        exited = asyncio.Event()
        worker = PublishWorker(
            free_loopback_port(),
            self._hls_root,
            key,
            _threadsafe(exited.set),
            on_ll_update=self.on_ll_update,
            feed=self._whep.feed(key) if self._whep is not None else None,
        )
        worker.start()
        try:
            upstream_reader, upstream = await _connect_worker(worker)
        except OSError as exc:
            await _worker_exit(exited)
            refuse(writer, request, "no transcoder")
            raise RejectedError(f"no transcoder ({worker.error or exc})") from None
        self._writers.add(upstream)
        try:
            try:
                async with asyncio.timeout(HAND_OVER_TIMEOUT_S):
                    answers = await hand_over(request, upstream_reader, upstream)
            except (FrontError, ChunkError, OSError, asyncio.IncompleteReadError) as exc:
                refuse(writer, request, "the transcoder did not start")
                raise RejectedError(f"transcoder hand-over failed: {_reason(exc)}") from None
            except TimeoutError:
                refuse(writer, request, "the transcoder did not start")
                raise RejectedError("transcoder hand-over timed out") from None
            confirm(writer, request)
            log.info(
                "publisher connected: key %s, app %s, from %s",
                mask_key(key),
                request.app or "?",
                peer,
            )
            await _pump_both(
                _copy(reader, upstream), pass_downstream(upstream_reader, answers, writer)
            )
        finally:
            self._finishing.setdefault(key, asyncio.Event())  # the publisher has gone
            await _close(upstream)
            self._writers.discard(upstream)
            await _worker_exit(exited)
            if self._whep is not None:
                self._whep.ended(key)
            _log_end(worker, key)

    def _schedule_removal(self, key: str) -> None:
        loop = asyncio.get_running_loop()
        self._removals[key] = loop.call_later(self._retain_after_end, self._remove, key)

    def _remove(self, key: str) -> None:
        self._removals.pop(key, None)
        if key in self._active_keys:
            return  # published again meanwhile: those files are the new session's
        shutil.rmtree(self._hls_root / key, ignore_errors=True)
        log.debug("removed the files of key %s's finished session", mask_key(key))


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(READ_SIZE):
        writer.write(data)
        await writer.drain()


async def _pump_both(
    uplink: Coroutine[Any, Any, None], downlink: Coroutine[Any, Any, None]
) -> None:
    """Runs both directions until either ends; a peer hanging up is a normal end."""
    tasks = [asyncio.ensure_future(uplink), asyncio.ensure_future(downlink)]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        exc = task.exception()
        if exc is not None and not isinstance(exc, ConnectionError):
            raise exc  # a bug worth a traceback


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


def _log_end(worker: PublishWorker, key: str) -> None:
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


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) if isinstance(exc, FrontError | ChunkError) else type(exc).__name__


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 1.0)
