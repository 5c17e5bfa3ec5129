"""WebRTC faults injected between the viewer and the embedded origin's WHEP output.

Every datagram passes through a UDP relay (tests/support/udp_relay.py): a blackout, a
known delay and packet loss are injected mid-session, and what the monitor reports is
checked against what was injected.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest

from streamer.events import (
    CheckFailed,
    FramesPlayed,
    FreezeEnded,
    PlaybackMeasured,
    StreamLabels,
    TransportStats,
)
from streamer.publish.flv import FlvClip
from streamer.session import SessionSettings
from streamer.targets import FixedTarget, Target
from streamer.testsignal.clip import Clip
from tests.support.aio import serve_local
from tests.support.embedded_origin import Origin
from tests.support.session_run import Recorder, run_session
from tests.support.udp_relay import Impairment, WhepRelayProxy

pytestmark = pytest.mark.e2e

KEY = "webrtc-fault-key"
FREEZE_MS = 500.0


async def impaired_session(
    origin: Origin,
    clip: Clip,
    flv: FlvClip,
    seconds: float,
    script: list[tuple[float, Impairment]],
    impairment: Impairment,
) -> Recorder:
    """A WebRTC-only session through the relay; at each (seconds after the first frame,
    settings) of `script`, the relay's impairment takes those settings."""
    proxy = WhepRelayProxy(origin.url("/whep"), impairment)
    try:
        async with serve_local(proxy.app()) as server:
            target = Target(
                ingest_url=origin.ingest_url(KEY),
                playback_url=server.url(f"/whep/{KEY}"),
            )
            settings = SessionSettings(
                labels=StreamLabels("faults", "local", "local"),
                duration_seconds=seconds,
                provisioner=FixedTarget(target),
                playback_protocol="webrtc",
                startup_timeout_seconds=10,
                freeze_ms=FREEZE_MS,
            )
            session = asyncio.create_task(run_session(settings, flv, clip.spec))
            deadline = time.monotonic() + 15
            while not any(r.forwarded > 100 for r in proxy.relays):  # until media flows
                assert time.monotonic() < deadline, [r.forwarded for r in proxy.relays]
                assert not session.done(), session.result()[0].events
                await asyncio.sleep(0.05)
            started = time.time()
            for at, settings_then in script:
                await asyncio.sleep(max(0.0, started + at - time.time()))
                impairment.loss = settings_then.loss
                impairment.delay_seconds = settings_then.delay_seconds
                impairment.blackout = settings_then.blackout
                impairment.random.seed(at)
                script_times.append(time.time())
            recorder, _ = await session
        assert proxy.deleted, "the WHEP session was not deleted"
        return recorder
    finally:
        proxy.close()


script_times: list[float] = []


async def test_a_one_second_blackout_is_a_freeze_reported_within_freeze_ms_and_a_drop(
    origin: Origin, clip: Clip, flv: FlvClip
) -> None:
    script_times.clear()
    recorder = await impaired_session(
        origin,
        clip,
        flv,
        12.0,
        [(3.0, Impairment(blackout=True)), (4.0, Impairment())],
        Impairment(),
    )
    blackout_at = script_times[0]
    failures = recorder.of(CheckFailed)
    kinds = {f.kind for f in failures}
    seen = [(f.kind, f.detail, round(f.at - blackout_at, 3)) for f in failures]
    assert {"frozen_video", "frame_drop"} <= kinds, seen
    assert kinds <= {"frozen_video", "frame_drop", "audio_missing"}, seen
    frozen = next(f for f in failures if f.kind == "frozen_video")
    assert frozen.at > blackout_at, seen  # nothing froze before the blackout
    assert frozen.labels.playback_protocol == "webrtc" and frozen.rendition == "webrtc"
    # The freeze began with the last frame before the blackout: reported within
    # freeze_ms + 100 ms of the blackout.
    assert frozen.at - blackout_at <= (FREEZE_MS + 100) / 1000
    freezes = [
        e.measurement
        for e in recorder.of(PlaybackMeasured)
        if isinstance(e.measurement, FreezeEnded)
    ]
    # Then, as a browser, the picture waits for the next keyframe (forwarded video cannot
    # make one on request): frozen for the blackout and up to two GOPs more.
    frozen_for = sum(f.seconds for f in freezes)
    assert freezes and 0.9 <= frozen_for <= 1.0 + 2 * 2.0 + 0.5, freezes
    drop = next(f for f in failures if f.kind == "frame_drop")
    assert "missing" in drop.detail


async def test_a_known_relay_delay_is_recovered_in_the_frame_latency(
    origin: Origin, clip: Clip, flv: FlvClip
) -> None:
    script_times.clear()
    recorder = await impaired_session(
        origin,
        clip,
        flv,
        14.0,
        [(4.0, Impairment(delay_seconds=0.1))],
        Impairment(),
    )
    switched = script_times[0]
    before = [
        latency
        for e in recorder.of(FramesPlayed)
        for latency in e.latencies_seconds
        if switched - 3.0 < e.at < switched - 0.2
    ]
    after = [
        latency
        for e in recorder.of(FramesPlayed)
        for latency in e.latencies_seconds
        if switched + 1.0 < e.at
    ]
    assert len(before) > 60 and len(after) > 100
    added = statistics.median(after) - statistics.median(before)
    assert added == pytest.approx(0.1, abs=0.02), (statistics.median(before), added)
    assert not recorder.of(CheckFailed)  # a steady delay is latency, not a fault


async def test_packet_loss_is_counted_from_the_receiver_statistics(
    origin: Origin, clip: Clip, flv: FlvClip
) -> None:
    script_times.clear()
    recorder = await impaired_session(
        origin, clip, flv, 10.0, [(0.0, Impairment(loss=0.05))], Impairment()
    )
    stats = [
        e.measurement
        for e in recorder.of(PlaybackMeasured)
        if isinstance(e.measurement, TransportStats)
    ]
    assert sum(s.packets_lost for s in stats) > 0
    latencies = [x for e in recorder.of(FramesPlayed) for x in e.latencies_seconds]
    assert len(latencies) > 150  # retransmissions keep the picture going
