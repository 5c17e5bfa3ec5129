"""Ingest protocols by URL scheme: adding one is a module and a line here."""

from __future__ import annotations

from urllib.parse import urlsplit

from streamer.publish.ingest import IngestProtocol
from streamer.publish.rtmp_ingest import RtmpIngest
from streamer.publish.srt_ingest import SrtIngest
from streamer.publish.whip_ingest import WhipIngest
from streamer.urls import InvalidURLError

INGEST_PROTOCOLS: tuple[IngestProtocol, ...] = (RtmpIngest(), SrtIngest(), WhipIngest())

_BY_SCHEME = {scheme: protocol for protocol in INGEST_PROTOCOLS for scheme in protocol.schemes}


def ingest_protocol(url: str) -> IngestProtocol:
    """The protocol that publishes to `url`; InvalidURLError for an unknown scheme."""
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError as exc:
        raise InvalidURLError(f"malformed ingest URL: {exc}") from None
    protocol = _BY_SCHEME.get(scheme)
    if protocol is None:
        *others, last = (f"{s}://" for s in _BY_SCHEME)
        known = f"{', '.join(others)} or {last}" if others else last
        raise InvalidURLError(f"ingest URL must start with {known}")
    return protocol
