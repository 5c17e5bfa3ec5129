"""`streamer origin` takes SRT too: the probe publishes over SRT into it with nothing else,
and the origin turns away, in the SRT handshake, a key that is invalid or already
publishing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamer.publish.errors import PublishError
from streamer.publish.flv import FlvClip
from streamer.publish.srt_publisher import SrtPublisher
from streamer.publish.srt_url import parse_srt
from streamer.testsignal.clip import Clip
from tests.support.embedded_origin import Origin, running_origin
from tests.support.srt_origin import srt_url

pytestmark = pytest.mark.e2e

KEY = "k1origin-srt-secret-key"


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[Origin]:
    with running_origin(tmp_path / "origin.log", srt=True) as running:
        yield running


def test_probe_publishes_over_srt_into_the_origin(origin: Origin) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamer",
            "probe",
            "--ingest-url",
            srt_url(origin.srt_port, KEY),
            "--playback-url",
            origin.playback_url(KEY),
            "--duration",
            "10s",
            "--json",
        ],
        capture_output=True,
        timeout=90,
        check=False,
    )
    report = json.loads(result.stdout)
    assert result.returncode == 0, report["errors"]
    assert report["outcome"] == "success"
    renditions = report["renditions"]
    assert sorted(r["resolution"] for r in renditions) == ["256x144", "640x360"]
    assert all(r["segments"] >= 3 for r in renditions), renditions
    assert report["startup_latency_seconds"] < 4.0
    assert KEY not in result.stdout.decode() + result.stderr.decode()
    log = origin.log_path.read_text()
    assert f"srt://127.0.0.1:{origin.srt_port}?streamid=<key>" in log
    assert "SRT publisher connected: key k1or****" in log
    assert KEY not in log


def _publish(origin: Origin, flv: FlvClip, clip: Clip, key: str) -> SrtPublisher:
    return SrtPublisher(
        flv,
        clip.spec.frame_count,
        clip.spec.fps,
        parse_srt(srt_url(origin.srt_port, key)),
        connect_timeout=3,
    )


async def test_a_busy_or_invalid_key_is_rejected_in_the_handshake(
    origin: Origin, flv: FlvClip, clip: Clip
) -> None:
    first = _publish(origin, flv, clip, KEY)
    connected = asyncio.Event()
    running = asyncio.create_task(first.run(lambda _t: connected.set()))
    try:
        await asyncio.wait_for(connected.wait(), 10)
        await asyncio.sleep(0.5)  # the origin has claimed the key
        second = _publish(origin, flv, clip, KEY)
        with pytest.raises(PublishError, match=r"stream id rejected .*conflict.*1409"):
            await second.run()
        invalid = _publish(origin, flv, clip, "../escape")
        with pytest.raises(PublishError, match=r"stream id rejected .*bad request.*1400"):
            await invalid.run()
        assert not running.done()  # the first publish goes on
    finally:
        first.stop()
        await asyncio.wait_for(running, 5)
