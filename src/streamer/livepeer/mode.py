"""Wiring API mode from configuration: credentials (checked at start-up) and provisioners."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp

from streamer.config import ConfigError, StreamConfig
from streamer.credentials import SecretError, load_secret
from streamer.livepeer.client import DEFAULT_PROFILES, LatencyCallback, LivepeerClient, Profile
from streamer.livepeer.jwt import PlaybackTokenSigner, SigningKeyError, signer_from_env
from streamer.livepeer.provision import LivepeerProvisioner


@dataclass(frozen=True)
class ApiMode:
    api_url: str
    api_key: str = field(repr=False)
    profiles: tuple[Profile, ...]
    signer: PlaybackTokenSigner | None


def api_mode(stream: StreamConfig, env: Mapping[str, str]) -> ApiMode | None:
    """The stream's API mode, or None; raises ConfigError naming the stream and the field."""
    settings = stream.livepeer
    if settings is None:
        return None
    where = f"stream {stream.name!r}"
    try:
        key = (
            settings.api_key.get_secret_value()
            if settings.api_key is not None
            else load_secret(env, "LIVEPEER_API_KEY")
        )
    except SecretError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if not key:
        raise ConfigError(
            f"{where}: livepeer.api_key: set LIVEPEER_API_KEY or LIVEPEER_API_KEY_FILE for API mode"
        )
    try:
        profiles = (
            tuple(Profile.from_dict(p) for p in settings.profiles)
            if settings.profiles is not None
            else DEFAULT_PROFILES
        )
    except ValueError as exc:
        raise ConfigError(f"{where}: livepeer.profiles: {exc}") from None
    signer = None
    if settings.playback_policy == "jwt":
        try:
            signer = signer_from_env(env)
        except (SigningKeyError, SecretError) as exc:
            raise ConfigError(f"{where}: LIVEPEER_SIGNING_KEY: {exc}") from None
        if signer is None:
            raise ConfigError(
                f"{where}: livepeer.playback_policy jwt needs "
                "LIVEPEER_SIGNING_KEY or LIVEPEER_SIGNING_KEY_FILE"
            )
    return ApiMode(settings.api_url, key, profiles, signer)


def provisioner(
    stream: StreamConfig,
    mode: ApiMode,
    http: aiohttp.ClientSession,
    on_latency: LatencyCallback | None = None,
) -> LivepeerProvisioner:
    assert stream.livepeer is not None
    client = LivepeerClient(mode.api_url, mode.api_key, http, on_latency=on_latency)
    return LivepeerProvisioner(
        client,
        stream.name,
        ingest_region=stream.ingest_region,
        playback_region=stream.playback_region,
        ingest_base=stream.livepeer.ingest_base,
        playback_base=stream.livepeer.playback_base,
        profiles=mode.profiles,
        record=stream.livepeer.record,
        signer=mode.signer,
        ingest_protocol=stream.livepeer.ingest_protocol,
        whep="webrtc" in stream.playback,
    )
