"""`streamer origin`, the embedded origin, started as the monitor starts it: a child process
on free loopback ports, stopped with SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from streamer.testsignal.clip import Clip
from tests.support.ports import free_port, wait_for_port


@dataclass
class Origin:
    process: subprocess.Popen[bytes]
    rtmp_port: int
    http_port: int
    log_path: Path
    srt_port: int = 0  # 0: SRT off

    def ingest_url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{key}"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def playback_url(self, key: str) -> str:
        return self.url(f"/hls/{key}/index.m3u8")

    def log(self) -> str:
        return self.log_path.read_text()


def start_origin(log_path: Path, *, srt: bool = False) -> Origin:
    rtmp_port, http_port = free_port(), free_port()
    srt_port = free_port() if srt else 0
    with log_path.open("wb") as log:  # the origin writes to its own copy
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamer",
                "origin",
                "--rtmp-port",
                str(rtmp_port),
                "--http-port",
                str(http_port),
                "--srt-port",
                str(srt_port),
            ],
            stderr=log,
        )
    wait_for_port(http_port, timeout=20)
    return Origin(process, rtmp_port, http_port, log_path, srt_port)


def stop_origin(origin: Origin) -> float:
    """SIGTERM; returns how long the origin took to exit."""
    started = time.monotonic()
    origin.process.send_signal(signal.SIGTERM)
    try:
        origin.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        origin.process.kill()
        origin.process.wait()
    return time.monotonic() - started


@contextlib.contextmanager
def running_origin(log_path: Path, *, srt: bool = False) -> Iterator[Origin]:
    """An origin for the block, stopped after it unless the test stopped it already."""
    origin = start_origin(log_path, srt=srt)
    try:
        yield origin
    finally:
        if origin.process.poll() is None:
            stop_origin(origin)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def get(url: str, timeout: float = 5.0) -> Response:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return Response(answer.status, dict(answer.headers), answer.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, dict(error.headers), error.read())


def ffmpeg_publish(clip: Clip, url: str, seconds: float) -> subprocess.Popen[bytes]:
    """ffmpeg publishing the clip; use it in `with` (or `communicate()`), which closes its
    stderr pipe."""
    return subprocess.Popen(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-i",
            str(clip.path),
            "-t",
            str(seconds),
            "-c",
            "copy",
            "-f",
            "flv",
            url,
        ],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)
