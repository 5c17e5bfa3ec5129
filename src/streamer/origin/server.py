"""`streamer origin`: a local live origin, RTMP, SRT or WHIP in, an HLS ladder and WHEP out.

Publish to rtmp://HOST:RTMP_PORT/live/KEY (any app, any plain key) or to
srt://HOST:SRT_PORT?streamid=KEY (MPEG-TS); play http://HOST:HTTP_PORT/hls/KEY/index.m3u8,
or over WebRTC through WHEP at http://HOST:HTTP_PORT/whep/KEY (see webrtc.py). A WHIP
publish to http://HOST:HTTP_PORT/whip/KEY is forwarded to WHEP as sent and packaged as HLS
like the others (see whip.py, whip_hls.py).
One asyncio loop runs the RTMP relay, the SRT front (srt_front.py) and the HTTP server;
each accepted publish is transcoded in its own thread (see relay.py,
worker.py). A finished session's files are removed a playlist's length after it ends.
Runs until SIGTERM or SIGINT (or, started by the monitor, until the monitor is gone),
then ends every publish (their playlists get EXT-X-ENDLIST), removes its files and
exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av.logging
from aiohttp import web

from streamer.exit_codes import EXIT_FAILURE, EXIT_OK
from streamer.origin.http import hls_app
from streamer.origin.llhls_http import LiveUpdates
from streamer.origin.relay import PublishRelay
from streamer.origin.srt_front import SrtFront
from streamer.origin.webrtc import WhepHub
from streamer.origin.whip import WhipIngest
from streamer.webrtc.ice import is_loopback_url

log = logging.getLogger("streamer.origin")

# Set by the monitor that runs the origin as its child: the origin stops when that
# process is gone (killed without the chance to stop it), instead of living on orphaned.
PARENT_PID_ENV = "STREAMER_ORIGIN_PARENT_PID"
# Where to write the HLS files, when the caller wants to know (and clean up after a kill).
HLS_DIR_ENV = "STREAMER_ORIGIN_HLS_DIR"
DEFAULT_SRT_PORT = 2935  # Livepeer's SRT port


@dataclass(frozen=True)
class OriginConfig:
    host: str = "127.0.0.1"
    rtmp_port: int = 1935
    http_port: int = 8080
    srt_port: int = 0  # 0: no SRT port
    srt_optional: bool = False  # the default port: taken, the origin runs without SRT


class Origin:
    """The running servers; `start()` binds both ports (OSError when it cannot)."""

    def __init__(self, config: OriginConfig, root: Path) -> None:
        self.config = config
        self.hls_root = root
        self._ll_updates = LiveUpdates()  # LL-HLS: fed by the transcoding threads
        loopback = is_loopback_url(f"http://{config.host}/")
        self.whep = WhepHub(loopback=loopback)
        self._relay = PublishRelay(root, on_ll_update=self._ll_updates.update, whep=self.whep)
        self._whip = WhipIngest(self._relay, self.whep, root, loopback=loopback)
        self._srt = (
            SrtFront(self._relay, root, config.host, config.srt_port) if config.srt_port else None
        )
        self._rtmp: asyncio.Server | None = None
        self._http: web.AppRunner | None = None

    async def start(self) -> None:
        self._ll_updates.attach(asyncio.get_running_loop())
        # RTMP first: whoever waits for the HTTP port may publish as soon as it answers.
        self._rtmp = await asyncio.start_server(
            self._relay.handle, self.config.host, self.config.rtmp_port
        )
        if self._srt is not None:
            try:
                self._srt.start()
            except OSError as exc:
                if not self.config.srt_optional:
                    raise
                log.warning("no SRT port (%s): RTMP only", exc)
                self._srt = None
        app = hls_app(self.hls_root, self._ll_updates)
        self.whep.add_routes(app)
        self._whip.add_routes(app)
        self._http = web.AppRunner(app, access_log=None)
        await self._http.setup()
        await web.TCPSite(self._http, self.config.host, self.config.http_port).start()

    @property
    def serves_srt(self) -> bool:
        return self._srt is not None

    async def stop(self) -> None:
        if self._rtmp is not None:
            self._rtmp.close()
        if self._srt is not None:
            await self._srt.close()
        await self._whip.close()
        await self._relay.close()
        await self.whep.close()
        if self._http is not None:
            await self._http.cleanup()


async def run_origin(config: OriginConfig) -> int:
    with _hls_directory() as root:
        origin = Origin(config, root)
        try:
            await origin.start()
        except OSError as exc:
            log.error("cannot listen on %s: %s", config.host, exc.strerror or exc)
            await origin.stop()
            return EXIT_FAILURE
        log.info(
            "listening: rtmp://%s:%d/live/<key> -> http://%s:%d/hls/<key>/index.m3u8"
            " and WHEP http://%s:%d/whep/<key>",
            config.host,
            config.rtmp_port,
            config.host,
            config.http_port,
            config.host,
            config.http_port,
        )
        log.info(
            "listening: WHIP http://%s:%d/whip/<key> (H.264, Opus) -> the same WHEP and HLS",
            config.host,
            config.http_port,
        )
        if origin.serves_srt:
            log.info(
                "listening: srt://%s:%d?streamid=<key> (MPEG-TS) -> the same HLS",
                config.host,
                config.srt_port,
            )
        log.info("HLS files in %s (removed at exit)", root)
        await _wait_for_stop_signal()
        log.info("stopping")
        await origin.stop()
    return EXIT_OK


@contextlib.contextmanager
def _hls_directory() -> Iterator[Path]:
    """A fresh temporary directory, or the one the caller gave (HLS_DIR_ENV) emptied of
    what a killed predecessor left; removed at exit either way."""
    given = os.environ.get(HLS_DIR_ENV)
    if not given:
        with tempfile.TemporaryDirectory(prefix="streamer-origin-") as temporary:
            yield Path(temporary)
        return
    root = Path(given)
    root.mkdir(parents=True, exist_ok=True)
    for entry in root.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _wait_for_stop_signal() -> None:
    # The handlers stay until the loop closes: a second signal (Ctrl-C reaches the whole
    # process group, then the monitor sends SIGTERM) must not cut the cleanup short.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    parent = os.environ.get(PARENT_PID_ENV, "")
    watch = asyncio.create_task(_parent_gone(int(parent))) if parent.isdigit() else None
    waits = [asyncio.create_task(stop.wait()), *([watch] if watch else [])]
    _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()


async def _parent_gone(pid: int) -> None:
    """Returns once process `pid` has ended (never, where pidfds are not available)."""
    gone = asyncio.Event()
    try:
        fd = os.pidfd_open(pid)  # readable once the process has exited
    except (AttributeError, OSError):
        if os.getppid() == pid:
            await asyncio.Event().wait()
        fd = None
    if fd is not None:
        loop = asyncio.get_running_loop()
        loop.add_reader(fd, gone.set)
        try:
            if os.getppid() == pid:  # not already gone before the watch began
                await gone.wait()
        finally:
            loop.remove_reader(fd)
            os.close(fd)
    log.warning("the monitor that started this origin is gone")


def origin_command(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s origin: %(message)s",
    )
    # FFmpeg's own messages can name the stream key ("Unexpected stream KEY"): keep them
    # off; failures reach us as exceptions, and we log those with the key masked.
    av.logging.set_level(None)
    # aiortc and aioice narrate every connectivity check at INFO.
    for name in ("aioice", "aiortc"):
        logging.getLogger(name).setLevel(logging.WARNING)
    config = OriginConfig(
        host=args.host,
        rtmp_port=args.rtmp_port,
        http_port=args.http_port,
        srt_port=DEFAULT_SRT_PORT if args.srt_port is None else args.srt_port,
        srt_optional=args.srt_port is None,
    )
    return asyncio.run(run_origin(config))
