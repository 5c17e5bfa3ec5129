"""The embedded origin as a child process of the monitor (`streamer origin`).

A child process keeps the origin's FFmpeg work (which can hold the GIL) away from the
monitor's measurements, and lets the monitor end it cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedOrigin:
    def __init__(self) -> None:
        self.rtmp_port = _free_port()
        self.http_port = _free_port()
        self._process: asyncio.subprocess.Process | None = None

    def ingest_url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{key}"

    def playback_url(self, key: str) -> str:
        return f"http://127.0.0.1:{self.http_port}/hls/{key}/index.m3u8"

    def describe(self) -> str:
        return f"RTMP 127.0.0.1:{self.rtmp_port}, HLS http://127.0.0.1:{self.http_port}/hls/"

    async def start(self, within: float = 20.0) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "streamer",
            "origin",
            "--rtmp-port",
            str(self.rtmp_port),
            "--http-port",
            str(self.http_port),
        )
        async with asyncio.timeout(within):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.http_port)
                except OSError:
                    if self._process.returncode is not None:
                        raise RuntimeError("the embedded origin failed to start") from None
                    await asyncio.sleep(0.1)
                    continue
                writer.close()
                return

    async def stop(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            async with asyncio.timeout(3):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
