"""The SRT publisher and its MPEG-TS: the clip looped as one continuous stream, paced and
logged frame by frame, ended on a whole GOP; libsrt for real, on loopback."""

from __future__ import annotations

import asyncio
import io
import itertools
from collections import defaultdict

import av
import pytest

from streamer.events import IngestLinkStats, StreamLabels
from streamer.publish.flv import FlvClip
from streamer.publish.ingest import LinkSample
from streamer.publish.srt_publisher import SrtPublisher
from streamer.publish.srt_url import parse_srt
from streamer.publish.tsclip import TS_PACKET, to_ts
from streamer.sinks.metrics import MetricsSink
from streamer.testsignal.clip import ClipSpec, load_clip
from streamer.wiring import flv_clip
from tests.support.srt_origin import JudgingListener, srt_url

SPEC = ClipSpec(seconds=2.0, gop_seconds=1.0)


@pytest.fixture(scope="module")
def short_flv() -> FlvClip:
    load_clip(SPEC)
    return flv_clip(SPEC)


def _continuity_errors(data: bytes) -> int:
    """Continuity counter jumps on payload-carrying packets, per PID (what a demuxer flags)."""
    last: dict[int, int] = {}
    errors = 0
    for at in range(0, len(data), TS_PACKET):
        pid = ((data[at + 1] & 0x1F) << 8) | data[at + 2]
        if pid == 0x1FFF or not data[at + 3] & 0x10:
            continue
        cc = data[at + 3] & 0x0F
        if pid in last and cc != (last[pid] + 1) % 16:
            errors += 1
        last[pid] = cc
    return errors


def _timestamps(data: bytes) -> dict[str, list[float]]:
    times: dict[str, list[float]] = defaultdict(list)
    with av.open(io.BytesIO(data), "r", format="mpegts") as container:
        for packet in container.demux():
            if packet.dts is not None and packet.time_base is not None:
                times[packet.stream.type].append(float(packet.dts * packet.time_base))
    return times


def test_looped_ts_is_one_continuous_stream(short_flv: FlvClip) -> None:
    ts = to_ts(short_flv, SPEC.frame_count, SPEC.fps)
    assert [f.frame for f in ts.frames] == list(range(SPEC.frame_count))
    assert ts.frames[0].start == 0 and ts.frames[-1].end == len(ts.data)
    assert all(a.end == b.start for a, b in itertools.pairwise(ts.frames))
    assert all(f.start % TS_PACKET == 0 for f in ts.frames)
    loops = b"".join(ts.chunk(f.start, f.end, loop) for loop in range(3) for f in ts.frames)
    assert _continuity_errors(loops) == 0
    times = _timestamps(loops)
    video, audio = times["video"], times["audio"]
    assert len(video) == 3 * SPEC.frame_count
    assert all(b > a for a, b in itertools.pairwise(video))
    assert all(b > a for a, b in itertools.pairwise(audio))
    # Three loops span three clip lengths at the frame rate, not a frame more or less.
    assert video[-1] - video[0] == pytest.approx(3 * SPEC.seconds - 1 / SPEC.fps, abs=0.002)


async def test_publishes_paced_frames_and_stops_before_a_keyframe(short_flv: FlvClip) -> None:
    samples: list[LinkSample] = []
    with JudgingListener() as listener:
        publisher = SrtPublisher(
            short_flv,
            SPEC.frame_count,
            SPEC.fps,
            parse_srt(srt_url(listener.port, "key")),
            connect_timeout=3,
            on_link_stats=samples.append,
        )
        connected: list[float] = []
        task = asyncio.create_task(publisher.run(connected.append))
        await asyncio.sleep(2.4)  # into the second loop, past its first keyframe (2.0 s)
        publisher.stop()
        await asyncio.wait_for(task, 5)
        await asyncio.sleep(0.3)
    log = publisher.send_log
    # Stopped right before the keyframe at 3.0 s: three whole GOPs, loop 0 and half of 1.
    assert log.frames_sent == 3 * SPEC.gop_frames
    assert connected and log.first_packet_at == connected[0]
    first, last = log.sent_at(0), log.sent_at(log.frames_sent - 1)
    assert first is not None and last is not None
    assert last - first == pytest.approx((log.frames_sent - 1) / SPEC.fps, abs=0.08)
    assert listener.seen == ["key"]
    [received] = listener.received
    times = _timestamps(bytes(received))
    assert len(times["video"]) == log.frames_sent
    assert _continuity_errors(bytes(received)) == 0
    assert samples and all(s.rtt_seconds >= 0 for s in samples)


def test_link_stats_become_srt_metrics() -> None:
    sink = MetricsSink()
    labels = StreamLabels("s", "r", "r", ingest_protocol="srt")
    for retransmitted, buffered in ((3, 4000), (2, 1316)):
        sink.handle(
            IngestLinkStats(
                labels=labels,
                session_id="x",
                at=0.0,
                rtt_seconds=0.02,
                packets_retransmitted=retransmitted,
                packets_dropped=1,
                send_buffer_bytes=buffered,
            )
        )
    values = {
        "stream": "s",
        "ingest_region": "r",
        "playback_region": "r",
        "ingest_protocol": "srt",
        "playback_protocol": "hls",
    }
    registry = sink.registry
    assert registry.get_sample_value("streamer_srt_packets_retransmitted_total", values) == 5
    assert registry.get_sample_value("streamer_srt_packets_dropped_total", values) == 2
    assert registry.get_sample_value("streamer_srt_send_buffer_bytes", values) == 1316
    assert registry.get_sample_value("streamer_srt_rtt_seconds_count", values) == 2
