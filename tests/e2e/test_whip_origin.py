"""WHIP ingest into the embedded origin, played back over WHEP: WebRTC end to end.

`streamer origin` runs as a user starts it; `streamer probe` publishes the test signal to
its WHIP endpoint (whip+http://) and plays the same key back over WHEP and over the
origin's HLS. The origin forwards what arrives to WHEP without decoding it, and packages it
as HLS like any publish. What a user would check: the probe succeeds with every check of
both protocols passing (frames, audio, A/V sync), every WebRTC frame it decoded was
measured (so their timecodes survived the trip), the WebRTC latency is far below a
segment's, the HLS ladder has its renditions, the key stays out of the output, and the
origin saw the publish come and go. A second publish of a key already publishing is
refused (409), and the key is free again once the first publish has ended.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import aiohttp
import pytest

from tests.support.embedded_origin import Origin

pytestmark = pytest.mark.e2e

KEY = "whip-origin-key-0042"


def _wait_for_log(origin: Origin, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while text not in origin.log():
        assert time.monotonic() < deadline, f"{text!r} not logged: {origin.log()[-2000:]}"
        time.sleep(0.1)
    return origin.log()


def _probe(
    origin: Origin, seconds: int, protocols: str = "webrtc"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "streamer",
            "probe",
            "--json",
            "--ingest-url",
            "whip+" + origin.url(f"/whip/{KEY}"),
            "--playback-protocol",
            protocols,
            "--whep-url",
            origin.url(f"/whep/{KEY}"),
            "--playback-url",
            origin.url(f"/hls/{KEY}/index.m3u8"),
            "--duration",
            f"{seconds}s",
            "--startup-timeout",
            "15s",
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=seconds + 60,
        env=os.environ.copy(),
    )


def test_probe_publishes_over_whip_into_the_origin_and_plays_it_back_over_whep_and_hls(
    origin: Origin,
) -> None:
    result = _probe(origin, 12, "webrtc,hls")

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["outcome"] == "success", report["errors"]
    assert report["errors"] == []
    assert report["ingest"].startswith("whip+http://")
    webrtc = report["webrtc"]
    # About 10 s at 25 fps after the first keyframe a viewer could start at; each frame
    # decoded was placed from its own timecode, so none was re-encoded beyond reading.
    assert webrtc["frames"] > 150, webrtc
    # WebRTC in and out on loopback: tens of milliseconds, nowhere near a segment.
    assert webrtc["frame_latency_seconds"]["p50"] < 0.15, webrtc
    assert webrtc["freezes"] == 0, webrtc
    # HLS of the same publish: the origin's ladder, segments measured from their timecodes.
    hls = {r["name"]: r for r in report["renditions"] if r["name"] != "webrtc"}
    assert {r["resolution"] for r in hls.values()} == {"640x360", "256x144"}, hls
    assert all(r["segments"] >= 3 for r in hls.values()), hls
    assert KEY not in result.stdout + result.stderr
    log = _wait_for_log(origin, "WHIP publisher disconnected", timeout=15)
    assert "WHIP publisher connected" in log
    assert "HLS ok" in log
    assert KEY not in log  # the key is masked in the origin's log too


async def test_a_key_already_publishing_is_refused_and_free_once_it_ended(
    origin: Origin,
) -> None:
    probe = asyncio.create_task(asyncio.to_thread(_probe, origin, 6))
    await asyncio.to_thread(_wait_for_log, origin, "WHIP publisher connected", 20)
    offer = "v=0\r\n"  # refused on the key before the SDP is read
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            origin.url(f"/whip/{KEY}"), data=offer, headers={"Content-Type": "application/sdp"}
        ) as answer,
    ):
        assert answer.status == 409
    result = await probe
    assert json.loads(result.stdout)["outcome"] == "success"
    # Ended: the same key publishes again.
    started = time.monotonic()
    again = await asyncio.to_thread(_probe, origin, 4)
    assert json.loads(again.stdout)["outcome"] == "success", again.stdout
    assert time.monotonic() - started < 60
