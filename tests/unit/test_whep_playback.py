"""WebRTC playback against WHEP endpoints that fail the way platforms fail.

The endpoints are local aiohttp apps scripted to answer badly (a refusal, no SDP, no codec
in common, silence after the answer); a healthy one is aiortc itself. What a user would
check: the right error kind, with a reason, at the right time; the session's resource
DELETEd at the end whatever happened; the playback token sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription

from streamer.events import ConnectTime, Measurement
from streamer.playback import webrtc
from streamer.playback.base import PlaybackOptions
from streamer.playback.fetch import Fetcher, FetchPolicy
from streamer.playback.follower import SegmentFetch
from streamer.playback.webrtc import WebRtcPlayback
from streamer.webrtc.ice import configuration, loopback_only
from tests.support.aio import send_in_pieces, serve_local

Handler = Callable[[web.Request], Any]


@dataclass
class Observer:
    errors: list[tuple[str | None, str, str]] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    units: list[SegmentFetch] = field(default_factory=list)

    def on_rendition(self, *_: object) -> None: ...
    def on_rendition_retired(self, name: str) -> None: ...
    def on_master(self, *_: object) -> None: ...
    def on_recovered(self, *_: object) -> None: ...
    def on_playlist(self, *_: object) -> None: ...
    def on_anomaly(self, *_: object) -> None: ...
    def on_part(self, *_: object) -> None: ...

    def on_segment(self, fetch: SegmentFetch) -> None:
        self.units.append(fetch)

    def on_error(
        self, rendition: str | None, kind: str, detail: str, source: str | None = None
    ) -> None:
        self.errors.append((rendition, kind, detail))

    def on_measurement(self, measurement: Measurement) -> None:
        self.measurements.append(measurement)


@dataclass
class Endpoint:
    """A WHEP endpoint whose POST answer is scripted; records what it was sent."""

    answer: Callable[[str], Any]
    posts: list[Mapping[str, str]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/whep/stream", self._post)
        app.router.add_delete("/whep/stream/{session}", self._delete)
        return app

    async def _post(self, request: web.Request) -> web.StreamResponse:
        self.posts.append(dict(request.headers))
        result = self.answer(await request.text())
        if asyncio.iscoroutine(result):
            result = await result
        assert isinstance(result, web.StreamResponse)
        return result

    async def _delete(self, request: web.Request) -> web.Response:
        self.deletes.append(request.match_info["session"])
        return web.Response(status=200)


def sdp_answer(text: str) -> web.Response:
    return web.Response(
        status=201,
        text=text,
        content_type="application/sdp",
        headers={"Location": "/whep/stream/s1"},
    )


async def aiortc_answer(offer: str, peers: list[RTCPeerConnection]) -> str:
    """What aiortc answers to `offer` (sending nothing): a well-formed answer."""
    pc = RTCPeerConnection(configuration(()))
    peers.append(pc)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    with loopback_only():
        await pc.setLocalDescription(await pc.createAnswer())
    return pc.localDescription.sdp


@pytest.fixture
async def peers() -> AsyncIterator[list[RTCPeerConnection]]:
    created: list[RTCPeerConnection] = []
    yield created
    await asyncio.gather(*(pc.close() for pc in created))


async def play(
    endpoint: Endpoint,
    *,
    seconds: float,
    startup: float = 0.0,
    headers: Mapping[str, str] | None = None,
) -> Observer:
    """Plays the endpoint for `seconds` (the startup deadline `startup` from now)."""
    observer = Observer()
    async with serve_local(endpoint.app()) as server:
        url = server.url("/whep/stream")
        fetcher = Fetcher(FetchPolicy(), (lambda: headers) if headers else None, lambda: url)
        options = PlaybackOptions(startup_deadline=time.monotonic() + startup)
        playback = WebRtcPlayback(url, fetcher, observer, options)
        task = asyncio.create_task(playback.run())
        await asyncio.sleep(seconds)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await fetcher.close()
    return observer


async def test_a_refused_token_is_reported_at_once_and_the_token_was_sent() -> None:
    endpoint = Endpoint(lambda _: web.Response(status=403))
    observer = await play(endpoint, seconds=1.0, startup=30.0, headers={"Livepeer-Jwt": "t0k"})
    assert observer.errors == [
        (
            None,
            "webrtc_negotiation_failed",
            "WHEP offer: HTTP 403 (playback refused: token missing, expired or invalid)",
        )
    ]
    assert endpoint.posts[0]["Livepeer-Jwt"] == "t0k"
    assert endpoint.posts[0]["Content-Type"] == "application/sdp"


async def test_an_endpoint_not_live_yet_is_asked_again_until_the_startup_deadline() -> None:
    endpoint = Endpoint(lambda _: web.Response(status=404))
    observer = await play(endpoint, seconds=0.6, startup=5.0)
    assert observer.errors == []  # before the deadline, not live yet is not a fault
    assert len(endpoint.posts) >= 2
    observer = await play(Endpoint(lambda _: web.Response(status=404)), seconds=0.6)
    assert observer.errors == [(None, "webrtc_negotiation_failed", "WHEP offer: HTTP 404")]


async def test_an_answer_that_is_not_sdp_is_a_negotiation_failure() -> None:
    endpoint = Endpoint(lambda _: sdp_answer("<html>gateway error</html>"))
    observer = await play(endpoint, seconds=0.5)
    assert observer.errors == [
        (None, "webrtc_negotiation_failed", "WHEP offer: the answer is not an SDP")
    ]
    assert endpoint.deletes == ["s1"]  # the resource it named is deleted all the same


async def test_an_answer_without_a_common_codec_is_a_negotiation_failure(
    peers: list[RTCPeerConnection],
) -> None:
    async def answer(offer: str) -> web.Response:
        text = await aiortc_answer(offer, peers)
        for codec in ("H264/90000", "VP8/90000"):
            text = text.replace(codec, "AV1X/90000")
        return sdp_answer(text)

    endpoint = Endpoint(answer)
    observer = await play(endpoint, seconds=1.0)
    assert [(kind, detail) for _, kind, detail in observer.errors] == [
        (
            "webrtc_negotiation_failed",
            "WHEP answer: no codec in common (H.264 or VP8 video, Opus audio)",
        )
    ]
    assert endpoint.deletes == ["s1"]


async def test_a_peer_that_never_answers_ice_checks_is_ice_failed(
    peers: list[RTCPeerConnection], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webrtc, "CONNECT_TIMEOUT_SECONDS", 1.5)

    async def answer(offer: str) -> web.Response:
        text = await aiortc_answer(offer, peers)
        await peers[-1].close()  # its candidates go silent
        return sdp_answer(text)

    endpoint = Endpoint(answer)
    observer = await play(endpoint, seconds=2.5)
    assert [kind for _, kind, _ in observer.errors] == ["ice_failed"]
    assert "no ICE candidate pair worked" in observer.errors[0][2]
    assert not any(isinstance(m, ConnectTime) for m in observer.measurements)
    assert endpoint.deletes == ["s1"]


async def test_a_healthy_peer_connects_and_the_session_is_deleted_at_the_end(
    peers: list[RTCPeerConnection],
) -> None:
    async def answer(offer: str) -> web.Response:
        return sdp_answer(await aiortc_answer(offer, peers))

    endpoint = Endpoint(answer)
    observer = await play(endpoint, seconds=1.5)
    assert observer.errors == []
    connects = [m for m in observer.measurements if isinstance(m, ConnectTime)]
    assert len(connects) == 1 and 0 < connects[0].seconds < 1.0
    assert endpoint.deletes == ["s1"]


@dataclass
class TrickleEndpoint(Endpoint):
    """Sends its answer in pieces, 0.2 s apart: as a real network may deliver it."""

    async def _post(self, request: web.Request) -> web.StreamResponse:
        text = await self.answer(await request.text())
        headers = {"Content-Type": "application/sdp", "Location": "/whep/stream/s1"}
        return await send_in_pieces(request, text.encode(), headers)


async def test_an_answer_that_arrives_in_pieces_is_read_whole_and_connects(
    peers: list[RTCPeerConnection],
) -> None:
    """Reading only what had arrived by then cut such an answer short: a false failure."""

    async def answer(offer: str) -> str:
        return await aiortc_answer(offer, peers)

    endpoint = TrickleEndpoint(answer)
    observer = await play(endpoint, seconds=4.0)
    assert observer.errors == []
    assert len([m for m in observer.measurements if isinstance(m, ConnectTime)]) == 1
