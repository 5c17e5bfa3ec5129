"""A real nginx-rtmp origin (Debian nginx + libnginx-mod-rtmp) on free loopback ports.

`ladder=False`: one rendition, copied from the publish (`hls on`); playback is the media
playlist. `ladder=True`: an `exec ffmpeg` transcode into two renditions (640x360 and
256x144) plus `hls_variant`, giving a master playlist, like a transcoding platform.
`rtmps=True` also puts an nginx `stream {}` TLS terminator in front of the RTMP port, with a
certificate from a CA the test makes (see `tls_ca_file`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

from tests.support.ports import free_port, wait_for_port
from tests.support.tls import make_ca_and_cert

MODULES = Path("/usr/lib/nginx/modules")

LADDER = (
    # (suffix, size, video bitrate, BANDWIDTH for the master playlist)
    ("_360p", "640x360", "800k", 900_000),
    ("_144p", "256x144", "200k", 300_000),
)
# `copy_ladder=True`: both renditions copy the publish (no transcoding: about 12 % of a core
# per stream here, which many streams on one machine cannot afford); the master still lists
# two renditions, told apart by BANDWIDTH.
COPY_LADDER = (
    ("_hi", "640x360", "", 900_000),
    ("_lo", "640x360", "", 300_000),
)


class NginxOrigin:
    def __init__(
        self,
        workdir: Path,
        *,
        ladder: bool = False,
        copy_ladder: bool = False,
        rtmps: bool = False,
        fragment_seconds: int = 2,
        nested: bool = False,
    ) -> None:
        self.workdir = workdir
        self.ladder = ladder or copy_ladder
        self.rungs = COPY_LADDER if copy_ladder else LADDER
        self.rtmps = rtmps
        self.fragment_seconds = fragment_seconds
        # nested: <key>/index.m3u8, the layout of Livepeer's <playback>/<playbackId>/index.m3u8
        self.nested = nested
        self.rtmp_port = free_port()
        self.http_port = free_port()
        self.rtmps_port = free_port() if rtmps else 0
        self.hls_dir = workdir / "hls"
        self.tls_ca_file: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def ingest_url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{key}"

    def rtmps_ingest_url(self, key: str, host: str = "localhost") -> str:
        return f"rtmps://{host}:{self.rtmps_port}/live/{key}"

    def playback_url(self, key: str) -> str:
        if self.nested:
            return f"{self.playback_base}/{key}/index.m3u8"
        return f"{self.playback_base}/{key}.m3u8"

    @property
    def ingest_base(self) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live"

    @property
    def playback_base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/hls"

    def media_playlist_path(self, key: str, rendition: str = "") -> Path:
        return self.hls_dir / f"{key}{rendition}.m3u8"

    def _config(self) -> str:
        hls = f"""
            hls on;
            hls_path {self.hls_dir};
            hls_fragment {self.fragment_seconds}s;
            hls_playlist_length {max(20, 5 * self.fragment_seconds)}s;
            hls_cleanup on;
            {"hls_nested on;" if self.nested else ""}
        """
        if self.ladder:
            outputs = " ".join(
                (
                    "-c copy"
                    if not rate
                    else f"-c:a copy -c:v libx264 -preset ultrafast -tune zerolatency -g 60 "
                    f"-keyint_min 60 -sc_threshold 0 -b:v {rate} -maxrate {rate} "
                    f"-bufsize {rate} -s {size}"
                )
                + f" -f flv rtmp://127.0.0.1:{self.rtmp_port}/hls/$name{suffix}"
                for suffix, size, rate, _ in self.rungs
            )
            variants = "\n".join(
                f"hls_variant {suffix} BANDWIDTH={bw},RESOLUTION={size};"
                for suffix, size, _, bw in self.rungs
            )
            ffmpeg = shutil.which("ffmpeg") or "ffmpeg"
            applications = f"""
            application live {{
                live on;
                exec {ffmpeg} -loglevel error -i rtmp://127.0.0.1:{self.rtmp_port}/live/$name
                    {outputs};
            }}
            application hls {{
                live on;
                allow publish 127.0.0.1;
                deny publish all;
                {hls}
                {variants}
            }}"""
        else:
            applications = f"""
            application live {{
                live on;
                {hls}
            }}"""
        stream = ""
        if self.rtmps:
            cert, key = self._make_tls()
            stream = f"""
        stream {{
            server {{
                listen 127.0.0.1:{self.rtmps_port} ssl;
                ssl_certificate {cert};
                ssl_certificate_key {key};
                proxy_pass 127.0.0.1:{self.rtmp_port};
            }}
        }}"""
        user = "user root;" if os.geteuid() == 0 else ""
        modules = "\n".join(
            f"load_module {MODULES / name};"
            for name in ("ngx_rtmp_module.so", "ngx_stream_module.so")
            if name != "ngx_stream_module.so" or self.rtmps
        )
        return f"""
        {modules}
        {user}
        worker_processes 1;
        pid {self.workdir}/nginx.pid;
        error_log {self.workdir}/error.log warn;
        events {{ worker_connections 1024; }}
        rtmp {{
            server {{
                listen 127.0.0.1:{self.rtmp_port};
                chunk_size 4096;
                {applications}
            }}
        }}
        {stream}
        http {{
            access_log off;
            client_body_temp_path {self.workdir}/tmp;
            proxy_temp_path {self.workdir}/tmp;
            fastcgi_temp_path {self.workdir}/tmp;
            uwsgi_temp_path {self.workdir}/tmp;
            scgi_temp_path {self.workdir}/tmp;
            server {{
                listen 127.0.0.1:{self.http_port};
                location /hls/ {{
                    types {{
                        application/vnd.apple.mpegurl m3u8;
                        video/mp2t ts;
                    }}
                    alias {self.hls_dir}/;
                    add_header Cache-Control no-cache;
                }}
            }}
        }}
        """

    def _make_tls(self) -> tuple[Path, Path]:
        tls_dir = self.workdir / "tls"
        tls_dir.mkdir(exist_ok=True)
        ca, cert, key = make_ca_and_cert(tls_dir, hostnames=["localhost"])
        self.tls_ca_file = ca
        return cert, key

    def start(self) -> NginxOrigin:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.hls_dir.mkdir(exist_ok=True)
        (self.workdir / "tmp").mkdir(exist_ok=True)
        config = self.workdir / "nginx.conf"
        config.write_text(self._config())
        self._process = subprocess.Popen(
            [
                nginx,
                "-e",
                str(self.workdir / "error.log"),
                "-p",
                str(self.workdir),
                "-c",
                str(config),
                "-g",
                "daemon off;",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # its errors go to error.log (-e)
            start_new_session=True,  # so that stop() also ends the exec'd ffmpeg children
        )
        try:
            wait_for_port(self.rtmp_port)
            wait_for_port(self.http_port)
            if self.rtmps:
                wait_for_port(self.rtmps_port)
        except TimeoutError:
            self.stop()
            log = (self.workdir / "error.log").read_text(errors="replace")
            raise RuntimeError(f"nginx did not start:\n{log}") from None
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        self._process = None

    def wait_for_playlist(self, key: str, rendition: str = "", timeout: float = 20.0) -> Path:
        path = self.media_playlist_path(key, rendition)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists():
                return path
            time.sleep(0.1)
        raise TimeoutError(f"{path.name} never appeared")

    def __enter__(self) -> NginxOrigin:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
