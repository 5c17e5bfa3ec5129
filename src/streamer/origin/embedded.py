"""The embedded origin as a supervised child process of the monitor (`streamer origin`).

A child process keeps the origin's FFmpeg work (which can hold the GIL) away from the
monitor's measurements, and lets the monitor end it cleanly. `supervise()` restarts it
on the same ports when it dies; meanwhile `health()` says it is down and why, which the
monitor's /healthz reports. The child ends itself when the monitor goes away without
stopping it (see server.py, PARENT_PID_ENV), and writes into a directory the monitor
owns, so that a killed child's files are removed too (HLS_DIR_ENV).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

from streamer.origin.server import HLS_DIR_ENV, PARENT_PID_ENV

log = logging.getLogger("streamer.origin")

START_TIMEOUT_S = 20.0
RESTART_DELAYS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # then the last one, again and again


class OriginStartError(Exception):
    """The origin process did not come up; the message says why."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
        return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


class EmbeddedOrigin:
    def __init__(self) -> None:
        self.rtmp_port = _free_port()
        self.http_port = _free_port()
        # Ours, so that a killed child's files can go: each child empties it at start.
        self.hls_dir = Path(tempfile.mkdtemp(prefix="streamer-origin-"))
        self._process: asyncio.subprocess.Process | None = None
        self._down: str | None = "not started"  # why it is not serving, None while it is
        self._stopping = False
        self.restarts = 0

    def ingest_url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{key}"

    def playback_url(self, key: str) -> str:
        return f"http://127.0.0.1:{self.http_port}/hls/{key}/index.m3u8"

    def ll_playback_url(self, key: str) -> str:
        """The same stream as LL-HLS: CMAF parts, blocking reloads, preload hints."""
        return f"http://127.0.0.1:{self.http_port}/hls/{key}/ll/index.m3u8"

    def whep_url(self, key: str) -> str:
        return f"http://127.0.0.1:{self.http_port}/whep/{key}"

    def describe(self) -> str:
        return (
            f"RTMP 127.0.0.1:{self.rtmp_port}, HLS http://127.0.0.1:{self.http_port}/hls/, "
            f"WHEP http://127.0.0.1:{self.http_port}/whep/"
        )

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def health(self) -> tuple[bool, str]:
        if self._down is None:
            return True, "ok"
        return False, f"embedded origin down: {self._down}"

    async def start(self, within: float = START_TIMEOUT_S) -> None:
        """Starts the process and waits until its HTTP port answers; OriginStartError."""
        env = {**os.environ, PARENT_PID_ENV: str(os.getpid()), HLS_DIR_ENV: str(self.hls_dir)}
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "streamer",
                "origin",
                "--rtmp-port",
                str(self.rtmp_port),
                "--http-port",
                str(self.http_port),
                "--srt-port",  # the monitor publishes RTMP to it: no UDP port to share
                "0",
                env=env,
            )
        except OSError as exc:
            raise OriginStartError(f"cannot run it: {exc.strerror or exc}") from None
        self._process = process
        if self._stopping:  # stop() came while the process was being created
            await self._end(process)
            raise OriginStartError("stopped")
        try:
            async with asyncio.timeout(within):
                await self._wait_until_serving(process)
        except TimeoutError:
            await self._end(process)
            raise OriginStartError(f"its HTTP port did not answer within {within:g}s") from None
        self._down = None

    async def _wait_until_serving(self, process: asyncio.subprocess.Process) -> None:
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.http_port)
            except OSError:
                if process.returncode is not None:
                    raise OriginStartError(describe_exit(process.returncode)) from None
                await asyncio.sleep(0.1)
                continue
            writer.close()
            return

    async def supervise(self) -> None:
        """Restarts the origin whenever it dies, until `stop()`; runs as a task."""
        failures = 0
        while not self._stopping:
            process = self._process
            if process is not None and self._down is None:
                returncode = await process.wait()
                if self._stopping:
                    return
                self._down = describe_exit(returncode)
                log.error("the embedded origin died (%s): restarting it", self._down)
                failures = 0
            delay = RESTART_DELAYS_S[min(failures, len(RESTART_DELAYS_S) - 1)]
            await asyncio.sleep(delay)
            if self._stopping:
                return
            try:
                await self.start()
            except OriginStartError as exc:
                failures += 1
                self._down = f"restart failed: {exc}"
                log.error("the embedded origin did not restart: %s", exc)
                continue
            self.restarts += 1
            log.info("the embedded origin is back (restart %d)", self.restarts)

    async def stop(self) -> None:
        self._stopping = True
        if self._process is not None:
            await self._end(self._process)
        shutil.rmtree(self.hls_dir, ignore_errors=True)

    @staticmethod
    async def _end(process: asyncio.subprocess.Process) -> None:
        if process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            async with asyncio.timeout(3):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
