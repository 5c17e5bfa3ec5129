"""The WHEP exchange (RFC 9725 for WHIP; WHEP is its playback twin): offer, answer, DELETE.

POST the SDP offer as `application/sdp`; a 201 answers with the SDP answer and, in
`Location`, the session's resource, which is DELETEd when the viewer leaves. Requests go
through the session's Fetcher: the fetch policy, the time limits and the playback headers
(`Authorization`, `Livepeer-Jwt`) apply as they do to HLS, and redirects keep the method.

aiortc gathers every candidate before the offer is made, so the offer is complete and
there is nothing to trickle: WHEP makes trickle optional for the client (a server must
accept a complete offer), and no PATCH is sent.
"""

from __future__ import annotations

import logging

from yarl import URL

from streamer.playback.fetch import Answer, Fetcher, FetchError

log = logging.getLogger(__name__)

NEGOTIATION_FAILED = "webrtc_negotiation_failed"
SDP_CONTENT_TYPE = "application/sdp"
MAX_ANSWER_BYTES = 64 << 10  # an SDP answer is a few KiB
WHEP_OFFER = "WHEP offer"
WHEP_RESOURCE = "WHEP resource"
SERVER_OFFER_STATUS = 406  # with the server's own SDP offer: see playback/whep_offer.py


class WhepError(Exception):
    """The offer was not answered with a usable SDP; `kind` is the error kind to report."""

    def __init__(self, kind: str, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status


class ServerOfferError(Exception):
    """The endpoint answered with its own SDP offer, to be answered by PATCH."""

    def __init__(self, sdp: str) -> None:
        super().__init__("the WHEP server sent its own offer")
        self.sdp = sdp


class WhepClient:
    """One WHEP session: `offer()` once, `close()` at the end whatever happened."""

    def __init__(self, fetcher: Fetcher, url: str) -> None:
        self._fetcher = fetcher
        self._url = url
        self.resource: str | None = None  # the session's URL, from Location

    async def offer(self, sdp: str) -> str:
        """The SDP answer to `sdp`; raises WhepError."""
        try:
            answer = await self._fetcher.exchange(
                "POST",
                self._url,
                WHEP_OFFER,
                body=sdp.encode(),
                content_type=SDP_CONTENT_TYPE,
                max_bytes=MAX_ANSWER_BYTES,
            )
        except FetchError as exc:
            raise WhepError(exc.kind, str(exc), exc.status) from None
        text = answer.body.decode("utf-8", errors="replace")
        if answer.status == SERVER_OFFER_STATUS and text.lstrip().startswith("v=0"):
            self._keep_resource(answer)
            raise ServerOfferError(text)
        if answer.status >= 300:
            detail = f"WHEP offer: HTTP {answer.status}"
            if answer.status in (401, 403):
                detail += " (playback refused: token missing, expired or invalid)"
            raise WhepError(NEGOTIATION_FAILED, detail, answer.status)
        self._keep_resource(answer)
        if not text.lstrip().startswith("v=0"):
            raise WhepError(NEGOTIATION_FAILED, "WHEP offer: the answer is not an SDP")
        return text

    def _keep_resource(self, answer: Answer) -> None:
        location = answer.headers.get("Location")
        if location:
            try:
                self.resource = str(answer.url.join(URL(location)))
            except ValueError:
                log.info("WHEP answer with a malformed Location: the session is not deleted")

    async def close(self) -> None:
        """DELETEs the session's resource, if the server named one; failures are logged."""
        resource, self.resource = self.resource, None
        if resource is None:
            return
        try:
            answer = await self._fetcher.exchange("DELETE", resource, WHEP_RESOURCE)
        except FetchError as exc:
            log.info("deleting the WHEP session failed: %s", exc)
            return
        if answer.status >= 300 and answer.status != 404:
            log.info("deleting the WHEP session: HTTP %d", answer.status)
