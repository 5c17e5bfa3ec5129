"""WebRTC frames into checkable units, per-frame latency, and the WebRTC configuration."""

from __future__ import annotations

import fractions
import io
from pathlib import Path

import aiohttp
import av
import numpy as np
import pytest
from prometheus_client import generate_latest

from streamer.config import ConfigError, from_environment, load_file
from streamer.events import (
    CheckFailed,
    ConnectTime,
    FramesPlayed,
    FreezeEnded,
    PlaybackMeasured,
    StreamLabels,
)
from streamer.livepeer.client import LivepeerClient, webrtc_source
from streamer.livepeer.provision import LivepeerProvisioner
from streamer.placement import frame_latencies
from streamer.playback.follower import SegmentFetch
from streamer.playback.frame_batch import FrameBatcher
from streamer.publish.registry import ingest_protocol
from streamer.publish.sendlog import SendLog
from streamer.sinks.metrics import MetricsSink
from streamer.sinks.report import SessionReport
from streamer.sinks.terminal import render_report
from streamer.testsignal import timecode
from streamer.webrtc.ice import configuration, is_loopback_url
from streamer.wiring import labels
from tests.support.fake_livepeer import FakeLivepeer

VIDEO_TB = fractions.Fraction(1, 90_000)
AUDIO_TB = fractions.Fraction(1, 48_000)
FPS = 30


def video_frame(number: int, pts_seconds: float) -> av.VideoFrame:
    luma = np.full((144, 256), 128, dtype=np.uint8)
    timecode.draw(luma, number)
    frame = av.VideoFrame.from_ndarray(luma, format="gray")
    frame = frame.reformat(format="yuv420p")
    frame.pts, frame.time_base = round(pts_seconds * 90_000), VIDEO_TB
    return frame


def audio_frame(pts_seconds: float, loud_from: float | None) -> av.AudioFrame:
    """20 ms of a quiet bed; loud from `loud_from` seconds (on the same clock) on."""
    t = pts_seconds + np.arange(960) / 48_000
    level = np.where(loud_from is not None and t >= (loud_from or 0), 0.5, 0.05)
    samples = (level * np.sin(2 * np.pi * 1000 * t) * 32767).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(
        np.repeat(samples, 2)[None, :], format="s16", layout="stereo"
    )
    frame.sample_rate, frame.pts, frame.time_base = 48_000, round(pts_seconds * 48_000), AUDIO_TB
    return frame


def test_frames_become_numbered_units_with_their_timecodes_and_decode_times() -> None:
    batcher = FrameBatcher("webrtc")
    base = 1000.0  # RTP clocks start anywhere
    arrivals = []
    units = []
    for n in range(40):
        arrived = 5000.0 + n / FPS + 0.05
        arrivals.append(arrived)
        batcher.add_video(video_frame(n, base + n / FPS), arrived)
        if batcher.due():
            units.append(batcher.flush())
    units.append(batcher.flush())
    assert [u.segment.sequence for u in units if u] == [0, 1, 2, 3]  # 1, 16, 16, 7 frames
    first = units[0]
    assert first is not None and first.analysis is not None
    assert first.analysis.timecodes == (0,)  # the first frame goes at once: startup
    assert first.listed_at == arrivals[0]
    codes = [c for u in units if u and u.analysis for c in u.analysis.timecodes]
    assert codes == list(range(40))
    times = [t for u in units if u for t in u.frame_times]
    assert times == arrivals
    second = units[1]
    assert second is not None and second.analysis is not None
    assert second.analysis.frame_duration == pytest.approx(1 / FPS, abs=1e-4)
    # On the wall clock: the least-delayed frame's mapping (all equal here).
    assert second.analysis.first_pts == pytest.approx(arrivals[1], abs=1e-3)


def test_a_clock_that_settles_after_a_startup_burst_starts_a_new_timeline() -> None:
    batcher = FrameBatcher("webrtc")
    # The first frames arrive late together (a server sending what it buffered).
    batcher.add_video(video_frame(0, 0.0), 10.5)
    first = batcher.flush()
    for n in range(1, 20):
        batcher.add_video(video_frame(n, n / FPS), 10.0 + n / FPS + 0.02)
    settled = batcher.flush()
    for n in range(20, 40):
        batcher.add_video(video_frame(n, n / FPS), 10.0 + n / FPS + 0.021)
    steady = batcher.flush()
    assert first is not None and settled is not None and steady is not None
    assert not first.segment.discontinuity
    assert settled.segment.discontinuity  # its timestamps moved by 0.48 s
    assert not steady.segment.discontinuity


def test_audio_bursts_are_found_on_the_shared_timeline() -> None:
    batcher = FrameBatcher("webrtc")
    for n in range(30):
        batcher.add_video(video_frame(n, 50.0 + n / FPS), 2000.0 + n / FPS)
    for k in range(50):  # one second of audio, the burst starting at 0.5 s
        start = 7.0 + k * 0.02
        batcher.add_audio(audio_frame(start, loud_from=7.5), 2000.0 + k * 0.02)
    unit = batcher.flush()
    assert unit is not None and unit.analysis is not None and unit.analysis.audio is not None
    audio = unit.analysis.audio
    assert audio.gap_seconds == pytest.approx(0.0, abs=1e-6)
    assert audio.first_pts == pytest.approx(2000.0, abs=1e-3)
    assert [round(t, 2) for t in audio.burst_onsets] == [2000.5]


