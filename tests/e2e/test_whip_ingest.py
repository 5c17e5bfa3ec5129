"""WHIP ingest: the test signal published over WebRTC without re-encoding.

The receiving end is a WHIP endpoint built on aiortc (tests/support/whip_sink.py), which
decodes what arrived and reads every picture's frame number. What a user would check: the
frames arrive in order with none missing, the audio arrives, the send log has every
frame, the WHIP session is deleted at the end, and a refusal is a publish failure with its
HTTP status.
"""

from __future__ import annotations

import asyncio

import pytest

from streamer.publish.errors import PublishError
from streamer.publish.flv import FlvClip
from streamer.publish.ingest import IngestOptions
from streamer.publish.registry import ingest_protocol
from streamer.testsignal.clip import Clip
from tests.support.aio import serve_local
from tests.support.whip_sink import WhipSink

pytestmark = pytest.mark.e2e

KEY = "whip-stream-key-0123"


@pytest.mark.parametrize("answer_in_pieces", [False, True], ids=["whole", "in-pieces"])
async def test_frames_arrive_in_order_with_none_missing_and_the_session_is_deleted(
    clip: Clip, flv: FlvClip, answer_in_pieces: bool
) -> None:
    """`in-pieces`: the SDP answer crosses the network in several reads (a reader that
    took what had arrived published nothing: a false publish failure)."""
    sink = WhipSink(answer_in_pieces=answer_in_pieces)
    async with serve_local(sink.app()) as server:
        url = "whip+" + server.url(f"/whip/{KEY}")
        protocol = ingest_protocol(url)
        assert protocol.name == "whip"
        assert protocol.mask(url).endswith("/whip/whip****")
        ingest = protocol.open(url, flv, clip.spec, IngestOptions())
        connected: list[float] = []
        task = asyncio.create_task(ingest.run(connected.append))
        await asyncio.sleep(5.0)
        ingest.stop()
        await asyncio.wait_for(task, 5.0)
        await asyncio.sleep(0.3)  # the last pictures on their way
    sent = ingest.send_log.frames_sent
    assert connected and ingest.send_log.first_packet_at == connected[0]
    assert sent % clip.spec.gop_frames == 0  # stopped right before a keyframe: whole GOPs
    codes = sink.codes
    assert None not in codes
    assert codes == list(range(len(codes)))  # in order, none missing
    assert len(codes) >= sent - 2  # the receiver holds the newest picture or two
    assert sink.audio_seconds > 0.8 * sent / clip.spec.fps
    assert len(sink.deleted) == 1


async def test_a_refused_offer_is_a_publish_failure_with_the_status(
    clip: Clip, flv: FlvClip
) -> None:
    sink = WhipSink(refuse_with=403)
    async with serve_local(sink.app()) as server:
        url = "whip+" + server.url(f"/whip/{KEY}")
        ingest = ingest_protocol(url).open(url, flv, clip.spec, IngestOptions())
        with pytest.raises(PublishError, match="WHIP offer refused: HTTP 403"):
            await asyncio.wait_for(ingest.run(), 10.0)
