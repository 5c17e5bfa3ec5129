"""Where a session publishes and plays: a target, always handed out by a provisioner.

A session never builds its own target. A fixed provisioner hands out the configured URLs
(the `.env`/YAML case); the Livepeer one creates a stream per session through the API and
deletes it afterwards. Either way the session does the same thing, the way an HTTP client
always sends through a transport.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from streamer.publish.registry import ingest_protocol
from streamer.urls import InvalidURLError, mask_ingest, mask_playback


class ProvisionError(Exception):
    """Getting or giving back a session's test stream failed (e.g. the platform's API)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where one session publishes and plays."""

    ingest_url: str
    playback_url: str
    headers: Callable[[], Mapping[str, str]] | None = None  # sent with playback requests
    secrets: tuple[str, ...] = ()  # values never to be shown (stream keys)
    whep_url: str | None = None  # WebRTC playback (WHEP), when it has its own endpoint

    def playback_url_for(self, protocol: str) -> str:
        """The URL a playback protocol plays: the WHEP endpoint for WebRTC, when given."""
        if protocol == "webrtc" and self.whep_url:
            return self.whep_url
        return self.playback_url

    def masked(self) -> tuple[str, str]:
        """(ingest, playback) as they may be shown: keys and tokens masked."""
        try:
            protocol = ingest_protocol(self.ingest_url)
            keys = protocol.secrets(self.ingest_url)
            ingest = protocol.mask(self.ingest_url)
        except InvalidURLError:
            keys, ingest = (), mask_ingest(self.ingest_url)
        return ingest, mask_playback(self.playback_url, keys + self.secrets)


class Provisioner(Protocol):
    def describe(self) -> tuple[str, str]:
        """(ingest, playback) as a session's start shows them, before `acquire`."""
        ...

    async def acquire(self) -> Target: ...

    async def release(self) -> None: ...


class FixedTarget:
    """The same configured target for every session; nothing to create or give back."""

    def __init__(self, target: Target) -> None:
        self._target = target

    def describe(self) -> tuple[str, str]:
        return self._target.masked()

    async def acquire(self) -> Target:
        return self._target

    async def release(self) -> None:
        return None