def _play(
    batcher: FrameBatcher, seconds: float, audio_late: float, audio_until: float
) -> list[SegmentFetch]:
    """Video at 30 fps arriving on time, audio (20 ms frames, contiguous timestamps until
    `audio_until`) arriving `audio_late` seconds after its moment; units as due."""
    events = [(n / FPS, "v", n) for n in range(round(seconds * FPS))]
    events += [(k * 0.02 + audio_late, "a", k) for k in range(round(audio_until / 0.02))]
    units = []
    for arrived, kind, n in sorted(events):
        if kind == "v":
            batcher.add_video(video_frame(n, 100.0 + n / FPS), 3000.0 + arrived)
        else:
            batcher.add_audio(audio_frame(40.0 + n * 0.02, None), 3000.0 + arrived)
        if batcher.due(3000.0 + arrived):
            units.append(batcher.flush())
    return [u for u in units if u is not None]


def test_audio_arriving_late_behind_its_video_is_waited_for_not_taken_for_silence() -> None:
    # A busy host: every audio frame arrives 0.3 s after its moment, none is missing.
    units = _play(FrameBatcher("webrtc"), 6.0, audio_late=0.3, audio_until=6.0)
    assert len(units) >= 8
    for unit in units[1:]:  # the first frame goes at once: startup
        assert unit.analysis is not None and unit.analysis.audio is not None
        assert unit.analysis.audio.end_pts is not None
        # Its audio reaches its video's end: no silence to report.
        assert unit.analysis.audio.end_pts >= unit.analysis.last_pts - 0.05


def test_audio_that_stopped_is_waited_for_once_at_most_a_second() -> None:
    units = _play(FrameBatcher("webrtc"), 6.0, audio_late=0.0, audio_until=2.0)
    silent = [i for i, u in enumerate(units) if u.analysis and u.analysis.audio is None]
    assert silent, "the units after the audio stopped must go without it"
    straddling, first_silent = units[silent[0] - 1], units[silent[0]]
    # The unit the audio stopped in waited AUDIO_WAIT_SECONDS for more of it...
    assert 3000.0 + 2.0 + 0.9 < straddling.listed_at < 3000.0 + 2.0 + 1.3
    # ...and the next ones go without waiting again: the silence is reported at once.
    assert first_silent.listed_at - straddling.listed_at < 0.6
    assert silent == list(range(silent[0], len(units)))


def test_frame_latency_is_decode_time_minus_send_time_of_every_readable_frame() -> None:
    log = SendLog(frames_per_loop=1800, fps=FPS)
    for n in range(10):
        log.record(n, 100.0 + n / FPS)
    batcher = FrameBatcher("webrtc")
    batcher.add_video(video_frame(0, 0.0), 100.08)
    unit = batcher.flush()
    assert unit is not None and unit.analysis is not None
    assert frame_latencies(unit.analysis, unit.frame_times, log) == pytest.approx((0.08,))


def test_webrtc_metrics_carry_the_protocol_label() -> None:
    metrics = MetricsSink()
    labels = StreamLabels("s", "r", "r", playback_protocol="webrtc")
    metrics.handle(
        FramesPlayed(
            labels=labels, session_id="x", rendition="webrtc", latencies_seconds=(0.05,), at=0
        )
    )
    for measurement in (ConnectTime(0.03), FreezeEnded("webrtc", 0.7)):
        metrics.handle(
            PlaybackMeasured(labels=labels, session_id="x", measurement=measurement, at=0)
        )
    lines = generate_latest(metrics.registry).decode().splitlines()

    def series(name: str) -> list[str]:
        return [line for line in lines if line.startswith(name + "{")]

    for name in (
        "streamer_frame_latency_seconds_count",
        "streamer_webrtc_connect_seconds_count",
        "streamer_freezes_total",
        "streamer_freeze_seconds_total",
    ):
        (line,) = series(name)
        assert 'playback_protocol="webrtc"' in line, line
    assert series("streamer_freeze_seconds_total")[0].endswith(" 0.7")


