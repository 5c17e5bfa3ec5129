"""WebRTC (WHEP) against the embedded origin on loopback, beside HLS of the same stream.

- glass-to-glass latency per frame (p50/p95/p99), WebRTC and HLS measured in one session;
- the error against a ground truth: a known delay added by a UDP relay in the media path
  must reappear in the measured latency (at p50 and p95);
- ICE+DTLS connect time;
- CPU of one WebRTC viewer (this process: the viewer and the publisher) per minute;
- how long a 1 s blackout takes to be reported (target: freeze_ms + 100 ms).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.aio import serve_local
from tests.support.embedded_origin import running_origin
from tests.support.session_run import Recorder, run_session
from tests.support.udp_relay import Impairment, WhepRelayProxy

from benchmarks.common import LABELS, clip, new_key, percentile
from benchmarks.table import Figure, Target
from streamer.events import (
    CheckFailed,
    ConnectTime,
    FramesPlayed,
    PlaybackMeasured,
    SegmentObserved,
)
from streamer.session import SessionSettings
from streamer.targets import FixedTarget
from streamer.targets import Target as StreamTarget

SECTION = "webrtc"
FREEZE_MS = 500.0
KNOWN_DELAY = 0.05


@contextmanager
def _origin(workdir: Path) -> Iterator[tuple[int, int]]:
    """`streamer origin`; yields (rtmp, http) ports."""
    workdir.mkdir(parents=True, exist_ok=True)
    with running_origin(workdir / "origin.log") as origin:
        yield origin.rtmp_port, origin.http_port


def _settings(
    rtmp: int, http: int, key: str, seconds: float, protocols: tuple[str, ...], whep: str
) -> SessionSettings:
    return SessionSettings(
        labels=LABELS,
        duration_seconds=seconds,
        provisioner=FixedTarget(
            StreamTarget(
                ingest_url=f"rtmp://127.0.0.1:{rtmp}/live/{key}",
                playback_url=f"http://127.0.0.1:{http}/hls/{key}/index.m3u8",
                whep_url=whep,
            )
        ),
        playback_protocols=protocols,
        startup_timeout_seconds=15,
        freeze_ms=FREEZE_MS,
    )


def _frame_latencies(recorder: Recorder, after: float = 0.0, before: float = 1e18) -> list[float]:
    return [
        latency
        for event in recorder.of(FramesPlayed)
        if after < event.at < before
        for latency in event.latencies_seconds
    ]


async def _side_by_side(rtmp: int, http: int, seconds: float) -> list[Figure]:
    key = new_key("webrtc")
    spec, flv, _ = clip()
    whep = f"http://127.0.0.1:{http}/whep/{key}"
    recorder, _ = await run_session(
        _settings(rtmp, http, key, seconds, ("hls", "webrtc"), whep), flv, spec
    )
    frames = _frame_latencies(recorder)
    hls = [
        s.segment_latency_seconds
        for s in recorder.of(SegmentObserved)
        if s.labels.playback_protocol == "hls" and s.segment_latency_seconds is not None
    ]
    connects = [
        e.measurement.seconds
        for e in recorder.of(PlaybackMeasured)
        if isinstance(e.measurement, ConnectTime)
    ]
    hls_p50 = percentile(hls, 50) * 1000
    note = f"{len(frames)} frames; HLS baseline: segment latency (newest frame sent -> downloaded)"
    return [
        Figure(
            SECTION,
            "glass-to-glass latency p50, WHEP on loopback",
            percentile(frames, 50) * 1000,
            "ms",
            Target("<=", 100.0),
            baseline=hls_p50,
            baseline_label="HLS segment latency p50, same stream",
            note=note,
        ),
        Figure(SECTION, "glass-to-glass latency p95", percentile(frames, 95) * 1000, "ms"),
        Figure(SECTION, "glass-to-glass latency p99", percentile(frames, 99) * 1000, "ms"),
        Figure(
            SECTION,
            "ICE+DTLS connect time",
            connects[0] * 1000 if connects else None,
            "ms",
        ),
    ]


async def _impaired(
    rtmp: int,
    http: int,
    seconds: float,
    script: list[tuple[float, Impairment]],
) -> tuple[Recorder, list[float]]:
    """A WebRTC-only session through the relay; returns it and when each step applied."""
    key = new_key("webrtc")
    spec, flv, _ = clip()
    impairment = Impairment()
    proxy = WhepRelayProxy(f"http://127.0.0.1:{http}/whep", impairment)
    applied: list[float] = []
    try:
        async with serve_local(proxy.app()) as server:
            whep = server.url(f"/whep/{key}")
            task = asyncio.create_task(
                run_session(_settings(rtmp, http, key, seconds, ("webrtc",), whep), flv, spec)
            )
            deadline = time.monotonic() + 20
            while not any(r.forwarded > 100 for r in proxy.relays) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            started = time.time()
            for at, step in script:
                await asyncio.sleep(max(0.0, started + at - time.time()))
                impairment.delay_seconds, impairment.blackout = step.delay_seconds, step.blackout
                applied.append(time.time())
            recorder, _ = await task
        return recorder, applied
    finally:
        proxy.close()


async def _delay_truth(rtmp: int, http: int, seconds: float) -> list[Figure]:
    half = seconds / 2
    recorder, applied = await _impaired(
        rtmp, http, seconds + 2, [(half - 1, Impairment(delay_seconds=KNOWN_DELAY))]
    )
    switched = applied[0]
    before = _frame_latencies(recorder, switched - (half - 2), switched - 0.2)
    after = _frame_latencies(recorder, switched + 1.0)
    errors = {
        q: (percentile(after, q) - percentile(before, q) - KNOWN_DELAY) * 1000 for q in (50, 95)
    }
    note = f"{KNOWN_DELAY * 1000:.0f} ms added by the relay; {len(before)}/{len(after)} frames"
    return [
        Figure(
            SECTION,
            "latency error against a known relay delay, p50",
            abs(errors[50]),
            "ms",
            Target("<=", 10.0),
            note=note,
        ),
        Figure(
            SECTION,
            "latency error against a known relay delay, p95",
            abs(errors[95]),
            "ms",
            Target("<=", 10.0),
            note=note,
        ),
    ]


async def _blackout(rtmp: int, http: int) -> list[Figure]:
    recorder, applied = await _impaired(
        rtmp, http, 10.0, [(3.0, Impairment(blackout=True)), (4.0, Impairment())]
    )
    frozen = [f for f in recorder.of(CheckFailed) if f.kind == "frozen_video"]
    early = [f for f in frozen if f.at < applied[0]]  # a false freeze: none expected
    after = [f for f in frozen if f.at >= applied[0]]
    reported = (after[0].at - applied[0]) * 1000 if after and not early else None
    return [
        Figure(
            SECTION,
            "1 s blackout: time to report (frozen_video)",
            reported,
            "ms",
            Target("<=", FREEZE_MS + 100),
            note=f"freeze_ms {FREEZE_MS:.0f}; from the blackout's start"
            + (f"; {len(early)} freeze(s) reported before it" if early else ""),
        )
    ]


async def _cpu(rtmp: int, http: int, seconds: float) -> list[Figure]:
    key = new_key("webrtc")
    spec, flv, _ = clip()
    whep = f"http://127.0.0.1:{http}/whep/{key}"
    cpu, wall = time.process_time(), time.monotonic()
    recorder, _ = await run_session(
        _settings(rtmp, http, key, seconds, ("webrtc",), whep), flv, spec
    )
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    frames = len(_frame_latencies(recorder))
    return [
        Figure(
            SECTION,
            "CPU per WebRTC viewer-minute (viewer + publisher)",
            cpu / wall * 60,
            "s",
            note=f"{frames} frames decoded and read; H.264 640x360 30 fps, Opus",
        )
    ]


async def run(workdir: Path, quick: bool = False) -> list[Figure]:
    # Sized to keep `make bench` near 15 minutes: about 80 s here.
    seconds = 12.0 if quick else 24.0
    with _origin(workdir) as (rtmp, http):
        figures = await _side_by_side(rtmp, http, seconds)
        figures += await _delay_truth(rtmp, http, min(seconds, 18.0))
        figures += await _blackout(rtmp, http)
        figures += await _cpu(rtmp, http, min(seconds, 15.0))
    return figures
