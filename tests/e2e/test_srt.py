"""SRT ingest end to end: into FFmpeg's SRT listener writing HLS (an independent origin),
and the faults a platform's SRT listener shows: a rejected stream id, a wrong or missing
passphrase, nothing listening."""

from __future__ import annotations

import uuid
from pathlib import Path

import aiohttp
import pytest

from streamer.events import CheckFailed, IngestLinkStats, SessionEnded, StreamLabels
from streamer.livepeer.client import LivepeerClient
from streamer.livepeer.provision import LivepeerProvisioner
from streamer.publish.flv import FlvClip
from streamer.session import Session, SessionSettings
from streamer.testsignal.clip import Clip
from tests.support.fake_livepeer import FakeLivepeer
from tests.support.ports import free_port
from tests.support.session_run import Recorder, run_session
from tests.support.srt_origin import FfmpegSrtOrigin, JudgingListener, srt_url
from tests.support.udp_relay import Impairment, UdpRelay

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


async def _through_relay(
    tmp_path: Path, clip: Clip, flv: FlvClip, impairment: Impairment, latency_ms: int
) -> tuple[Recorder, UdpRelay]:
    key = _key()
    with FfmpegSrtOrigin(tmp_path) as origin, origin.listen_srt(key, latency_ms=latency_ms) as port:
        relay = await UdpRelay(port, impairment).start()
        try:
            ingest = srt_url(relay.port, key, latency_ms=latency_ms)
            recorder, _ = await run_session(
                _settings(ingest, origin.playback_url(key), duration=12.0), flv, clip.spec
            )
        finally:
            relay.close()
    return recorder, relay


async def test_moderate_loss_is_retransmitted_and_stays_healthy(
    tmp_path: Path, clip: Clip, flv: FlvClip
) -> None:
    recorder, relay = await _through_relay(
        tmp_path, clip, flv, Impairment(loss=0.05, delay_seconds=0.01), latency_ms=300
    )
    assert relay.dropped > 50  # the path really lost packets
    failures = [f"{e.kind}: {e.detail}" for e in recorder.of(CheckFailed)]
    assert not failures, failures
    assert _outcome(recorder) == "success"
    stats = recorder.of(IngestLinkStats)
    assert sum(s.packets_retransmitted for s in stats) > 0
    assert max(s.rtt_seconds for s in stats) >= 0.02  # the relay's delay, both ways


async def test_loss_past_the_latency_window_is_seen_by_the_viewer(
    tmp_path: Path, clip: Clip, flv: FlvClip
) -> None:
    # 20 % loss with 40 ms each way against a 40 ms latency window: retransmissions come
    # too late, the listener drops what is missing and the HLS it writes is damaged.
    recorder, relay = await _through_relay(
        tmp_path, clip, flv, Impairment(loss=0.2, delay_seconds=0.04), latency_ms=40
    )
    assert relay.dropped > 100
    assert _outcome(recorder) == "failure"
    kinds = {e.kind for e in recorder.of(CheckFailed)}
    assert "publish_failed" not in kinds  # the publish itself went on
    assert kinds & {"frame_drop", "segment_decode_error", "audio_missing"}, kinds
    assert sum(s.packets_retransmitted for s in recorder.of(IngestLinkStats)) > 0


async def test_livepeer_api_mode_publishes_over_srt(
    tmp_path: Path, clip: Clip, flv: FlvClip
) -> None:
    key = _key()
    api_key = "sk-live-apikey-0123456789abcdef"
    with FfmpegSrtOrigin(tmp_path) as origin, origin.listen_srt(key) as port:
        async with (
            FakeLivepeer(
                api_key,
                ingest_base=f"srt://127.0.0.1:{port}",
                playback_base=f"http://127.0.0.1:{origin.http_port}",
                playback_id_is_stream_key=True,
                stream_key=key,
            ) as fake,
            aiohttp.ClientSession() as http,
        ):
            provisioner = LivepeerProvisioner(
                LivepeerClient(fake.api_url, api_key, http),
                "api-srt",
                ingest_region="local",
                playback_region="local",
                ingest_base=fake.ingest_base,
                playback_base=fake.playback_base,
                ingest_protocol="srt",
            )
            settings = SessionSettings(
                labels=LABELS,
                duration_seconds=8,
                startup_timeout_seconds=15,
                provisioner=provisioner,
            )
            recorder = Recorder()
            await Session(settings, flv, clip.spec, recorder).run()
    failures = [f"{e.kind}: {e.detail}" for e in recorder.of(CheckFailed)]
    assert not failures, failures
    assert _outcome(recorder) == "success"
    assert recorder.segments
    assert fake.calls_of("delete_stream"), "the test stream is deleted after the session"
    assert not fake.streams
