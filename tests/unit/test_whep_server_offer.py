"""WebRTC playback against WHEP endpoints that offer themselves (406 + PATCH the answer),
as Janus 1.1 does behind meetecho's simple-whep-server (the e2e test with Janus is
tests/e2e/test_janus_whep.py).

The endpoints are local aiohttp apps; the server side of a healthy one is aiortc. What a
user would check: a server offer is answered and the viewer connects; a refused answer or
an unusable offer is a negotiation failure with its reason; a 406 that carries no offer
is an ordinary refusal; the session's resource is DELETEd at the end whatever happened.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription

from streamer.events import ConnectTime
from streamer.playback.base import PlaybackOptions
from streamer.playback.fetch import Fetcher, FetchPolicy
from streamer.playback.webrtc import WebRtcPlayback
from streamer.webrtc.ice import configuration, loopback_only
from tests.support.aio import serve_local
from tests.unit.test_whep_playback import Observer

NEGOTIATION_FAILED = "webrtc_negotiation_failed"


@dataclass
class OfferingEndpoint:
    """POST: 406 with what `offer()` makes; PATCH: the answer, judged by `patch_status`."""

    offer: Callable[[], Awaitable[str]]
    patch_status: int = 204
    answers: list[tuple[str, str]] = field(default_factory=list)  # (content type, body)
    deletes: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/whep/stream", self._post)
        app.router.add_patch("/whep/stream/{session}", self._patch)
        app.router.add_delete("/whep/stream/{session}", self._delete)
        return app

    async def _post(self, _: web.Request) -> web.Response:
        return web.Response(
            status=406,
            body=(await self.offer()).encode(),
            headers={"Content-Type": "application/sdp", "Location": "/whep/stream/s1"},
        )

    async def _patch(self, request: web.Request) -> web.Response:
        self.answers.append((request.content_type, await request.text()))
        return web.Response(status=self.patch_status)

    async def _delete(self, request: web.Request) -> web.Response:
        self.deletes.append(request.match_info["session"])
        return web.Response(status=200)


@pytest.fixture
async def server_peer() -> AsyncIterator[list[RTCPeerConnection]]:
    created: list[RTCPeerConnection] = []
    yield created
    await asyncio.gather(*(pc.close() for pc in created))


def aiortc_offer(peers: list[RTCPeerConnection]) -> Callable[[], Awaitable[str]]:
    """A server that offers H.264 and Opus, and takes the answer PATCHed to it."""

    async def offer() -> str:
        pc = RTCPeerConnection(configuration(()))
        peers.append(pc)
        pc.addTransceiver("video", direction="sendonly")
        pc.addTransceiver("audio", direction="sendonly")
        with loopback_only():
            await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp

    return offer


async def apply_answers(endpoint: OfferingEndpoint, peers: list[RTCPeerConnection]) -> None:
    """The server side takes the viewer's answer (the PATCH handler only records it)."""
    while not endpoint.answers:
        await asyncio.sleep(0.01)
    _, sdp = endpoint.answers[0]
    await peers[-1].setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))


async def play(endpoint: OfferingEndpoint, *, seconds: float, startup: float = 0.0) -> Observer:
    observer = Observer()
    async with serve_local(endpoint.app()) as server:
        url = server.url("/whep/stream")
        fetcher = Fetcher(FetchPolicy(), None, lambda: url)
        options = PlaybackOptions(startup_deadline=time.monotonic() + startup)
        task = asyncio.create_task(WebRtcPlayback(url, fetcher, observer, options).run())
        await asyncio.sleep(seconds)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await fetcher.close()
    return observer


async def test_a_server_offer_is_answered_by_patch_and_the_viewer_connects(
    server_peer: list[RTCPeerConnection],
) -> None:
    endpoint = OfferingEndpoint(aiortc_offer(server_peer))
    applying = asyncio.create_task(apply_answers(endpoint, server_peer))
    observer = await play(endpoint, seconds=2.0)
    await applying

    assert observer.errors == []
    ((content_type, answer),) = endpoint.answers
    assert content_type == "application/sdp" and answer.startswith("v=0")
    assert "a=recvonly" in answer and "H264" in answer
    assert [m for m in observer.measurements if isinstance(m, ConnectTime)]
    assert endpoint.deletes == ["s1"]


async def test_a_refused_answer_is_a_negotiation_failure(
    server_peer: list[RTCPeerConnection],
) -> None:
    endpoint = OfferingEndpoint(aiortc_offer(server_peer), patch_status=400)
    observer = await play(endpoint, seconds=1.0)
    assert observer.errors == [
        (None, NEGOTIATION_FAILED, "WHEP answer to the server's offer: HTTP 400")
    ]
    assert endpoint.deletes == ["s1"]


async def test_an_unusable_server_offer_is_a_negotiation_failure() -> None:
    async def garbage() -> str:
        return "v=0\r\nm=video nonsense\r\n"

    endpoint = OfferingEndpoint(garbage)
    observer = await play(endpoint, seconds=0.5)
    assert [(kind, detail.split(" (")[0]) for _, kind, detail in observer.errors] == [
        (NEGOTIATION_FAILED, "WHEP server offer: unusable SDP")
    ]
    assert endpoint.answers == []
    assert endpoint.deletes == ["s1"]


async def test_a_406_without_an_offer_is_an_ordinary_refusal() -> None:
    async def nothing() -> str:
        return "not acceptable"

    endpoint = OfferingEndpoint(nothing)
    observer = await play(endpoint, seconds=0.5)
    assert observer.errors == [(None, NEGOTIATION_FAILED, "WHEP offer: HTTP 406")]
    assert endpoint.answers == [] and endpoint.deletes == []
