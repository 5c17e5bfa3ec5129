"""The origin's SDP offer reading (WHIP and WHEP endpoints): whole, however it arrives,
and refused with 413 past its cap, with the CORS headers a browser page needs to see why."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from streamer.origin.sdp_http import MAX_OFFER_BYTES, read_offer
from tests.support.aio import serve_local


async def _echo(request: web.Request) -> web.Response:
    return web.Response(text=await read_offer(request))


async def _post(body: bytes | AsyncIterator[bytes]) -> tuple[int, str, str | None]:
    app = web.Application()
    app.router.add_post("/whip/key", _echo)
    async with (
        serve_local(app) as server,
        aiohttp.ClientSession() as http,
        http.post(server.url("/whip/key"), data=body) as response,
    ):
        origin = response.headers.get("Access-Control-Allow-Origin")
        return response.status, await response.text(), origin


async def test_an_offer_sent_in_pieces_is_read_whole() -> None:
    offer = b"v=0\r\n" + b"a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n" * 200

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(offer), 1000):
            yield offer[start : start + 1000]

    status, text, _ = await _post(pieces())
    assert (status, text.encode()) == (200, offer)


async def test_an_offer_past_the_cap_is_refused_with_413_and_cors() -> None:
    status, _, origin = await _post(b"a" * (MAX_OFFER_BYTES + 1))
    assert (status, origin) == (413, "*")
    status, _, _ = await _post(b"a" * MAX_OFFER_BYTES)
    assert status == 200
