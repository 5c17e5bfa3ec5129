"""One publish, served by FFmpeg's RTMP listener and transcoded to HLS, in its own thread.

PyAV releases the GIL while FFmpeg accepts, reads, decodes and encodes, so the asyncio
loop (relay and HTTP server) stays responsive while a worker blocks or transcodes.
"""

from __future__ import annotations

import errno
import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import av
from av.container import InputContainer

from streamer.origin.ladder import HlsLadder
from streamer.origin.llhls import UpdateCallback

if TYPE_CHECKING:
    from streamer.origin.webrtc import MediaFeed

log = logging.getLogger("streamer.origin")

# The whole accept + handshake + stream probing must fit in this; it also bounds a
# worker whose relay never connected.
OPEN_TIMEOUT_S = 20.0
READ_TIMEOUT_S = 10.0  # a publisher silent this long is gone
LISTEN_OPTIONS = {
    "listen": "1",
    # FLV carries codec parameters up front; half a second of probing is plenty and
    # keeps the publish -> first segment delay close to one GOP.
    "analyzeduration": "500000",
}


class PublishWorker(threading.Thread):
    """Listens on a private loopback port for exactly one relayed publisher, whose stream
    key the relay has already accepted."""

    def __init__(
        self,
        port: int,
        hls_root: Path,
        key: str,
        on_exit: Callable[[], None],
        on_ll_update: UpdateCallback | None = None,
        feed: MediaFeed | None = None,
    ) -> None:
        super().__init__(name=f"origin-publish-{port}", daemon=True)
        self.port = port
        self._on_ll_update = on_ll_update
        self._feed = feed  # the WHEP output's, when the origin serves WHEP
        self._on_exit = on_exit  # called from this thread, last
        self._out_dir = hls_root / key  # emptied by the relay when it accepted the key
        self.started_at: float | None = None  # monotonic, when FFmpeg had the streams
        self.frames = 0
        self.renditions: list[str] = []
        self.error: str | None = None

    def run(self) -> None:
        try:
            self._run()
        finally:
            self._on_exit()

    def _run(self) -> None:
        try:
            source = av.open(
                f"rtmp://127.0.0.1:{self.port}/live/origin",
                "r",
                format="flv",
                options=LISTEN_OPTIONS,
                timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S),
            )
        except (av.FFmpegError, OSError) as exc:
            self.error = f"publish did not start: {_describe(exc)}"
            return
        with source:
            self._serve(source)

    def _serve(self, source: InputContainer) -> None:
        if not source.streams.video:
            self.error = "publish has no video"
            return
        self.started_at = time.monotonic()
        try:
            ladder = HlsLadder(source, self._out_dir, self._on_ll_update)
        except (av.FFmpegError, OSError, ValueError) as exc:
            self.error = f"cannot start transcoding: {_describe(exc)}"
            return
        self.renditions = [f"{r.name} {r.width}x{r.height}" for r in ladder.renditions]
        self._open_feed(source)
        try:
            for packet in source.demux():
                self._feed_packet(packet)
                ladder.push(packet)
        except EOFError:
            pass
        except av.error.ExitError:  # PyAV's read timeout interrupted FFmpeg
            self.error = f"publisher sent nothing for {READ_TIMEOUT_S:g}s"
        except OSError as exc:
            # FFmpeg's RTMP server reports the publisher's goodbye as EIO.
            if not _is_end_of_publish(exc):
                self.error = f"reading the publish failed: {_describe(exc)}"
        except (av.FFmpegError, ValueError) as exc:
            self.error = f"transcoding failed: {_describe(exc)}"
        finally:
            self.frames = ladder.frames
            _finish(ladder)

    def _open_feed(self, source: InputContainer) -> None:
        if self._feed is None:
            return
        audio = source.streams.audio[0] if source.streams.audio else None
        try:
            self._feed.open(source.streams.video[0], audio)
        except Exception as exc:  # the HLS output goes on regardless
            log.warning("no WHEP output for this publish: %s", _describe(exc), exc_info=True)
            self._feed = None

    def _feed_packet(self, packet: av.Packet[av.stream.Stream]) -> None:
        if self._feed is None:
            return
        try:
            self._feed.push(packet)
        except Exception as exc:  # the HLS output goes on regardless
            log.warning("WHEP output stopped: %s", _describe(exc), exc_info=True)
            self._feed = None


def fresh_directory(path: Path) -> Path:
    """Empties `path` (a previous session's segments) and returns it, ready to write."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _finish(ladder: HlsLadder) -> None:
    try:
        ladder.close()
    except (av.FFmpegError, OSError, ValueError) as exc:
        log.warning("finishing the HLS output failed: %s", _describe(exc))


def _is_end_of_publish(exc: OSError) -> bool:
    return exc.errno in (errno.EIO, errno.ECONNRESET, errno.EPIPE, None)


def _describe(exc: BaseException) -> str:
    # Never str(exc) of an FFmpeg error: it names the file, and output paths hold the key.
    strerror = getattr(exc, "strerror", None)
    if isinstance(exc, OSError | av.FFmpegError) and strerror:
        return str(strerror)
    return str(exc) or exc.__class__.__name__


# MPEG-TS arriving through a reader (SRT, WHIP) carries its codec parameters in-band:
# half a second of probing finds them.
TS_OPEN_OPTIONS = {"analyzeduration": "500000", "probesize": "500000"}


class TsPublishWorker(PublishWorker):
    """One publish whose MPEG-TS comes from a file-like `reader` (its `read(size)` blocks
    in this thread): PyAV reads it, the ladder writes HLS."""

    def __init__(
        self,
        reader: object,
        name: str,
        hls_root: Path,
        key: str,
        on_exit: Callable[[], None],
        on_ll_update: UpdateCallback | None = None,
    ) -> None:
        super().__init__(0, hls_root, key, on_exit, on_ll_update)
        self.name = name
        self._reader = reader

    def _run(self) -> None:
        try:
            source = av.open(self._reader, "r", format="mpegts", options=TS_OPEN_OPTIONS)
        except (av.FFmpegError, OSError) as exc:
            self.error = f"publish did not start: {exc.__class__.__name__}"
            return
        with source:
            self._serve(source)
