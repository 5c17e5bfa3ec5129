"""WHIP ingest into an independent WebRTC server: Debian's Janus gateway (VideoRoom).

Janus runs on 127.0.0.1 in a network namespace of the test's own (tests/support/netns.py:
Janus gathers no candidates on a loopback interface), behind the thin WHIP/WHEP front of
tests/support/janus_whip.py; Janus does all the ICE, DTLS, SRTP and RTP. The room records
what Janus received; `janus-pp-rec` (Debian janus-tools) turns the recording into files,
and the test reads the frame numbers back from the pictures. What a user would check:
every frame that was sent arrived, in order, none missing; the audio arrived; the WHIP
session was deleted at the end.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from streamer.publish.flv import FlvClip
from streamer.publish.ingest import IngestOptions
from streamer.publish.registry import ingest_protocol
from streamer.testsignal import timecode
from streamer.testsignal.clip import Clip
from tests.support.aio import serve_local
from tests.support.janus import JanusServer
from tests.support.janus_whip import JanusWhip
from tests.support.netns import INTERFACE, private_loopback

pytestmark = pytest.mark.e2e

ROOM = "janus-whip-room"
PUBLISH_SECONDS = 6.0


@pytest.fixture
def janus(tmp_path: Path) -> Iterator[JanusServer]:
    with private_loopback(), JanusServer(tmp_path / "janus", ice_interface=INTERFACE) as server:
        yield server


def recorded(recordings: Path, kind: str, suffix: str, workdir: Path) -> Path:
    """The room's one recording of `kind`, post-processed by janus-pp-rec into `suffix`."""
    (mjr,) = recordings.glob(f"videoroom-{ROOM}-*-{kind}-*.mjr")
    out = workdir / f"{kind}{suffix}"
    command = ["janus-pp-rec", str(mjr), str(out)]
    done = subprocess.run(command, check=False, capture_output=True, timeout=60)
    assert done.returncode == 0 and out.exists(), done.stderr.decode(errors="replace")
    return out


def frame_numbers(path: Path) -> list[int | None]:
    with av.open(str(path)) as container:
        return [
            timecode.read(np.ascontiguousarray(frame.to_ndarray(format="gray")))
            for frame in container.decode(video=0)
        ]


def audio_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        return sum(frame.samples / frame.sample_rate for frame in container.decode(audio=0))


async def test_whip_into_janus_every_frame_recorded_in_order(
    janus: JanusServer, clip: Clip, flv: FlvClip, tmp_path: Path
) -> None:
    front = JanusWhip(janus.api_url, janus.recordings)
    async with serve_local(front.app()) as server:
        url = "whip+" + server.url(f"/whip/{ROOM}")
        ingest = ingest_protocol(url).open(url, flv, clip.spec, IngestOptions())
        task = asyncio.create_task(ingest.run())
        await asyncio.sleep(PUBLISH_SECONDS)
        ingest.stop()
        await asyncio.wait_for(task, 10.0)
        assert front.deleted and front.deleted[0].startswith(f"/whip/{ROOM}/")
    # Janus closes the recording when the publisher leaves (the WHIP DELETE).
    sent = ingest.send_log.frames_sent
    assert sent >= (PUBLISH_SECONDS - 1) * clip.spec.fps

    codes = frame_numbers(recorded(janus.recordings, "video", ".mp4", tmp_path))
    assert None not in codes  # every recorded picture readable
    # Every frame sent, in order, none missing: the clip's numbering wraps at its length.
    assert codes == [n % clip.spec.frame_count for n in range(sent)]
    seconds = audio_seconds(recorded(janus.recordings, "audio", ".opus", tmp_path))
    assert seconds > 0.9 * sent / clip.spec.fps
