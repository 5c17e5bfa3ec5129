"""SRT listeners for tests: FFmpeg's SRT listener writing HLS (an independent origin), and a
listener of our own that judges stream ids (as platforms do).

FFmpeg (Debian's, built with libsrt) takes one SRT publish per process in listener mode,
copies the TS into HLS segments (no transcode: the clip's 2 s GOPs make 2 s segments) and
exits when the publish ends. FFmpeg's `latency=` is in microseconds.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

from streamer.publish import libsrt
from tests.support.ffmpeg_origin import MEDIA_PLAYLIST, FfmpegHlsOrigin
from tests.support.ports import free_port


def is_bound_udp(port: int) -> bool:
    """Whether a UDP socket is bound to `port` on 127.0.0.1 or any address."""
    wanted = {f"0100007F:{port:04X}", f"00000000:{port:04X}"}
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) > 1 and fields[1] in wanted:
            return True
    return False


def srt_url(port: int, key: str, passphrase: str | None = None, latency_ms: int = 120) -> str:
    url = f"srt://127.0.0.1:{port}?streamid={quote(key, safe='')}&latency={latency_ms}"
    return url + (f"&passphrase={quote(passphrase, safe='')}" if passphrase else "")


class FfmpegSrtOrigin(FfmpegHlsOrigin):
    """FFmpeg listening on SRT, `-c copy` into HLS (MPEG-TS), served over HTTP."""

    def __enter__(self) -> FfmpegSrtOrigin:
        self.start()
        return self

    def srt_command(
        self, key: str, srt_port: int, passphrase: str | None, latency_ms: int
    ) -> list[str]:
        out = self.workdir / key
        listener = f"srt://127.0.0.1:{srt_port}?mode=listener&latency={latency_ms * 1000}"
        if passphrase:
            listener += f"&passphrase={passphrase}"
        return [
            shutil.which("ffmpeg") or "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "mpegts",
            "-i",
            listener,
            "-c",
            "copy",
            "-f",
            "hls",
            "-hls_time",
            str(self.segment_seconds),
            "-hls_list_size",
            "10",
            "-hls_flags",
            "delete_segments+independent_segments+temp_file",
            "-hls_segment_filename",
            str(out / "seg_%05d.ts"),
            str(out / MEDIA_PLAYLIST),
        ]

    @contextlib.contextmanager
    def listen_srt(
        self,
        key: str,
        *,
        passphrase: str | None = None,
        latency_ms: int = 120,
        timeout: float = 10.0,
    ) -> Iterator[int]:
        """Starts FFmpeg listening on SRT; yields its port. On exit, lets FFmpeg finish its
        playlist (it ends with the publish), else stops it."""
        port = free_port()
        (self.workdir / key).mkdir(parents=True, exist_ok=True)
        log = (self.workdir / f"{key}.ffmpeg.log").open("ab")
        process = subprocess.Popen(
            self.srt_command(key, port, passphrase, latency_ms),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            deadline = time.monotonic() + timeout
            while not is_bound_udp(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"ffmpeg did not listen on {port}: {self.log(key)}")
                time.sleep(0.02)
            yield port
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


class JudgingListener:
    """An SRT listener that accepts a caller only when `judge(streamid)` returns 0; otherwise
    the caller is rejected with that code (1403 forbidden, as an access control would).
    What accepted callers send is kept in `received`, one bytearray per caller."""

    def __init__(self, judge: Callable[[str], int] = lambda _sid: 0) -> None:
        self._judge = judge
        self.seen: list[str] = []
        self.received: list[bytearray] = []
        self._socket = libsrt.Socket()
        self._socket.set_int(libsrt.TRANSTYPE, libsrt.TRANSTYPE_LIVE)
        self.port = self._socket.bind("127.0.0.1", 0)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _decide(self, _sock: libsrt.Socket, streamid: str) -> int:
        self.seen.append(streamid)
        return self._judge(streamid)

    def _serve(self) -> None:
        while True:
            try:
                caller = self._socket.accept()
            except libsrt.SrtError:
                return  # closed
            received = bytearray()
            self.received.append(received)
            threading.Thread(target=self._read, args=(caller, received), daemon=True).start()

    @staticmethod
    def _read(caller: libsrt.Socket, into: bytearray) -> None:
        with contextlib.suppress(libsrt.SrtError):
            while message := caller.receive():
                into.extend(message)
        caller.close()

    def __enter__(self) -> JudgingListener:
        self._socket.listen(8, self._decide)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._socket.close()
        self._thread.join(timeout=5)
