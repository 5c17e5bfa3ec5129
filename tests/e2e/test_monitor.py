"""The continuous monitor against a real nginx-rtmp origin, scraped by a real Prometheus."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.nginx import NginxOrigin
from tests.support.ports import free_port, wait_for_port
from tests.support.prometheus import PrometheusServer, values

pytestmark = pytest.mark.e2e


def _metric(port: int, name: str, **labels: str) -> list[float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = []
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            found.append(float(line.rsplit(" ", 1)[1]))
    return found


# Settings a test leaves at their defaults unless it names them. `make run` on a fresh
# machine has none of them; only the exporter's port is always a free one here.
_DEFAULTS = ("DURATION", "GRACE_PERIOD", "REGION", "STREAM_NAME", "STREAMER_DECODE_MODE")


@contextmanager
def _monitor(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], int, list[str]]]:
    port = free_port()
    full_env = {
        **os.environ,
        "METRICS_ADDR": f"127.0.0.1:{port}",
        "LOG_FORMAT": "json",
        **(env or {}),
    }
    for variable in ("INJEST_URL", "INGEST_URL", "PLAYBACK_URL", "STREAMER_CONFIG", *_DEFAULTS):
        if variable not in (env or {}):
            full_env.pop(variable, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "streamer", "monitor", *args],
        cwd=tmp_path,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        wait_for_port(port, timeout=30)
        yield process, port, output
    finally:
        if process.poll() is None:
            process.terminate()
        output.append(process.communicate(timeout=10)[0])


def _streams_file(tmp_path: Path, origin: NginxOrigin) -> Path:
    path = tmp_path / "streams.yaml"
    path.write_text(f"""
streams:
  - name: "eu stream"
    duration: "10s"
    grace_period: "4s"
    injest_region: "eu-west"
    playback_region: "eu-west"
    injest_url: "{origin.ingest_url("keyeusecret0001")}"
    playback_url: "{origin.playback_url("keyeusecret0001")}"
  - name: "us stream"
    duration: 10s
    grace_period: 4s
    ingest_region: us-east
    playback_region: us-east
    ingest_url: "${{US_INGEST}}"
    playback_url: "{origin.playback_url("keyussecret0002")}"
""")
    return path


def test_two_streams_scraped_by_prometheus(tmp_path: Path) -> None:
    with NginxOrigin(tmp_path / "nginx") as origin:
        config = _streams_file(tmp_path, origin)
        env = {"US_INGEST": origin.ingest_url("keyussecret0002")}
        with (
            _monitor(tmp_path, "--config", str(config), env=env) as (_, port, logs),
            PrometheusServer(tmp_path / "prom", targets=[f"127.0.0.1:{port}"]) as prom,
        ):
            # active_tests is 1 during a session and back to 0 in the grace period.
            seen_active = seen_idle = False
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline and not (seen_active and seen_idle):
                state = _metric(port, "streamer_active_tests", stream="eu stream")
                seen_active |= state == [1.0]
                seen_idle |= state == [0.0] and seen_active
                time.sleep(0.2)
            assert seen_active and seen_idle
            result = prom.wait_for(
                'streamer_tests_total{outcome="success"} >= 1', lambda r: len(r) == 2, timeout=60
            )
            regions = {row["metric"]["stream"]: row["metric"]["ingest_region"] for row in result}
            assert regions == {"eu stream": "eu-west", "us stream": "us-east"}
            assert all(
                row["metric"]["playback_region"] == regions[row["metric"]["stream"]]
                for row in result
            )
            counts = prom.query(
                "sum by (stream, rendition) (streamer_segment_latency_seconds_count)"
            )
            assert {row["metric"]["stream"] for row in counts} == {"eu stream", "us stream"}
            assert all(v >= 3 for v in values(counts))
            assert values(prom.query("sum(streamer_startup_latency_seconds_count)"))[0] >= 2
            assert values(prom.query("sum(streamer_listed_latency_seconds_count)"))[0] >= 6
            assert values(prom.query("sum(streamer_errors_total)")) in ([], [0.0])
            assert prom.query('streamer_build_info{version!=""}')
            health = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
            assert health.status == 200
            assert urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz").status == 200
            exposition = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read()
            assert b"secret000" not in exposition
    output = logs[0]
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert lines and all("secret000" not in json.dumps(line) for line in lines)
    assert {line.get("stream") for line in lines if "session_id" in line} == {
        "eu stream",
        "us stream",
    }


def test_sigterm_during_a_session_aborts_it_within_5s(tmp_path: Path) -> None:
    with NginxOrigin(tmp_path / "nginx") as origin:
        config = tmp_path / "one.yaml"
        config.write_text(f"""
