"""The probe against a real nginx-rtmp origin: one rendition, a transcoded ladder, RTMPS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from streamer.events import SegmentObserved, StreamLabels
from streamer.publish.flv import FlvClip
from streamer.session import SessionSettings
from streamer.testsignal.clip import Clip
from tests.support.nginx import NginxOrigin
from tests.support.ports import free_port
from tests.support.session_run import FileTimes, run_session

pytestmark = pytest.mark.e2e

LABELS = StreamLabels("e2e", "local", "local")


def _key() -> str:
    return "key" + uuid.uuid4().hex


def _settings(
    ingest: str, playback: str, duration: float = 12.0, tls_ca_file: str | None = None
) -> SessionSettings:
    return SessionSettings(
        labels=LABELS,
        ingest_url=ingest,
        playback_url=playback,
        duration_seconds=duration,
        tls_ca_file=tls_ca_file,
    )


def _assert_agrees_with_origin(
    segments: list[SegmentObserved], times: FileTimes, name_of: dict[str, str]
) -> None:
    """Every segment's listed time matches the origin's own write time of that segment."""
    assert segments
    checked = 0
    for event in segments:
        file_name = name_of[event.rendition].format(seq=event.sequence)
        written = times.mtimes.get(file_name)
        assert written is not None, f"no write time seen for {file_name}"
        # Listed no earlier than written (same clock), and within the poll bound.
        assert -0.02 <= event.listed_at - written <= 0.25, (file_name, event.listed_at - written)
        assert event.downloaded_at >= event.listed_at
        checked += 1
    assert checked >= 4


async def test_single_rendition_copy_path(tmp_path: Path, clip: Clip, flv: FlvClip) -> None:
    key = _key()
    with NginxOrigin(tmp_path) as origin:
        times = FileTimes(origin.hls_dir)
        recorder, report = await run_session(
            _settings(origin.ingest_url(key), origin.playback_url(key)), flv, clip.spec, times
        )
    assert report["outcome"] == "success", report["errors"]
    assert report["errors"] == []
    # nginx-rtmp lists the first 2 s segment about 2.0-2.3 s after publishing starts.
    assert 1.8 <= report["startup_latency_seconds"] <= 4.0
    (rendition,) = report["renditions"]
    assert rendition["name"] == "source" and rendition["resolution"] == "640x360"
    assert rendition["segments"] >= 5
    assert rendition["segment_duration_seconds"]["mean"] == pytest.approx(2.0, abs=0.2)
    # Copy path: the newest frame is listed a moment after the next keyframe arrives.
    assert 0.0 < rendition["listed_latency_seconds"]["p50"] < 0.5
    _assert_agrees_with_origin(recorder.segments, times, {"source": key + "-{seq}.ts"})
    assert key not in json.dumps(report)


async def test_two_rendition_ladder(tmp_path: Path, clip: Clip, flv: FlvClip) -> None:
    key = _key()
    with NginxOrigin(tmp_path, ladder=True) as origin:
        times = FileTimes(origin.hls_dir)
        recorder, report = await run_session(
            _settings(origin.ingest_url(key), origin.playback_url(key), duration=14.0),
            flv,
            clip.spec,
            times,
        )
    assert report["outcome"] == "success", report["errors"]
    names = {r["name"]: r for r in report["renditions"]}
    assert set(names) == {"640x360", "256x144"}
    for rendition in names.values():
        assert rendition["segments"] >= 4
        assert 0.0 < rendition["segment_latency_seconds"]["p50"] < 1.5
    # The transcoder adds its start-up on top of the first segment.
    assert 1.8 <= report["startup_latency_seconds"] <= 8.0
    _assert_agrees_with_origin(
        recorder.segments,
        times,
        {"640x360": key + "_360p-{seq}.ts", "256x144": key + "_144p-{seq}.ts"},
    )


async def test_rtmps_ingest_verifies_the_certificate(
    tmp_path: Path, clip: Clip, flv: FlvClip
) -> None:
    key = _key()
    with NginxOrigin(tmp_path, rtmps=True) as origin:
        assert origin.tls_ca_file is not None
        _, trusted = await run_session(
            _settings(
                origin.rtmps_ingest_url(key),
                origin.playback_url(key),
                duration=6.0,
                tls_ca_file=str(origin.tls_ca_file),
            ),
            flv,
            clip.spec,
        )
        _, untrusted = await run_session(
            _settings(origin.rtmps_ingest_url(_key()), origin.playback_url(key), duration=6.0),
            flv,
            clip.spec,
        )
        # The certificate names localhost only: 127.0.0.1 is the wrong host name.
        _, wrong_host = await run_session(
            _settings(
                origin.rtmps_ingest_url(_key(), host="127.0.0.1"),
                origin.playback_url(key),
                duration=6.0,
                tls_ca_file=str(origin.tls_ca_file),
            ),
            flv,
            clip.spec,
        )
    assert trusted["outcome"] == "success", trusted["errors"]
    for report in (untrusted, wrong_host):
        assert report["outcome"] == "failure"
        assert report["errors"][0]["kind"] == "publish_failed"
        assert "certificate" in report["errors"][0]["detail"]


def _probe(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "streamer", "probe", *args],
        capture_output=True,
        check=False,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )
    return result, time.monotonic() - start


def test_probe_cli_json_against_a_closed_port() -> None:
    port = free_port()
    key = "sk_closedportsecret1234"
    result, elapsed = _probe(
        "--ingest-url",
        f"rtmp://127.0.0.1:{port}/live/{key}",
        "--playback-url",
        f"http://127.0.0.1:{port}/hls/x.m3u8",
        "--json",
    )
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert document["outcome"] == "failure"
    assert [e["kind"] for e in document["errors"]] == ["publish_failed"]
    assert "refused" in document["errors"][0]["detail"]
    assert elapsed < 10  # the interpreter start and clip load included
    assert key not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("rtmp://no-such-host.invalid/live/k", "unknown host"),
        ("rtmp://127.0.0.1:1/live/k", "refused"),
    ],
)
def test_probe_cli_unreachable_ingest(url: str, reason: str) -> None:
    result, elapsed = _probe(
        "--ingest-url",
        url,
        "--playback-url",
        "http://127.0.0.1:1/x.m3u8",
        "--json",
        "--duration",
        "5s",
    )
    assert result.returncode == 1
    assert reason in json.loads(result.stdout)["errors"][0]["detail"]
    assert elapsed < 15


def test_probe_cli_human_report(tmp_path: Path) -> None:
    key = _key()
    with NginxOrigin(tmp_path) as origin:
        result, _ = _probe(
            "--ingest-url",
            origin.ingest_url(key),
            "--playback-url",
            origin.playback_url(key),
            "--duration",
            "8s",
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "outcome: success" in result.stdout
    assert "source" in result.stdout and "640x360" in result.stdout
    assert key not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--ingest-url", "http://h/live/k", "--playback-url", "http://h/x.m3u8"], "--ingest-url"),
        (["--ingest-url", "rtmp://h/live/k", "--playback-url", "ftp://h/x"], "--playback-url"),
        (
            [
                "--ingest-url",
                "rtmp://h/live/k",
                "--playback-url",
                "http://h/x.m3u8",
                "--duration",
                "soon",
            ],
            "--duration",
        ),
    ],
)
def test_probe_cli_usage_errors_exit_2_naming_the_option(args: list[str], option: str) -> None:
    result, _ = _probe(*args)
    assert result.returncode == 2
    assert option in result.stderr


def test_reset_mid_stream_is_publish_failed(tmp_path: Path) -> None:
    key = _key()
    origin = NginxOrigin(tmp_path).start()
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamer",
                "probe",
                "--ingest-url",
                origin.ingest_url(key),
                "--playback-url",
                origin.playback_url(key),
                "--duration",
                "30s",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 20
        while not origin.media_playlist_path(key).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)
    finally:
        origin.stop()  # the ingest goes away mid-stream
    stdout, _ = process.communicate(timeout=30)
    assert process.returncode == 1
    kinds = [e["kind"] for e in json.loads(stdout)["errors"]]
    assert "publish_failed" in kinds
    assert urlsplit(origin.playback_url(key)).path not in stdout
