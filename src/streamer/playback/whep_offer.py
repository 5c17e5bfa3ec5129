"""WHEP with the server's offer: the viewer answers instead of offering.

Some WHEP servers cannot take a viewer's offer: Janus 1.1's VideoRoom and Streaming
plugins always offer to their subscribers. The WHEP front meetecho wrote for them
(simple-whep-server) answers the viewer's POST with `406 Not Acceptable`, its own SDP
offer as the body (`application/sdp`) and the session's resource in `Location`; the
viewer then sends its SDP answer to that resource by PATCH (`application/sdp`), and a
2xx starts the media. The viewer's first offer is dropped.

WhepClient.offer raises ServerOfferError on a 406 with an SDP (keeping the Location);
`accept` makes the viewer's peer connection for the server's offer, answers it, and
PATCHes the answer. Every failure is a WhepError (webrtc_negotiation_failed, or the
request's own kind), the peer connection closed.
"""

from __future__ import annotations

from collections.abc import Callable

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from streamer.playback.fetch import Fetcher, FetchError
from streamer.playback.whep import NEGOTIATION_FAILED, SDP_CONTENT_TYPE, ServerOfferError, WhepError
from streamer.webrtc.ice import loopback_only

WHEP_ANSWER = "WHEP answer"


async def accept(
    fetcher: Fetcher,
    resource: str | None,
    server: ServerOfferError,
    configuration: RTCConfiguration,
    on_track: Callable[[MediaStreamTrack], None],
    *,
    loopback: bool,
) -> RTCPeerConnection:
    """A peer connection receiving what the server offered, its answer PATCHed to
    `resource`; `loopback`: gather 127.0.0.1 only (see webrtc/ice.py)."""
    if resource is None:
        raise WhepError(NEGOTIATION_FAILED, "WHEP server offer without a Location to answer")
    pc = RTCPeerConnection(configuration)
    pc.on("track", on_track)
    try:
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=server.sdp, type="offer"))
            with loopback_only(loopback):
                await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:  # aiortc raises what its SDP parser meets
            detail = f"WHEP server offer: unusable SDP ({exc.__class__.__name__})"
            raise WhepError(NEGOTIATION_FAILED, detail) from None
        await _patch(fetcher, resource, pc.localDescription.sdp)
    except BaseException:
        await pc.close()
        raise
    return pc


async def _patch(fetcher: Fetcher, resource: str, sdp: str) -> None:
    try:
        answer = await fetcher.exchange(
            "PATCH", resource, WHEP_ANSWER, body=sdp.encode(), content_type=SDP_CONTENT_TYPE
        )
    except FetchError as exc:
        raise WhepError(exc.kind, str(exc), exc.status) from None
    if answer.status >= 300:
        detail = f"WHEP answer to the server's offer: HTTP {answer.status}"
        raise WhepError(NEGOTIATION_FAILED, detail, answer.status)
