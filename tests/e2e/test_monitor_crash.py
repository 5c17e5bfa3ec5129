"""`streamer monitor` never dies quietly: a stream loop that dies is logged with its cause,
named by /healthz (503) while other streams run, and ends the process with a non-zero
status once no loop is left."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from streamer.testsignal.clip import Clip, ClipSpec
from tests.support.nginx import NginxOrigin
from tests.support.ports import free_port, wait_for_port

pytestmark = pytest.mark.e2e

SECRET_KEY = "crashkeysecret0001"
ODD_BITRATE = 777_000  # a clip no other test caches


def _run_monitor(tmp_path: Path, config: Path, cache_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "METRICS_ADDR": f"127.0.0.1:{port}",
        "LOG_FORMAT": "text",
        "STREAMER_CACHE_DIR": str(cache_dir),
    }
    for variable in ("INJEST_URL", "INGEST_URL", "PLAYBACK_URL", "STREAMER_CONFIG"):
        env.pop(variable, None)
    return subprocess.Popen(
        [sys.executable, "-m", "streamer", "monitor", "--config", str(config)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _successes(port: int, stream: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    labels = (f'stream="{stream}"', 'outcome="success"')
    for line in text.splitlines():
        if line.startswith("streamer_tests_total{") and all(x in line for x in labels):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_stream_loop_that_dies_at_setup_exits_non_zero_with_its_cause(tmp_path: Path) -> None:
    """The review's case: an unwritable clip cache used to log only "stopping" and exit 0."""
    regular_file = tmp_path / "not-a-directory"
    regular_file.write_text("x")
    config = tmp_path / "streams.yaml"
    config.write_text(f"""
streams:
  - name: solo
    duration: 10s
    grace_period: 2s
    injest_url: rtmp://127.0.0.1:{free_port()}/live/{SECRET_KEY}
    playback_url: http://127.0.0.1:{free_port()}/hls/index.m3u8
""")
    process = _run_monitor(tmp_path, config, regular_file / "cache", free_port())
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1, output
    assert "stream loop stopped (0 of 1 streams still running)" in output
    assert "NotADirectoryError" in output  # the cause
    assert "Traceback (most recent call last)" in output and "load_clip" in output
    assert "no stream loop is left" in output
    assert SECRET_KEY not in output


def test_a_dead_stream_loop_fails_healthz_while_the_other_stream_runs(
    tmp_path: Path, clip: Clip
) -> None:
    # One cache for both streams: the good stream's clip is in it, the broken stream's
    # entry is corrupt (as a disk error or a killed writer leaves it).
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(clip.path, cache / clip.path.name)
    odd_name = clip.path.name.replace(
        clip.spec.cache_key(), ClipSpec(video_bitrate=ODD_BITRATE).cache_key()
    )
    (cache / odd_name).write_bytes(b"\x00" * 1024)
    port = free_port()
    with NginxOrigin(tmp_path / "nginx") as origin:
        config = tmp_path / "streams.yaml"
        config.write_text(f"""
streams:
  - name: good
    duration: 8s
    grace_period: 2s
    injest_url: {origin.ingest_url(SECRET_KEY)}
    playback_url: {origin.playback_url(SECRET_KEY)}
  - name: broken
    duration: 8s
    grace_period: 2s
    injest_url: {origin.ingest_url("brokenkeysecret02")}
    playback_url: {origin.playback_url("brokenkeysecret02")}
    clip: {{bitrate: {ODD_BITRATE}}}
""")
        process = _run_monitor(tmp_path, config, cache, port)
        try:
            wait_for_port(port, timeout=30)
            deadline = time.monotonic() + 60
            while _successes(port, "good") < 1:
                assert process.poll() is None, "the monitor exited while a stream still ran"
                assert time.monotonic() < deadline, "no successful session of 'good'"
                time.sleep(0.5)
            status, health = _get(port, "/healthz")
            assert status == 503
            assert health["detail"].startswith("stream 'broken' stopped: InvalidDataError")
            assert "'good'" not in health["detail"]
            status, ready = _get(port, "/readyz")
            assert status == 503 and "'broken'" in ready["detail"]
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 1  # stopped by a signal, but one loop had died
    assert "stream loop stopped (1 of 2 streams still running)" in output
    assert "Traceback (most recent call last)" in output
    assert SECRET_KEY not in output and "brokenkeysecret02" not in output
