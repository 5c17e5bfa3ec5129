"""The HTTP side that the embedded origin's WHIP and WHEP endpoints share: CORS headers for
browser pages, the preflight answer, a size-capped SDP offer and the 201 answer naming the
session's resource."""

from __future__ import annotations

from aiohttp import web

from streamer.http_body import BodyTooLargeError, read_capped

MAX_OFFER_BYTES = 64 << 10  # an SDP offer is a few KiB
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Location"}


async def preflight(_: web.Request) -> web.Response:
    return web.Response(
        status=204,
        headers={
            **CORS,
            "Access-Control-Allow-Methods": "POST, DELETE, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type, Authorization",
        },
    )


async def read_offer(request: web.Request) -> str:
    """The request's SDP offer; 413 past MAX_OFFER_BYTES."""
    try:
        offer = await read_capped(request.content, MAX_OFFER_BYTES)
    except BodyTooLargeError:
        # The size is not known: reading stopped one chunk past the limit.
        raise web.HTTPRequestEntityTooLarge(
            MAX_OFFER_BYTES, request.content_length or MAX_OFFER_BYTES + 1, headers=CORS
        ) from None
    return offer.decode("utf-8", errors="replace")


def answer_response(sdp: str, location: str) -> web.Response:
    return web.Response(
        status=201,
        text=sdp,
        content_type="application/sdp",
        headers={**CORS, "Location": location},
    )
