"""What a person sees in a terminal, and what a pipe gets, against a real nginx-rtmp origin.

`streamer probe` on a pseudo-terminal shows a live view (a progress bar over the session, a row
per rendition) and ends with the report table; `--json` keeps stdout pure JSON even on a
terminal; off a terminal there is no live view. `streamer monitor` logs readable, coloured,
aligned lines on a terminal and JSON lines into a pipe.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.nginx import NginxOrigin
from tests.support.ports import free_port, wait_for_port

pytestmark = pytest.mark.e2e

# CSI sequences (colours, cursor moves, erases, cursor show/hide) and OSC sequences.
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
COLUMNS = 120
BAR = "\u2501"  # the heavy horizontal line rich draws progress bars with


def _key() -> str:
    return "key" + uuid.uuid4().hex


def _env(**extra: str) -> dict[str, str]:
    """The environment of a child: a plain xterm, nothing forcing or disabling colour."""
    drop = {
        "NO_COLOR",
        "FORCE_COLOR",
        "TTY_COMPATIBLE",
        "TTY_INTERACTIVE",
        "COLUMNS",
        "LINES",
        "LOG_FORMAT",
        "INJEST_URL",
        "INGEST_URL",
        "PLAYBACK_URL",
        "STREAMER_CONFIG",
    }
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["TERM"] = "xterm-256color"
    env.update(extra)
    return env


def _open_pty() -> tuple[int, int]:
    """A pseudo-terminal of COLUMNS x 40: (the parent's end, the child's end)."""
    parent, child = os.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, COLUMNS, 0, 0))
    return parent, child


def _read(
    outputs: dict[int, bytearray],
    timeout: float,
    until: Callable[[], bool] | None = None,
) -> None:
    """Reads every fd into its buffer until all reach end of file (or `until()`, or timeout).

    The parent's end of a pty reports EIO once the child's last handle on it is closed.
    """
    deadline = time.monotonic() + timeout
    open_fds = [fd for fd in outputs]
    while open_fds:
        if until is not None and until():
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(
                "output did not end in time:\n"
                + "\n".join(bytes(b[-2000:]).decode(errors="replace") for b in outputs.values())
            )
        ready, _, _ = select.select(open_fds, [], [], min(remaining, 0.2))
        for fd in ready:
            try:
                data = os.read(fd, 1 << 16)
            except OSError:
                data = b""
            if data:
                outputs[fd] += data
            else:
                open_fds.remove(fd)


def _plain(raw: bytes) -> str:
    """What the terminal shows, redraws flattened: escapes dropped, one drawn line per line."""
    text = ANSI.sub("", raw.decode(errors="replace"))
    return text.replace("\r\n", "\n").replace("\r", "\n")


@pytest.fixture(scope="module")
def ladder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxOrigin]:
    """nginx-rtmp transcoding into two renditions, with a master playlist."""
    with NginxOrigin(tmp_path_factory.mktemp("nginx-ladder"), ladder=True) as origin:
        yield origin


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxOrigin]:
    """nginx-rtmp copying the published stream into one rendition."""
    with NginxOrigin(tmp_path_factory.mktemp("nginx")) as origin:
        yield origin


def _probe_args(origin: NginxOrigin, key: str, *extra: str, duration: str = "7s") -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamer",
        "probe",
        "--ingest-url",
        origin.ingest_url(key),
        "--playback-url",
        origin.playback_url(key),
        "--duration",
        duration,
        *extra,
    ]


# -- streamer probe -----------------------------------------------------------------------


def test_probe_on_a_terminal_shows_a_live_view_then_the_report(ladder: NginxOrigin) -> None:
    key = _key()
    parent, child = _open_pty()
    try:
        process = subprocess.Popen(
            _probe_args(ladder, key, duration="14s"),
            stdin=child,
            stdout=child,
            stderr=child,
            env=_env(),
            start_new_session=True,
        )
        os.close(child)
        raw = bytearray()
        _read({parent: raw}, timeout=50)
        assert process.wait(timeout=10) == 0, _plain(bytes(raw))
    finally:
        os.close(parent)
    output = bytes(raw)
    text = _plain(output)
    assert key not in text

    # The live view: rich hides the cursor, redraws in place, and shows it again at the end.
    assert b"\x1b[?25l" in output and output.rfind(b"\x1b[?25h") > output.rfind(b"\x1b[?25l")
    assert b"\x1b[2K" in output and b"\x1b[1A" in output  # lines erased and redrawn

    # a progress bar over the session's duration, filling up as it runs
    progress = list(re.finditer(rf"^session\s+{BAR}[^\n%]*?\s(\d+)%", text, re.M))
    percents = [int(p.group(1)) for p in progress]
    assert len(set(percents)) >= 3, percents
    assert percents == sorted(percents)
    assert any(10 <= p <= 90 for p in percents) and max(percents) >= 90, percents
    # It follows the clock, not only events: it moves while waiting for the first segment
    # (the transcoder takes seconds to list one). A frame's bar comes before its footer.
    waiting, percent = set(), 0
    for line in text.split("\n"):
        if bar := re.match(rf"^session\s+{BAR}[^%]*?\s(\d+)%", line):
            percent = int(bar.group(1))
        elif line.startswith("waiting for the first segment"):
            waiting.add(percent)
    assert len(waiting) >= 3 and max(waiting) >= 10, waiting

    # one row per rendition, updating: segments seen and the latest segment latency
    rows = re.findall(
        r"^\s*(640x360|256x144)\s+(\S+)\s+(\d+)\s+(\d+\.\d\ds|-)\s+\S+\s*$", text, re.M
    )
    for rendition in ("640x360", "256x144"):
        seen = [int(count) for name, _, count, _ in rows if name == rendition]
        assert seen == sorted(seen), (rendition, seen)
        assert len(set(seen)) >= 3 and max(seen) >= 3, (rendition, seen)
        latencies = {lat for name, _, count, lat in rows if name == rendition and count != "0"}
        assert latencies and "-" not in latencies, (rendition, latencies)
    assert re.search(r"playing \(startup \d+\.\d\ds\)\s+errors: 0", text)

    # then the report, below the last frame of the live view
    report = text.rfind("outcome: success")
    assert report > progress[-1].end()
    tail = text[report:]
    assert "renditions (seconds)" in tail
    for rendition in ("640x360", "256x144"):
        assert re.search(rf"^\W*{rendition}\W+{rendition}\W+\d+\W+\d+\.\d{{3}}", tail, re.M), tail
    assert "\x1b[1;32moutcome: success" in output.decode(errors="replace")  # bold green


def test_probe_json_on_a_terminal_prints_only_json(ladder: NginxOrigin) -> None:
    """Both stdout and stderr are terminals (two of them, to tell the streams apart)."""
    key = _key()
    out_parent, out_child = _open_pty()
    err_parent, err_child = _open_pty()
    try:
        process = subprocess.Popen(
            _probe_args(ladder, key, "--json"),
            stdin=out_child,
            stdout=out_child,
            stderr=err_child,
            env=_env(),
            start_new_session=True,
        )
        os.close(out_child)
        os.close(err_child)
        stdout, stderr = bytearray(), bytearray()
        _read({out_parent: stdout, err_parent: stderr}, timeout=50)
        returncode = process.wait(timeout=10)
    finally:
        os.close(out_parent)
        os.close(err_parent)
    # The terminal turns "\n" into "\r\n" (ONLCR); everything else is the program's.
    document_text = bytes(stdout).replace(b"\r\n", b"\n").decode()
    assert "\x1b" not in document_text and "\r" not in document_text
    document = json.loads(document_text)
    assert returncode == 0, document["errors"]
    assert document["outcome"] == "success"
    assert {r["name"] for r in document["renditions"]} == {"640x360", "256x144"}
    assert key not in document_text
    # no live view either: --json asks for the document only
    assert b"%" not in stderr and b"playing (startup" not in stderr, bytes(stderr)
    assert b"\x1b[?25l" not in stderr, bytes(stderr)


def test_probe_off_a_terminal_has_no_live_view(ladder: NginxOrigin) -> None:
    key = _key()
    result = subprocess.run(
        _probe_args(ladder, key),
        capture_output=True,
        env=_env(),
        timeout=50,
        check=False,
    )
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, stdout + stderr
    assert stderr == ""  # where the live view would be
    assert "\x1b" not in stdout and "%" not in stdout and "playing (startup" not in stdout
    # the plain report, not cut to 80 columns
    assert stdout.startswith("outcome: success\nstartup latency: ")
    assert "renditions (seconds)" in stdout and "duration min" in stdout
    assert re.search(r"^\W*640x360\W+640x360\W+\d+\W+\d+\.\d{3}", stdout, re.M), stdout
    assert re.search(r"^\W*256x144\W+256x144\W+\d+\W+\d+\.\d{3}", stdout, re.M), stdout
    assert key not in stdout


# -- streamer monitor ---------------------------------------------------------------------

SHORT, LONG = "eu", "us-east-backup"  # the text layout pads stream names to the longest


def _streams_file(tmp_path: Path, origin: NginxOrigin) -> tuple[Path, list[str]]:
    keys = [_key(), _key()]
    path = tmp_path / "streams.yaml"
    # LONG publishes, but plays a key nobody publishes: its sessions fail (warnings).
    path.write_text(f"""
