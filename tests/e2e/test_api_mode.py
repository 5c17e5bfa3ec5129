"""Livepeer API mode for real: a fake Studio API (the documented contract) whose ingest and
playback point at a real nginx-rtmp origin, so whole sessions run end to end."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from streamer.events import CheckFailed, FanOut, StreamLabels
from streamer.livepeer.client import LivepeerClient, Profile
from streamer.livepeer.jwt import PlaybackTokenSigner
from streamer.livepeer.provision import LivepeerProvisioner
from streamer.publish.flv import FlvClip
from streamer.session import Session, SessionSettings
from streamer.sinks.report import SessionReport
from streamer.testsignal.clip import Clip
from tests.support.fake_livepeer import FakeLivepeer
from tests.support.jwt_gate import JwtGate
from tests.support.nginx import NginxOrigin
from tests.support.ports import free_port
from tests.support.session_run import Recorder

pytestmark = pytest.mark.e2e

API_KEY = "sk-live-apikey-0123456789abcdef"
LABELS = StreamLabels("api", "local", "local")
PROFILES = (Profile("360p", 640, 360, 800_000, 30),)


async def _session(
    fake: FakeLivepeer,
    flv: FlvClip,
    clip: Clip,
    signer: PlaybackTokenSigner | None = None,
    playback_base: str | None = None,
) -> tuple[Recorder, SessionReport]:
    recorder, report = Recorder(), SessionReport()
    async with aiohttp.ClientSession() as http:
        client = LivepeerClient(fake.api_url, API_KEY, http)
        provisioner = LivepeerProvisioner(
            client,
            "api",
            ingest_region="local",
            playback_region="local",
            ingest_base=fake.ingest_base if playback_base else None,
            playback_base=playback_base,
            profiles=PROFILES,
            signer=signer,
        )
        settings = SessionSettings(
            labels=LABELS,
            ingest_url="rtmp://x.invalid/live/p",
            playback_url="http://x.invalid/p.m3u8",
            duration_seconds=7,
            startup_timeout_seconds=10,
            provisioner=provisioner,
        )
        await Session(settings, flv, clip.spec, FanOut([recorder, report])).run()
    return recorder, report


async def test_api_session_creates_and_deletes_its_stream(
    tmp_path: Path, clip: Clip, flv: FlvClip
) -> None:
    with NginxOrigin(tmp_path, nested=True) as origin:
        async with FakeLivepeer(
            API_KEY, origin.ingest_base, origin.playback_base, playback_id_is_stream_key=True
        ) as fake:
            _, report = await _session(fake, flv, clip)
            assert report.outcome == "success", report.errors
            (create,) = fake.calls_of("create_stream")
            assert create.authorization == f"Bearer {API_KEY}"
            assert create.json["name"].startswith("streamer-api-")
            assert create.json["profiles"][0]["height"] == 360
            assert len(fake.calls_of("delete_stream")) == 1
            assert fake.streams == {}  # nothing left behind


async def test_api_errors_are_reported_and_the_stream_still_deleted(
    tmp_path: Path, clip: Clip, flv: FlvClip
) -> None:
    with NginxOrigin(tmp_path, nested=True) as origin:
        async with FakeLivepeer(
            API_KEY, origin.ingest_base, origin.playback_base, playback_id_is_stream_key=True
        ) as fake:
            fake.fail_next("create_stream", status=503, message="transcoders overloaded")
            recorder, report = await _session(fake, flv, clip)
            assert report.outcome == "failure"
            (error,) = recorder.of(CheckFailed)
            assert error.kind == "api_error"
            assert "503" in error.detail and "transcoders overloaded" in error.detail
            assert API_KEY not in error.detail

            fake.fail_next("ingests", status=401, message="invalid API key")
            recorder, report = await _session(fake, flv, clip)
            assert [e.kind for e in recorder.of(CheckFailed)] == ["api_error"]
            assert "401" in recorder.of(CheckFailed)[0].detail
            assert fake.streams == {}  # created, then deleted although the session failed


async def test_jwt_gated_playback(tmp_path: Path, clip: Clip, flv: FlvClip) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with NginxOrigin(tmp_path, nested=True) as origin:
        async with (
            JwtGate(origin.playback_base, public) as gate,
            FakeLivepeer(
                API_KEY, origin.ingest_base, gate.base, playback_id_is_stream_key=True
            ) as fake,
        ):
            _, signed = await _session(
                fake, flv, clip, PlaybackTokenSigner(pem), playback_base=gate.base
            )
            assert signed.outcome == "success", signed.errors
            assert fake.calls_of("create_stream")[0].json["playbackPolicy"] == {"type": "jwt"}
            assert gate.passed > 3
            refused_before = gate.refused
            recorder, unsigned = await _session(fake, flv, clip, playback_base=gate.base)
    assert gate.refused > refused_before
    assert unsigned.outcome == "failure"
    details = [e.detail for e in recorder.of(CheckFailed)]
    assert any("401" in d and "playback refused" in d for d in details), details


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        body: bytes = response.read()
    return body.decode()


async def test_monitor_in_api_mode_cleans_up_and_leaks_no_secret(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signing_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with NginxOrigin(tmp_path / "nginx", nested=True) as origin:
        async with FakeLivepeer(
            API_KEY, origin.ingest_base, origin.playback_base, playback_id_is_stream_key=True
        ) as fake:
            leftover = fake.add_stream("streamer-api-stream-deadbeef")
            unrelated = fake.add_stream("someone-elses-stream")
            (tmp_path / "api-key").write_text(API_KEY + "\n")
            port = free_port()
            env = {
                k: v
                for k, v in os.environ.items()
                if k not in ("INJEST_URL", "INGEST_URL", "PLAYBACK_URL")
            }
            env.update(
                {
                    "LIVEPEER_API_KEY_FILE": str(tmp_path / "api-key"),
                    "LIVEPEER_API_URL": fake.api_url,
                    "STREAM_NAME": "api stream",
                    "DURATION": "8s",
                    "GRACE_PERIOD": "2s",
                    "METRICS_ADDR": f"127.0.0.1:{port}",
                    "LOG_FORMAT": "json",
                    "LIVEPEER_SIGNING_KEY": signing_pem,  # present but unused: must not leak
                }
            )
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "streamer",
                "monitor",
                cwd=tmp_path,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            try:
                deadline = time.monotonic() + 60
                while True:
                    await asyncio.sleep(0.5)
                    assert time.monotonic() < deadline, "no 2 successful API sessions in 60 s"
                    try:
                        text = await asyncio.to_thread(_get, port, "/metrics")
                    except OSError:
                        continue
                    if any(
                        line.startswith("streamer_tests_total{")
                        and 'outcome="success"' in line
                        and 'stream="api stream"' in line
                        and line.endswith(" 2.0")
                        for line in text.splitlines()
                    ):
                        break
                # Stop in the middle of the third session: its stream must be deleted too.
                while len(fake.calls_of("create_stream")) < 3:
                    await asyncio.sleep(0.2)
                await asyncio.sleep(2)
                status = await asyncio.to_thread(_get, port, "/api/streams/api%20stream")
                process.send_signal(signal.SIGTERM)
                output, _ = await asyncio.wait_for(process.communicate(), 10)
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            assert process.returncode == 0
            assert leftover["id"] not in fake.streams  # cleaned at start-up
            assert unrelated["id"] in fake.streams  # not ours: untouched
            creates = fake.calls_of("create_stream")
            deletes = [c.path.rsplit("/", 1)[1] for c in fake.calls_of("delete_stream")]
            ours = [
                s
                for s in fake.created
                if s["name"].startswith("streamer-api-stream-") and s["id"] != leftover["id"]
            ]
            assert len(ours) == len(creates) >= 3
            assert all(s["id"] in deletes for s in ours)  # one delete per session, SIGTERM too
            assert "streamer_api_latency_seconds_count" in text
    logs = output.decode()
    secrets_ = [API_KEY, signing_pem.splitlines()[1]] + [s["streamKey"] for s in ours]
    for secret in secrets_:
        for where, body in (("logs", logs), ("metrics", text), ("status API", status)):
            assert secret not in body, f"a secret leaked into the {where}"
    ended = [json.loads(line) for line in logs.splitlines() if "session ended" in line]
    assert ended[-1]["outcome"] == "aborted"


def test_api_mode_without_a_key_is_a_configuration_error(tmp_path: Path) -> None:
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEPEER", "INJEST"))}
    (tmp_path / "s.yaml").write_text(
        "streams:\n  - name: lp\n    livepeer:\n      playback_policy: jwt\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "streamer", "monitor", "--config", str(tmp_path / "s.yaml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "'lp'" in result.stderr and "LIVEPEER_API_KEY" in result.stderr


@pytest.fixture(autouse=True)
def _no_ambient_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIVEPEER_API_KEY", raising=False)