streams:
  - name: solo
    duration: 60s
    grace_period: 1s
    injest_url: {origin.ingest_url("keysolo")}
    playback_url: {origin.playback_url("keysolo")}
""")
        with _monitor(tmp_path, "--config", str(config)) as (process, port, _):
            deadline = time.monotonic() + 30
            while _metric(port, "streamer_segment_duration_seconds_count") in ([], [0.0]):
                assert time.monotonic() < deadline, "no segment within 30 s"
                time.sleep(0.3)
            aborted_before = _metric(port, "streamer_tests_total", outcome="aborted")
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=10)
            elapsed = time.monotonic() - started
    assert process.returncode == 0
    assert elapsed < 5
    assert aborted_before == [0.0]
    ended = [
        json.loads(line)
        for line in output.splitlines()
        if line.startswith("{") and "session ended" in line
    ]
    assert [line["outcome"] for line in ended] == ["aborted"]
    assert "failure" not in output


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"INJEST_URL": "http://wrong/live/k", "PLAYBACK_URL": "http://h/x.m3u8"}, "INJEST_URL"),
        ({"INJEST_URL": "rtmp://h/live/k"}, "PLAYBACK_URL"),
        (
            {
                "INJEST_URL": "rtmp://h/live/k",
                "PLAYBACK_URL": "http://h/x.m3u8",
                "DURATION": "soon",
            },
            "DURATION",
        ),
        ({"ALERT_AFTER_FAILURES": "0"}, "ALERT_AFTER_FAILURES"),
        ({"STATUS_MAX_SSE_CLIENTS": "many"}, "STATUS_MAX_SSE_CLIENTS"),
    ],
)
def test_bad_environment_exits_2_naming_the_variable(
    tmp_path: Path, env: dict[str, str], field: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streamer", "monitor"],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert field in result.stderr


def test_dotenv_file_is_read_and_bad_yaml_names_stream_and_field(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("INJEST_URL=rtmp://h/live/k\nPLAYBACK_URL=ftp://x\n")
    result = subprocess.run(
        [sys.executable, "-m", "streamer", "monitor"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={k: v for k, v in os.environ.items() if k not in ("INJEST_URL", "PLAYBACK_URL")},
    )
    assert result.returncode == 2 and "PLAYBACK_URL" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "streams:\n  - name: ok\n    injest_url: rtmp://h/live/k\n"
        "    playback_url: http://h/a.m3u8\n  - name: broken\n"
        "    injest_url: rtmp://h/live/k\n    playback_url: http://h/b.m3u8\n"
        "    duration: forever\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "streamer", "monitor", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "streams[1]" in result.stderr and "broken" in result.stderr
    assert "duration" in result.stderr


def test_embedded_default_passes_three_full_sessions(tmp_path: Path) -> None:
    """No configuration at all: the monitor runs its embedded origin, in the real default
    30 s sessions with 5 s pauses, and every session of a healthy origin succeeds."""
    with _monitor(tmp_path) as (_, port, logs):
        deadline = time.monotonic() + 3 * (30 + 5) + 60
        while sum(_metric(port, "streamer_tests_total")) < 3:
            assert time.monotonic() < deadline, "three sessions did not end within 165 s"
            time.sleep(1.0)
        assert _metric(port, "streamer_tests_total", outcome="success") == [3.0]
        assert sum(_metric(port, "streamer_errors_total")) == 0
        renditions = {
            line.split('rendition="')[1].split('"')[0]
            for line in urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics")
            .read()
            .decode()
            .splitlines()
            if line.startswith("streamer_segment_latency_seconds_count{")
        }
        assert len(renditions) >= 2  # the embedded origin transcodes a ladder
        # Played as LL-HLS: every rendition measured part by part too.
        parts = _metric(port, "streamer_part_latency_seconds_count")
        assert len(parts) >= 2 and min(parts) >= 3 * 60, parts
        # WebRTC (WHEP) of the same stream, measured beside HLS, frame by frame.
        frames = _metric(port, "streamer_frame_latency_seconds_count", playback_protocol="webrtc")
        assert frames and frames[0] > 3 * 25 * 30, frames
        connects = _metric(port, "streamer_webrtc_connect_seconds_count")
        assert connects == [3.0]
    lines = [json.loads(line) for line in logs[0].splitlines() if line.startswith("{")]
    started = [line["msg"] for line in lines if "session started" in line["msg"]]
    assert started and all(message.endswith(" for 30s") for message in started)
    ended = [line for line in lines if "session ended" in line["msg"]]
    assert [line["outcome"] for line in ended[:3]] == ["success"] * 3, ended
    assert "embedded origin" in logs[0]