streams:
  - name: {SHORT}
    duration: 6s
    grace_period: 2s
    ingest_url: "{origin.ingest_url(keys[0])}"
    playback_url: "{origin.playback_url(keys[0])}"
  - name: {LONG}
    duration: 6s
    grace_period: 2s
    startup_timeout: 3s
    ingest_url: "{origin.ingest_url(keys[1])}"
    playback_url: "{origin.playback_url("nobody" + keys[1])}"
""")
    return path, keys


def _run_monitor(
    tmp_path: Path, origin: NginxOrigin, on_terminal: bool
) -> tuple[bytes, int, list[str]]:
    """Runs the monitor until both streams have something to say, then SIGTERMs it."""
    config, keys = _streams_file(tmp_path, origin)
    port = free_port()
    argv = [sys.executable, "-m", "streamer", "monitor", "--config", str(config)]
    env = _env(METRICS_ADDR=f"127.0.0.1:{port}")
    if on_terminal:
        parent, child = _open_pty()
        process = subprocess.Popen(
            argv, stdin=child, stdout=child, stderr=child, env=env, start_new_session=True
        )
        os.close(child)
        fd = parent
    else:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        assert process.stdout is not None and process.stderr is not None
        fd = process.stdout.fileno()
    raw = bytearray()
    try:
        wait_for_port(port, timeout=30)

        def both_spoke() -> bool:
            return b"first segment" in raw and b"http_error" in raw

        _read({fd: raw}, timeout=40, until=both_spoke)
        process.send_signal(signal.SIGTERM)
        _read({fd: raw}, timeout=15)
        returncode = process.wait(timeout=10)
        if not on_terminal:
            assert process.stderr is not None
            raw += process.stderr.read()  # the pipe case: stderr too must be JSON or empty
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if on_terminal:
            os.close(fd)
        else:
            assert process.stdout is not None and process.stderr is not None
            process.stdout.close()
            process.stderr.close()
    return bytes(raw), returncode, keys


def test_monitor_on_a_terminal_logs_coloured_aligned_lines(
    tmp_path: Path, origin: NginxOrigin
) -> None:
    raw, returncode, keys = _run_monitor(tmp_path, origin, on_terminal=True)
    assert returncode == 0, raw.decode(errors="replace")
    decoded = raw.decode()
    assert all(key not in decoded for key in keys)
    # colour: the level (cyan INFO, yellow WARN) and the stream name (bold)
    assert "\x1b[36mINFO\x1b[0m" in decoded and "\x1b[33mWARN\x1b[0m" in decoded
    assert f"\x1b[1m{SHORT.ljust(len(LONG))}\x1b[0m" in decoded
    assert f"\x1b[1m{LONG}\x1b[0m" in decoded

    lines = [line for line in _plain(raw).split("\n") if line.strip()]
    assert not [line for line in lines if line.lstrip().startswith("{")]  # not JSON
    width = len(LONG)
    layout = re.compile(rf"^\d\d:\d\d:\d\d (INFO|WARN|ERRO|DEBU|CRIT) (.{{{width}}}) (\S.*)$")
    stamped = [line for line in lines if re.match(r"^\d\d:\d\d:\d\d ", line)]
    assert len(stamped) == len(lines), [line for line in lines if line not in stamped]
    streams: set[str] = set()
    for line in stamped:
        match = layout.match(line)
        assert match, f"not aligned: {line!r}"
        streams.add(match.group(2).rstrip())
    assert {SHORT, LONG} <= streams <= {SHORT, LONG, "-"}
    messages = "\n".join(stamped)
    assert re.search(rf" {SHORT} +first segment after \d+\.\d{{3}}s", messages)
    assert re.search(rf"WARN {LONG} http_error: master playlist: HTTP 404", messages)
    started = rf"INFO {LONG} session started: publishing to rtmp://\S+/live/key\w\*{{4}}, "
    assert re.search(started, messages)


def test_monitor_in_a_pipe_logs_json_lines(tmp_path: Path, origin: NginxOrigin) -> None:
    raw, returncode, keys = _run_monitor(tmp_path, origin, on_terminal=False)
    assert returncode == 0, raw.decode(errors="replace")
    text = raw.decode()
    assert "\x1b" not in text
    assert all(key not in text for key in keys)
    records = [json.loads(line) for line in text.splitlines()]  # every line is a document
    assert records
    for record in records:
        assert {"ts", "level", "logger", "msg"} <= set(record), record
    about_sessions = [r for r in records if "session_id" in r]
    assert {r["stream"] for r in about_sessions} == {SHORT, LONG}
    assert any(
        r["stream"] == SHORT and r["msg"].startswith("first segment after") for r in about_sessions
    )
    warnings = [r for r in about_sessions if r["level"] == "warning"]
    assert {r["stream"] for r in warnings} == {LONG}
    assert "http_error" in {r.get("kind") for r in warnings}
    assert any(r["msg"] == "stopping" for r in records)
