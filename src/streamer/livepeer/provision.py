"""API mode: a fresh Livepeer stream for every session, deleted afterwards whatever happens."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from streamer.livepeer.client import (
    DEFAULT_PROFILES,
    WHIP_INGEST_BASE,
    Ingest,
    LivepeerAPIError,
    LivepeerClient,
    Profile,
    build_stream_name,
    ingest_url,
    playback_url,
    regional_base,
    srt_ingest_url,
    stream_name_prefix,
    whip_ingest_url,
)
from streamer.livepeer.jwt import LIVEPEER_JWT_HEADER, PlaybackTokenSigner
from streamer.targets import ProvisionError, Target

log = logging.getLogger(__name__)


class LivepeerProvisioner:
    """Creates one test stream per `acquire()`, deletes it in `release()`.

    Test streams are named `streamer-<stream>-<id>`, so that leftovers of a crashed run
    are recognisable (`delete_leftovers`).
    """

    def __init__(
        self,
        client: LivepeerClient,
        stream: str,
        *,
        ingest_region: str,
        playback_region: str,
        ingest_base: str | None = None,
        playback_base: str | None = None,
        profiles: Sequence[Profile] = DEFAULT_PROFILES,
        record: bool = False,
        signer: PlaybackTokenSigner | None = None,
        token_ttl_seconds: float = 3600.0,
        ingest_protocol: str = "rtmp",
        whep: bool = False,
    ) -> None:
        self._client = client
        self._stream = stream
        self._regions = (ingest_region, playback_region)
        self._bases = (ingest_base, playback_base)
        self._profiles = tuple(profiles)
        self._record = record
        self._signer = signer
        self._token_ttl = token_ttl_seconds
        self._whep = whep  # WebRTC playback: the WHEP URL from the playback info
        self._created_id: str | None = None
        # How the test stream is published: RTMP to <base>/<key>, or SRT to the base's
        # host with the key as streamid.
        self._ingest_url: Callable[[str, str], str] = (
            srt_ingest_url if ingest_protocol == "srt" else ingest_url
        )
        if ingest_protocol == "whip":
            # WebRTC ingest: <the configured ingest_base or Livepeer's WHIP base>/<streamKey>
            # (the ingests the API lists are RTMP bases).
            self._ingest_url = self._whip_ingest_url

    def describe(self) -> tuple[str, str]:
        created = "(a stream created per session through the API)"
        return created, created

    @property
    def name_prefix(self) -> str:
        return stream_name_prefix(self._stream)

    async def delete_leftovers(self) -> int:
        return await self._client.delete_leftovers(self.name_prefix)

    def _whip_ingest_url(self, stream_key: str, _listed_base: str) -> str:
        configured = self._bases[0]
        base = regional_base(configured, self._regions[0]) if configured else WHIP_INGEST_BASE
        return whip_ingest_url(stream_key, base)

    async def _resolve_bases(self) -> tuple[str, str]:
        ingest_base, playback_base = self._bases
        if ingest_base and playback_base:
            return (
                regional_base(ingest_base, self._regions[0]),
                regional_base(playback_base, self._regions[1]),
            )
        ingests: list[Ingest] = await self._client.ingests()
        if not ingests:
            raise ProvisionError("api_error", "ingests: the API lists no ingest")
        first = ingests[0]
        return (
            regional_base(ingest_base, self._regions[0]) if ingest_base else first.ingest,
            regional_base(playback_base, self._regions[1]) if playback_base else first.playback,
        )

    async def acquire(self) -> Target:
        try:
            created = await self._client.create_stream(
                build_stream_name(self._stream),
                self._profiles,
                self._record,
                "jwt" if self._signer is not None else None,
            )
            self._created_id = created.id
            ingest_base, playback_base = await self._resolve_bases()
            whep_url = await self._client.whep_url(created.playback_id) if self._whep else None
        except LivepeerAPIError as exc:
            raise ProvisionError("api_error", str(exc)) from None
        except ValueError as exc:
            raise ProvisionError("api_error", f"cannot build URLs: {exc}") from None
        headers = None
        signer = self._signer
        if signer is not None:
            playback_id, ttl = created.playback_id, self._token_ttl

            def headers() -> Mapping[str, str]:
                return {LIVEPEER_JWT_HEADER: signer.token(playback_id, ttl)}

        return Target(
            ingest_url=self._ingest_url(created.stream_key, ingest_base),
            playback_url=playback_url(created.playback_id, playback_base),
            headers=headers,
            secrets=(created.stream_key,),
            whep_url=whep_url,
        )

    async def release(self) -> None:
        stream_id, self._created_id = self._created_id, None
        if stream_id is None:
            return
        try:
            await self._client.delete_stream(stream_id)
        except LivepeerAPIError as exc:
            if exc.status != 404:
                raise ProvisionError("api_error", str(exc)) from None
