"""`streamer probe` configured as the monitor would be: a stream file, `--check` settings
and Livepeer API mode, against a real nginx-rtmp origin (and a fake of the Livepeer API,
whose ingest and playback point at that origin)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_livepeer import FakeLivepeer
from tests.support.nginx import NginxOrigin

pytestmark = pytest.mark.e2e

API_KEY = "sk-live-probe-apikey-0123456789abcdef"
STREAMS = """
streams:
  - name: elsewhere
    ingest_url: "${ELSEWHERE_INGEST}"  # not set: the probe of another stream needs it not
    playback_url: https://cdn.invalid/hls/x/index.m3u8
  - name: lab
    duration: 2m
    ingest_url: "${LAB_INGEST}"
    playback_url: "${LAB_PLAYBACK}"
    checks:
      segment_latency: {max_seconds: 0.001}  # no real platform is this fast: fails the stream
"""


class Probe:
    """`streamer probe` in a subprocess with a clean environment (no ambient URL or key)."""

    def __init__(self, cwd: Path, env: dict[str, str], *args: str) -> None:
        self.cwd, self.args = cwd, args
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("INGEST_URL", "INJEST_URL", "REGION") and not k.startswith("LIVEPEER_")
        }
        self.env.update(env)
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "streamer", "probe", "--json", *self.args),
            cwd=self.cwd,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def finish(self, timeout: float = 60) -> tuple[int, dict[str, Any], str]:
        """Exit code, JSON report, and everything the probe printed."""
        assert self.process is not None
        try:
            stdout, stderr = await asyncio.wait_for(self.process.communicate(), timeout)
        finally:
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
        assert self.process.returncode is not None
        out = stdout.decode()
        return self.process.returncode, json.loads(out), out + stderr.decode()

    async def run(self, timeout: float = 60) -> tuple[int, dict[str, Any], str]:
        await self.start()
        return await self.finish(timeout)


async def test_the_stream_file_and_a_check_setting_decide_the_outcome(tmp_path: Path) -> None:
    (tmp_path / "streams.yaml").write_text(STREAMS)
    key = "key" + uuid.uuid4().hex
    with NginxOrigin(tmp_path / "nginx") as origin:
        env = {"LAB_INGEST": origin.ingest_url(key), "LAB_PLAYBACK": origin.playback_url(key)}
        as_configured = ["--config", "streams.yaml", "--stream", "lab", "--duration", "8s"]
        start = time.monotonic()
        failed_code, failed, failed_output = await Probe(tmp_path, env, *as_configured).run()
        elapsed = time.monotonic() - start
        relaxed = [*as_configured, "--check", "segment_latency.max_seconds=30"]
        passed_code, passed, passed_output = await Probe(tmp_path, env, *relaxed).run()
    # The file's check setting fails a healthy stream, and only on that check...
    assert failed_code == 1, failed_output
    assert failed["stream"] == "lab"
    assert [e["kind"] for e in failed["errors"]] == ["segment_latency"], failed["errors"]
    assert "limit 0.001s" in failed["errors"][0]["detail"]
    assert failed["renditions"][0]["segments"] >= 2
    assert elapsed < 25  # --duration 8s, not the file's 2m
    # ... and --check, merged over it, makes the same stream pass.
    assert passed_code == 0, passed["errors"]
    assert passed["outcome"] == "success" and passed["errors"] == []
    for output in (failed_output, passed_output):
        assert key not in output


async def test_livepeer_mode_creates_plays_and_deletes_its_stream(tmp_path: Path) -> None:
    (tmp_path / "api-key").write_text(API_KEY + "\n")
    with NginxOrigin(tmp_path / "nginx", nested=True) as origin:
        async with FakeLivepeer(
            API_KEY, origin.ingest_base, origin.playback_base, playback_id_is_stream_key=True
        ) as fake:
            env = {
                "LIVEPEER_API_KEY_FILE": str(tmp_path / "api-key"),
                "LIVEPEER_API_URL": fake.api_url,
            }
            code, report, output = await Probe(
                tmp_path, env, "--livepeer", "--duration", "8s", "--name", "by-hand"
            ).run()
            assert code == 0, output
            assert report["outcome"] == "success", report["errors"]
            assert report["stream"] == "by-hand"
            assert report["renditions"][0]["segments"] >= 2
            (create,) = fake.calls_of("create_stream")
            assert create.authorization == f"Bearer {API_KEY}"
            assert create.json["name"].startswith("streamer-by-hand-")
            assert len(fake.calls_of("delete_stream")) == 1
            assert fake.streams == {}  # nothing left behind
            (created,) = fake.created
    for secret in (API_KEY, created["streamKey"]):
        assert secret not in output


async def test_ctrl_c_aborts_the_session_and_still_deletes_the_stream(tmp_path: Path) -> None:
    (tmp_path / "streams.yaml").write_text(
        'streams:\n  - name: lp\n    duration: 30s\n    livepeer:\n      api_url: "${LP_API}"\n'
        '      api_key: "${LP_KEY}"\n'
    )
    with NginxOrigin(tmp_path / "nginx", nested=True) as origin:
        async with FakeLivepeer(
            API_KEY, origin.ingest_base, origin.playback_base, playback_id_is_stream_key=True
        ) as fake:
            probe = Probe(
                tmp_path, {"LP_API": fake.api_url, "LP_KEY": API_KEY}, "--config", "streams.yaml"
            )
            await probe.start()
            assert probe.process is not None
            deadline = time.monotonic() + 20
            while (
                not fake.created
                or not (origin.hls_dir / fake.created[0]["streamKey"] / "index.m3u8").exists()
            ):
                assert time.monotonic() < deadline, "the probe never published"
                await asyncio.sleep(0.2)
            await asyncio.sleep(2)  # playing by now
            probe.process.send_signal(signal.SIGINT)
            code, report, output = await probe.finish(timeout=20)
            assert code == 130, output
            assert report["outcome"] == "aborted"
            assert report["stream"] == "lp"
            assert len(fake.calls_of("delete_stream")) == 1
            assert fake.streams == {}
            (created,) = fake.created
    for secret in (API_KEY, created["streamKey"]):
        assert secret not in output
