"""SRT ingest end to end: into FFmpeg's SRT listener writing HLS (an independent origin),
and the faults a platform's SRT listener shows: a rejected stream id, a wrong or missing
passphrase, nothing listening."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from streamer.events import CheckFailed, IngestLinkStats, SessionEnded, StreamLabels
from streamer.publish.flv import FlvClip
from streamer.session import SessionSettings
from streamer.testsignal.clip import Clip
from tests.support.ports import free_port
from tests.support.session_run import Recorder, run_session
from tests.support.srt_origin import FfmpegSrtOrigin, JudgingListener, srt_url

pytestmark = pytest.mark.e2e

LABELS = StreamLabels("e2e-srt", "local", "local", ingest_protocol="srt")
PASSPHRASE = "correct horse battery"


def _key() -> str:
    return "key" + uuid.uuid4().hex


def _settings(ingest: str, playback: str, duration: float = 10.0) -> SessionSettings:
    return SessionSettings(
        labels=LABELS,
        ingest_url=ingest,
        playback_url=playback,
        duration_seconds=duration,
        connect_timeout_seconds=2.0,
    )


def _publish_failures(recorder: Recorder) -> list[str]:
    return [e.detail for e in recorder.of(CheckFailed) if e.kind == "publish_failed"]


def _outcome(recorder: Recorder) -> str:
    ended = recorder.of(SessionEnded)
    assert len(ended) == 1
    return str(ended[0].outcome)


async def test_publishes_into_ffmpeg_srt_listener(tmp_path: Path, clip: Clip, flv: FlvClip) -> None:
    key = _key()
    with FfmpegSrtOrigin(tmp_path) as origin, origin.listen_srt(key, passphrase=PASSPHRASE) as port:
        settings = _settings(srt_url(port, key, PASSPHRASE), origin.playback_url(key))
        recorder, report = await run_session(settings, flv, clip.spec)
    failures = [f"{e.kind}: {e.detail}" for e in recorder.of(CheckFailed)]
    assert not failures, failures
    assert _outcome(recorder) == "success"
    segments = recorder.segments
    assert len(segments) >= 3
    listed = [s.listed_latency_seconds for s in segments if s.listed_latency_seconds is not None]
    # A copy path on loopback: once FFmpeg has probed its input (the first segment waits
    # for that), a segment is listed well within a second of its newest frame leaving.
    assert listed and max(listed) < 5.0, listed
    assert listed[-1] < 1.0, listed
    stats = recorder.of(IngestLinkStats)
    assert stats, "no SRT link statistics while publishing"
    assert all(0 <= s.rtt_seconds < 1 for s in stats)
    assert report["outcome"] == "success"


async def test_passphrase_mismatch_is_publish_failed(
    tmp_path: Path, clip: Clip, flv: FlvClip
) -> None:
    key = _key()
    with FfmpegSrtOrigin(tmp_path) as origin, origin.listen_srt(key, passphrase=PASSPHRASE) as port:
        settings = _settings(srt_url(port, key, "not the passphrase"), origin.playback_url(key))
        recorder, _ = await run_session(settings, flv, clip.spec)
        missing, _ = await run_session(
            _settings(srt_url(port, key), origin.playback_url(key)), flv, clip.spec
        )
    assert _outcome(recorder) == "failure"
    [reason] = _publish_failures(recorder)
    assert reason.startswith("passphrase mismatch"), reason
    assert "not the passphrase" not in reason
    [reason] = _publish_failures(missing)
    assert reason.startswith("passphrase missing"), reason


async def test_rejected_stream_id_is_publish_failed(clip: Clip, flv: FlvClip) -> None:
    key = _key()
    with JudgingListener(lambda sid: 0 if sid == key else 1403) as listener:
        settings = _settings(srt_url(listener.port, "wrong" + key), "http://127.0.0.1:9/x.m3u8")
        recorder, _ = await run_session(settings, flv, clip.spec)
    assert listener.seen == ["wrong" + key]
    assert _outcome(recorder) == "failure"
    [reason] = _publish_failures(recorder)
    assert reason.startswith("stream id rejected"), reason
    assert "1403" in reason
    assert key not in reason


async def test_nothing_listening_is_publish_failed(clip: Clip, flv: FlvClip) -> None:
    port = free_port()
    settings = _settings(srt_url(port, _key()), "http://127.0.0.1:9/x.m3u8")
    recorder, _ = await run_session(settings, flv, clip.spec)
    assert _outcome(recorder) == "failure"
    [reason] = _publish_failures(recorder)
    assert reason.startswith("connection refused or timed out"), reason
    assert f"127.0.0.1:{port}" in reason
