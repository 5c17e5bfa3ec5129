"""FFmpeg's own HLS muxer as an origin: `ffmpeg -listen 1 -i rtmp://...` into HLS on disk,
served over HTTP on loopback.

This is how many people put a stream on the web without a media server: FFmpeg's RTMP
server accepts the publish, libx264 transcodes, and the `hls` muxer writes MPEG-TS or fMP4
(CMAF) segments, optionally several renditions and a master playlist (`-var_stream_map`,
`-master_pl_name`). The process serves exactly one publish and exits when it ends, so
`listen()` starts a fresh one per session; like a user's `while true; do ffmpeg ...; done`,
every session of one key writes into the same directory.

`-listen 1` accepts exactly one connection: probing the port with a connect would use it
up, so readiness is the socket's LISTEN state in /proc/net/tcp.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.ports import free_port

MASTER_PLAYLIST = "master.m3u8"
MEDIA_PLAYLIST = "index.m3u8"
_TCP_LISTEN = "0A"  # the LISTEN state in /proc/net/tcp


@dataclass(frozen=True)
class Rendition:
    name: str
    size: str
    bitrate: str
    # An FFmpeg video filter for this rendition alone (a fault confined to one rendition:
    # `freezeframes`, `select`), and how its frames are timed (`-fps_mode`: `vfr` keeps the
    # hole that dropped frames leave; default: FFmpeg's).
    video_filter: str = ""
    fps_mode: str = ""


LADDER = (Rendition("360p", "640x360", "800k"), Rendition("144p", "256x144", "200k"))


def is_listening(port: int) -> bool:
    """Whether a socket listens on 127.0.0.1:`port` (or any address), without connecting."""
    wanted = {f"0100007F:{port:04X}", f"00000000:{port:04X}"}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[1] in wanted and fields[3] == _TCP_LISTEN:
            return True
    return False


class _Handler(SimpleHTTPRequestHandler):
    extensions_map = {  # noqa: RUF012 (the base class declares it a plain dict)
        **SimpleHTTPRequestHandler.extensions_map,
        ".m3u8": "application/vnd.apple.mpegurl",
        ".ts": "video/mp2t",
        ".m4s": "video/iso.segment",
        ".mp4": "video/mp4",
    }

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, fmt: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a viewer that stopped reading (a cancelled download): not an error
        super().handle_error(request, client_address)


class FfmpegHlsOrigin:
    """One HTTP server over `workdir`; `listen(key)` runs one FFmpeg for one publish.

    `fmp4=False`: MPEG-TS, one rendition per entry of `renditions`; with one rendition the
    playback URL is its media playlist. `fmp4=True`: fMP4 segments with an init section.
    With several renditions FFmpeg writes a master playlist (`-var_stream_map`).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        fmp4: bool = False,
        renditions: tuple[Rendition, ...] = LADDER[:1],
        segment_seconds: int = 2,
        fps: int = 30,
    ) -> None:
        self.workdir = workdir
        self.fmp4 = fmp4
        self.renditions = renditions
        self.segment_seconds = segment_seconds
        self.fps = fps
        self.http_port = free_port()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def master(self) -> bool:
        return len(self.renditions) > 1

    def playback_url(self, key: str) -> str:
        name = MASTER_PLAYLIST if self.master else MEDIA_PLAYLIST
        return f"http://127.0.0.1:{self.http_port}/{key}/{name}"

    def command(self, key: str, rtmp_port: int) -> list[str]:
        """The FFmpeg command line for one publish of `key` on `rtmp_port`."""
        out = self.workdir / key
        gop = self.fps * self.segment_seconds
        command = [
            shutil.which("ffmpeg") or "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-listen",
            "1",
            "-i",
            f"rtmp://127.0.0.1:{rtmp_port}/live/{key}",
        ]
        for _ in self.renditions:
            command += ["-map", "0:v:0", "-map", "0:a:0"]
        command += [
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            # A keyframe at every segment boundary: hls_time cuts at keyframes only.
            "-g",
            str(gop),
            "-keyint_min",
            str(gop),
            "-sc_threshold",
            "0",
            "-c:a",
            "aac",
            "-b:a",
            "96k",
        ]
        for i, rendition in enumerate(self.renditions):
            command += [
                f"-s:v:{i}",
                rendition.size,
                f"-b:v:{i}",
                rendition.bitrate,
                f"-maxrate:v:{i}",
                rendition.bitrate,
                f"-bufsize:v:{i}",
                rendition.bitrate,
            ]
            if rendition.video_filter:
                command += [f"-filter:v:{i}", rendition.video_filter]
            if rendition.fps_mode:
                command += [f"-fps_mode:v:{i}", rendition.fps_mode]
        suffix = "m4s" if self.fmp4 else "ts"
        command += [
            "-f",
            "hls",
            "-hls_time",
            str(self.segment_seconds),
            "-hls_list_size",
            "10",
            "-hls_flags",
            "delete_segments+independent_segments+temp_file",
        ]
        if self.fmp4:
            command += ["-hls_segment_type", "fmp4"]
        if self.master:
            command += [
                "-master_pl_name",
                MASTER_PLAYLIST,
                "-var_stream_map",
                " ".join(f"v:{i},a:{i},name:{r.name}" for i, r in enumerate(self.renditions)),
                "-hls_segment_filename",
                str(out / "%v" / f"seg_%05d.{suffix}"),
                str(out / "%v" / MEDIA_PLAYLIST),
            ]
        else:
            command += [
                "-hls_segment_filename",
                str(out / f"seg_%05d.{suffix}"),
                str(out / MEDIA_PLAYLIST),
            ]
        return command

    @contextlib.contextmanager
    def listen(self, key: str, timeout: float = 10.0) -> Iterator[str]:
        """Starts FFmpeg listening for a publish of `key`; yields the ingest URL. On exit,
        lets FFmpeg finish its playlists (it ends with the publish), else stops it."""
        rtmp_port = free_port()
        out = self.workdir / key
        for rendition in self.renditions if self.master else ():
            (out / rendition.name).mkdir(parents=True, exist_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / f"{key}.ffmpeg.log").open("ab")
        process = subprocess.Popen(
            self.command(key, rtmp_port),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            deadline = time.monotonic() + timeout
            while not is_listening(rtmp_port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"ffmpeg did not listen on {rtmp_port}: {self.log(key)}")
                time.sleep(0.02)
            yield f"rtmp://127.0.0.1:{rtmp_port}/live/{key}"
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            log.close()

    def log(self, key: str) -> str:
        path = self.workdir / f"{key}.ffmpeg.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> FfmpegHlsOrigin:
        self.workdir.mkdir(parents=True, exist_ok=True)
        handler = functools.partial(_Handler, directory=str(self.workdir))
        self._server = _Server(("127.0.0.1", self.http_port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FfmpegHlsOrigin:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