def test_playback_protocols_from_the_environment_and_the_streams_file(tmp_path: Path) -> None:
    config = from_environment(
        {
            "INGEST_URL": "rtmp://h/live/k",
            "PLAYBACK_URL": "http://h/a.m3u8",
            "PLAYBACK_PROTOCOLS": "hls,webrtc",
            "WHEP_URL": "https://h/whep/k",
            "ICE_SERVERS": "stun:stun.example:3478",
        }
    )
    assert config is not None
    (stream,) = config.streams
    assert stream.playback == ["hls", "webrtc"]
    assert stream.whep_url == "https://h/whep/k" and stream.freeze_ms == 500
    path = tmp_path / "streams.yaml"
    path.write_text(
        "streams:\n  - name: w\n    injest_url: rtmp://h/live/k\n"
        "    whep_url: https://h/whep/k\n    playback: [webrtc]\n"
    )
    (only_webrtc,) = load_file(path, {}).streams
    assert only_webrtc.playback == ["webrtc"] and only_webrtc.playback_url is None


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("PLAYBACK_PROTOCOLS", "hls,dash", "PLAYBACK_PROTOCOLS: entry 2: unknown protocol 'dash'"),
        ("ICE_SERVERS", "http://stun.example", "ICE_SERVERS: entry 1: ice_servers entries must"),
        ("FREEZE_MS", "10", "FREEZE_MS"),
        ("WHEP_URL", "ftp://h/whep", "WHEP_URL"),
    ],
)
def test_bad_webrtc_settings_name_the_variable(variable: str, value: str, named: str) -> None:
    env = {"INGEST_URL": "rtmp://h/live/k", "PLAYBACK_URL": "http://h/a.m3u8", variable: value}
    with pytest.raises(ConfigError) as error:
        from_environment(env)
    assert named in str(error.value)


def test_ice_configuration_is_explicit_and_empty_by_default() -> None:
    assert configuration(()).iceServers == []  # aiortc would otherwise use a public STUN
    servers = configuration(("turn:user:secret@turn.example:3478",)).iceServers
    assert servers is not None
    (turn,) = servers
    assert (turn.urls, turn.username, turn.credential) == (
        "turn:turn.example:3478",
        "user",
        "secret",
    )
    assert is_loopback_url("http://127.0.0.1:8080/whep/k")
    assert is_loopback_url("http://localhost/whep/k")
    assert not is_loopback_url("https://livepeer.studio/webrtc/abcd")


def test_the_whep_url_is_the_playback_infos_h264_webrtc_source() -> None:
    body = {
        "type": "live",
        "meta": {
            "source": [
                {"type": "html5/application/vnd.apple.mpegurl", "url": "https://cdn/hls/x.m3u8"},
                {"type": "html5/video/h264", "url": "https://edge.example/webrtc/abcd"},
            ]
        },
    }
    assert webrtc_source(body) == "https://edge.example/webrtc/abcd"
    assert webrtc_source({"meta": {"source": body["meta"]["source"][:1]}}) is None  # type: ignore[index]
    assert (
        webrtc_source({"meta": {"source": [{"type": "html5/video/h264", "url": "ftp://x"}]}})
        is None
    )
    assert webrtc_source([]) is None


async def test_api_mode_over_whip_publishes_to_livepeers_whip_url_for_the_stream_key() -> None:
    async with FakeLivepeer("k") as fake, aiohttp.ClientSession() as http:
        targets = []
        for ingest_base in (None, "https://{region}-whip.example/webrtc"):
            provisioner = LivepeerProvisioner(
                LivepeerClient(fake.api_url, "k", http),
                "w",
                ingest_region="eu",
                playback_region="eu",
                ingest_base=ingest_base,
                playback_base="https://cdn.example/hls",
                ingest_protocol="whip",
            )
            targets.append(await provisioner.acquire())
            await provisioner.release()
    keys = [created["streamKey"] for created in fake.created]
    assert [t.ingest_url for t in targets] == [
        f"whip+https://playback.livepeer.studio/webrtc/{keys[0]}",
        f"whip+https://eu-whip.example/webrtc/{keys[1]}",  # the configured base, regional
    ]
    assert ingest_protocol(targets[0].ingest_url).name == "whip"
    assert keys[0] not in targets[0].masked()[0]


def test_livepeer_ingest_protocol_whip_names_the_label() -> None:
    config = from_environment({"LIVEPEER_API_KEY": "k", "LIVEPEER_INGEST_PROTOCOL": "whip"})
    assert config is not None
    assert labels(config.streams[0]).ingest_protocol == "whip"


def test_the_probe_report_shows_webrtc_beside_the_renditions_and_errors_by_protocol() -> None:
    report = SessionReport()
    labels_webrtc = StreamLabels("s", "r", "r", playback_protocol="webrtc")
    report.handle(
        FramesPlayed(
            labels=labels_webrtc,
            session_id="x",
            rendition="webrtc",
            latencies_seconds=(0.05, 0.07),
            at=0,
        )
    )
    report.handle(
        CheckFailed(
            labels=labels_webrtc,
            session_id="x",
            kind="ice_failed",
            rendition=None,
            detail="no ICE candidate pair worked (ICE checking)",
            at=0,
        )
    )
    document = report.document()
    assert document["webrtc"]["frames"] == 2
    assert document["errors"][0]["protocol"] == "webrtc"
    out = io.StringIO()
    render_report(document, out)
    text = out.getvalue()
    assert "webrtc: 2 frames, glass-to-glass p50 0.060" in text
    assert "ice_failed" in text and "webrtc" in text
