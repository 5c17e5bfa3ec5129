"""A real Janus WebRTC gateway (Debian `janus`) on loopback, with a generated configuration.

Only what the tests use is loaded: the VideoRoom plugin and the plain HTTP transport
(on 127.0.0.1, a free port); the plugin and transport folders hold links to those two
libraries alone, so Janus starts in well under a second. VideoRoom recordings go to
`recordings`. ICE candidates are gathered on `ice_interface` only: Janus skips loopback
interfaces, so on a loopback-only test it must run inside tests/support/netns.py's
namespace, where that interface carries 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from tests.support.ports import free_port

JANUS = "janus"
LIBRARIES = Path("/usr/lib/x86_64-linux-gnu/janus")
PLUGINS = ("libjanus_videoroom.so",)
TRANSPORTS = ("libjanus_http.so",)
BASE_PATH = "/janus"
START_SECONDS = 10.0
STOP_SECONDS = 5.0


class JanusServer:
    """`with JanusServer(workdir, ice_interface=...) as janus:` Janus runs in the block."""

    def __init__(self, workdir: Path, *, ice_interface: str) -> None:
        self.workdir = workdir
        self.ice_interface = ice_interface
        self.http_port = free_port()
        self.recordings = workdir / "recordings"
        self.log_path = workdir / "janus.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        """The Janus HTTP API (POST here creates a session)."""
        return f"http://127.0.0.1:{self.http_port}{BASE_PATH}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _write_config(self) -> Path:
        conf = self.workdir / "conf"
        plugins = self.workdir / "plugins"
        transports = self.workdir / "transports"
        empty = self.workdir / "none"
        for folder in (conf, plugins, transports, empty, self.recordings):
            folder.mkdir(parents=True, exist_ok=True)
        for name in PLUGINS:
            _link(LIBRARIES / "plugins" / name, plugins / name)
        for name in TRANSPORTS:
            _link(LIBRARIES / "transports" / name, transports / name)
        (conf / "janus.jcfg").write_text(f"""
general: {{
    plugins_folder = "{plugins}"
    transports_folder = "{transports}"
    events_folder = "{empty}"
    loggers_folder = "{empty}"
    debug_level = 4
    debug_timestamps = true
    debug_colors = false
    session_timeout = 30
    server_name = "streamer-test"
}}
certificates: {{}}
media: {{}}
nat: {{
    ice_enforce_list = "{self.ice_interface}"
}}
""")
        (conf / "janus.transport.http.jcfg").write_text(f"""
general: {{
    json = "plain"
    base_path = "{BASE_PATH}"
    http = true
    ip = "127.0.0.1"
    port = {self.http_port}
    https = false
}}
admin: {{
    admin_http = false
    admin_https = false
}}
""")
        # Rooms are created by the test adapter (with their recording folder), by name.
        (conf / "janus.plugin.videoroom.jcfg").write_text("general: {\n    string_ids = true\n}\n")
        return conf

    def start(self) -> None:
        if shutil.which(JANUS) is None:
            raise RuntimeError("Debian janus is not installed (scripts/install-deps.sh test)")
        conf = self._write_config()
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [JANUS, "--configs-folder", str(conf), "--config", str(conf / "janus.jcfg")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"janus exited ({self._process.returncode}):\n{self.log()}")
            with (
                contextlib.suppress(OSError, ValueError),
                urllib.request.urlopen(f"{self.api_url}/info", timeout=1) as answer,
            ):
                if json.load(answer).get("janus") == "server_info":
                    return
            time.sleep(0.05)
        raise TimeoutError(f"janus did not answer on {self.api_url} in {START_SECONDS}s")

    def stop(self) -> None:
        """Stops Janus as an operator would (SIGINT: sessions closed, recordings
        finished); killed if it does not exit in time."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> JanusServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _link(target: Path, link: Path) -> None:
    if not link.exists():
        link.symlink_to(target)
