"""Configuration: the original tool's environment (`.env`) and the YAML streams file.

Environment (and a `.env` in the working directory), as the original tool's users know it:
INJEST_URL (or INGEST_URL), PLAYBACK_URL, REGION, DURATION; plus GRACE_PERIOD,
METRICS_ADDR, STREAM_NAME, INGEST_REGION, PLAYBACK_REGION, EXPECTED_RENDITIONS, FETCH_ALLOW,
FETCH_DENY.

A YAML streams file (`--config`, or STREAMER_CONFIG) in the Helm values shape lists many
streams; `${VAR}` in its strings is taken from the environment, so that secrets can stay
in the environment (a Kubernetes Secret) while the rest lives in a ConfigMap.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from dotenv import dotenv_values
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from streamer.durations import parse_duration
from streamer.playback.egress import parse_entry as parse_fetch_rule
from streamer.publish.registry import ingest_protocol
from streamer.urls import InvalidURLError, validate_playback

DEFAULT_REGION = "unknown"
DEFAULT_METRICS_ADDR = "0.0.0.0:9090"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """Bad configuration; the message names the stream and the field."""


class ClipSettings(BaseModel):
    """The test clip; checked here so that a clip the encoder cannot make is a
    configuration error naming the field, not a stream that dies at start-up."""

    model_config = ConfigDict(extra="forbid")
    width: int = Field(640, ge=64, le=3840)
    height: int = Field(360, ge=64, le=2160)
    fps: int = Field(30, ge=1, le=60)
    gop: float = Field(2.0, gt=0, le=10, description="seconds between keyframes")
    bitrate: int = Field(1_000_000, ge=50_000, le=20_000_000)

    @field_validator("width", "height")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"must be even (H.264 with 4:2:0 chroma), got {value}")
        return value

    @field_validator("gop")
    @classmethod
    def _whole_gops(cls, value: float, info: ValidationInfo) -> float:
        from streamer.testsignal.clip import ClipSpec  # PyAV: imported only to validate

        fps = info.data.get("fps")
        if fps is None:
            return value  # fps is invalid itself, and reported so
        seconds = ClipSpec.seconds
        frames = round(value * fps)
        if frames < 1 or round(seconds * fps) % frames:
            raise ValueError(
                f"{value:g}s at {fps} fps does not divide the {seconds:g}s test clip into "
                "whole GOPs; use e.g. 1, 2, 3, 4, 5, 6 or 10"
            )
        return value

    @model_validator(mode="after")
    def _usable(self) -> ClipSettings:
        from streamer.wiring import clip_spec

        clip_spec(self)  # ValueError: anything else the clip itself refuses
        return self


class LivepeerSettings(BaseModel):
    """Livepeer Studio API mode: create a fresh stream per session, delete it after."""

    model_config = ConfigDict(extra="forbid")
    api_url: str = "https://livepeer.studio/api"
    # Usually from the environment (LIVEPEER_API_KEY or LIVEPEER_API_KEY_FILE); a stream
    # entry may carry its own, e.g. "${EU_API_KEY}".
    api_key: SecretStr | None = None
    ingest_base: str | None = None  # rtmp://host/live, may contain {region}
    # srt: publish to srt://<ingest host>:2935?streamid=<key> (or an srt:// ingest_base);
    # whip: to <ingest_base or https://playback.livepeer.studio/webrtc>/<key> over WebRTC
    ingest_protocol: Literal["rtmp", "srt", "whip"] = "rtmp"
    playback_base: str | None = None  # https://host/hls, may contain {region}
    profiles: list[dict[str, Any]] | None = None
    record: bool = False
    playback_policy: Literal["public", "jwt"] = "public"

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        # The URL is not echoed: it may carry credentials.
        try:
            parts = urlsplit(value.strip())
            parts.port  # noqa: B018 (raises ValueError on a bad port)
        except ValueError:
            raise ValueError("malformed URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value.strip()


class StreamConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=100)
    duration: float = 120.0
    grace_period: float = 60.0
    ingest_region: str = Field(
        DEFAULT_REGION, validation_alias=AliasChoices("ingest_region", "injest_region")
    )
    playback_region: str = DEFAULT_REGION
    ingest_url: str | None = Field(None, validation_alias=AliasChoices("ingest_url", "injest_url"))
    playback_url: str | None = None
    startup_timeout: float = 30.0
    connect_timeout: float = 10.0
    drain_timeout: float = 10.0
    expected_renditions: int | None = Field(None, ge=1, le=64)
    # Renditions followed at most (a master may list thousands); the rest are counted.
    max_renditions: int = Field(16, ge=1, le=64)
    tls_ca_file: str | None = None
    checks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    clip: ClipSettings = Field(default_factory=ClipSettings)
    livepeer: LivepeerSettings | None = None
    # Fetch policy (playback/egress.py): CIDRs and host names allowed despite their address
    # class (private, loopback, link-local, ...), and never fetched.
    fetch_allow: list[str] = Field(default_factory=list, max_length=256)
    fetch_deny: list[str] = Field(default_factory=list, max_length=256)
    # Playback protocols measured at once, each under its own playback_protocol label; the
    # first is the session's own (its startup latency). `whep_url`: the WebRTC endpoint.
    playback: list[str] = Field(default_factory=lambda: ["hls"], min_length=1, max_length=4)
    whep_url: str | None = None
    ice_servers: list[str] = Field(default_factory=list, max_length=16)
    freeze_ms: float = Field(500.0, ge=50.0, le=60_000.0)

    @field_validator(
        "duration",
        "grace_period",
        "startup_timeout",
        "connect_timeout",
        "drain_timeout",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("duration")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value < 1:
            raise ValueError("must be at least 1s")
        return value

    @field_validator("checks")
    @classmethod
    def _checks(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from streamer.checks import validate_settings  # checks import config-free modules

        validate_settings(value)
        return value

    @field_validator("fetch_allow", "fetch_deny", mode="before")
    @classmethod
    def _fetch_rules(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: comma- or space-separated
            value = value.replace(",", " ").split()
        if isinstance(value, list):
            for index, entry in enumerate(value):
                if not isinstance(entry, str):
                    raise ValueError(f"entry {index + 1} is not a string")
                try:
                    parse_fetch_rule(entry)
                except ValueError as exc:
                    raise ValueError(f"entry {index + 1}: {exc}") from None
        return value

    @field_validator("playback", "ice_servers", mode="before")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: comma- or space-separated
            value = value.replace(",", " ").split()
        return value

    @field_validator("playback")
    @classmethod
    def _protocols(cls, value: list[str]) -> list[str]:
        from streamer.playback.registry import PLAYBACK_PROTOCOLS

        for index, name in enumerate(value):
            if name not in PLAYBACK_PROTOCOLS:
                known = ", ".join(PLAYBACK_PROTOCOLS)
                raise ValueError(f"entry {index + 1}: unknown protocol {name!r} (known: {known})")
        if len(set(value)) != len(value):
            raise ValueError("a protocol is listed twice")
        return value

    @field_validator("ice_servers")
    @classmethod
    def _ice_servers(cls, value: list[str]) -> list[str]:
        from streamer.webrtc.ice import validate_ice_server

        for index, url in enumerate(value):
            try:
                validate_ice_server(url)
            except ValueError as exc:
                raise ValueError(f"entry {index + 1}: {exc}") from None
        return value

    @field_validator("ingest_url")
    @classmethod
    def _ingest(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ingest_protocol(value).validate(value)
            except InvalidURLError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("playback_url", "whep_url")
    @classmethod
    def _playback(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                validate_playback(value)
            except InvalidURLError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _renditions(self) -> StreamConfig:
        expected = self.expected_renditions
        if expected is not None and expected > self.max_renditions:
            raise ValueError(
                f"expected_renditions: {expected} is more than max_renditions "
                f"({self.max_renditions}), the most renditions followed"
            )
        return self

    @model_validator(mode="after")
    def _urls_or_api(self) -> StreamConfig:
        if self.livepeer is None:
            if not self.ingest_url:
                raise ValueError("injest_url: required (or configure livepeer API mode)")
            if not self.playback_url and not ("hls" not in self.playback and self.whep_url):
                raise ValueError("playback_url: required (or configure livepeer API mode)")
        return self


class MonitorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    streams: list[StreamConfig] = Field(min_length=1)
    metrics_addr: str = DEFAULT_METRICS_ADDR

    @model_validator(mode="after")
    def _unique_names(self) -> MonitorConfig:
        names = [s.name for s in self.streams]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"stream names must be unique; repeated: {', '.join(dupes)}")
        return self


def _describe(error: ValidationError, streams: list[Any] | None = None) -> str:
    lines = []
    for item in error.errors():
        loc = list(item["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "streams" and isinstance(loc[1], int):
            index = loc[1]
            name = None
            if streams and index < len(streams) and isinstance(streams[index], Mapping):
                name = streams[index].get("name")
            where = f"streams[{index}]" + (f" ({name!r})" if name else "") + ": "
            loc = loc[2:]
        lines.append(where + _problem(loc, item["msg"]))
    return "; ".join(lines)


def _problem(loc: Sequence[int | str], msg: str) -> str:
    field = ".".join(str(p) for p in loc if not str(p).startswith("function-"))
    message = msg.removeprefix("Value error, ")
    return f"{field + ': ' if field else ''}{message}"


def _expand(value: Any, env: Mapping[str, str], path: str) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(f"{path}: environment variable {name} is not set")
            return env[name]

        return _ENV_REF.sub(substitute, value)
    if isinstance(value, list):
        return [_expand(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _expand(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    return value


def environment(cwd: Path | None = None) -> dict[str, str]:
    """The process environment over the `.env` file of the working directory."""
    env_file = (cwd or Path.cwd()) / ".env"
    values: dict[str, str] = {}
    if env_file.is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ)
    return values


def _read_file(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config: {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or "streams" not in raw:
        raise ConfigError(f"--config: {path} needs a top-level 'streams' list")
    return raw


def _default_regions(entry: Any, region: str | None) -> None:
    if region and isinstance(entry, dict):
        if "ingest_region" not in entry and "injest_region" not in entry:
            entry["ingest_region"] = region
        entry.setdefault("playback_region", region)


def load_file(path: Path, env: Mapping[str, str]) -> MonitorConfig:
    raw = _expand(_read_file(path), env, "")
    raw.setdefault("metrics_addr", env.get("METRICS_ADDR") or DEFAULT_METRICS_ADDR)
    streams = raw.get("streams")
    if isinstance(streams, list):
        for entry in streams:
            _default_regions(entry, env.get("REGION"))
    try:
        return MonitorConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, streams if isinstance(streams, list) else None)) from None


def stream_entries(path: Path) -> list[Any]:
    """The entries of a streams file's `streams` list, not yet expanded nor validated."""
    streams = _read_file(path)["streams"]
    if not isinstance(streams, list) or not streams:
        raise ConfigError(f"--config: {path}: 'streams' must be a non-empty list")
    return streams


def load_stream(entries: list[Any], index: int, env: Mapping[str, str]) -> StreamConfig:
    """One of `stream_entries`, expanded and validated as `load_file` does every stream, but
    without needing the variables of the others (`streamer probe` tests one stream)."""
    where = f"streams[{index}]"
    entry = _expand(entries[index], env, where)
    _default_regions(entry, env.get("REGION"))
    try:
        return StreamConfig.model_validate(entry)
    except ValidationError as exc:
        name = entry.get("name") if isinstance(entry, dict) else None
        where += f" ({name!r})" if name else ""
        raise ConfigError(
            "; ".join(f"{where}: {_problem(item['loc'], item['msg'])}" for item in exc.errors())
        ) from None


def livepeer_from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    """The `livepeer:` settings (unvalidated) that LIVEPEER_* variables describe; the API key
    stays out: `livepeer.mode.api_mode` reads it from the environment when it is needed."""
    livepeer: dict[str, Any] = {
        "api_url": env.get("LIVEPEER_API_URL") or LivepeerSettings().api_url
    }
    for key, variable in (
        ("ingest_base", "LIVEPEER_INGEST_BASE"),
        ("ingest_protocol", "LIVEPEER_INGEST_PROTOCOL"),
        ("playback_base", "LIVEPEER_PLAYBACK_BASE"),
        ("playback_policy", "LIVEPEER_PLAYBACK_POLICY"),
        ("record", "LIVEPEER_RECORD"),
    ):
        if env.get(variable):
            livepeer[key] = env[variable]
    return livepeer


def from_environment(env: Mapping[str, str]) -> MonitorConfig | None:
    """The single stream the environment describes; None when no ingest is configured."""
    ingest = env.get("INJEST_URL") or env.get("INGEST_URL")
    api_key = env.get("LIVEPEER_API_KEY") or env.get("LIVEPEER_API_KEY_FILE")
    if not ingest and not api_key:
        return None
    region = env.get("REGION") or DEFAULT_REGION
    entry: dict[str, Any] = {
        "name": env.get("STREAM_NAME") or "default",
        "ingest_region": env.get("INGEST_REGION") or region,
        "playback_region": env.get("PLAYBACK_REGION") or region,
    }
    for key, name in (
        ("ingest_url", ingest),
        ("playback_url", env.get("PLAYBACK_URL")),
        ("duration", env.get("DURATION")),
        ("grace_period", env.get("GRACE_PERIOD")),
        ("expected_renditions", env.get("EXPECTED_RENDITIONS")),
        ("fetch_allow", env.get("FETCH_ALLOW")),
        ("fetch_deny", env.get("FETCH_DENY")),
        ("playback", env.get("PLAYBACK_PROTOCOLS")),
        ("whep_url", env.get("WHEP_URL")),
        ("ice_servers", env.get("ICE_SERVERS")),
        ("freeze_ms", env.get("FREEZE_MS")),
    ):
        if name:
            entry[key] = name
    if not ingest:
        entry["livepeer"] = livepeer_from_environment(env)
    raw = {"streams": [entry], "metrics_addr": env.get("METRICS_ADDR") or DEFAULT_METRICS_ADDR}
    try:
        return MonitorConfig.model_validate(raw)
    except ValidationError as exc:
        message = _describe(exc, [entry])
        # Name the variables the user actually set, not our internal field names.
        for field, variable in (
            ("injest_url", "INJEST_URL"),
            ("ingest_url", "INJEST_URL"),
            ("playback_url", "PLAYBACK_URL"),
            ("grace_period", "GRACE_PERIOD"),
            ("duration", "DURATION"),
            ("expected_renditions", "EXPECTED_RENDITIONS"),
            ("fetch_allow", "FETCH_ALLOW"),
            ("fetch_deny", "FETCH_DENY"),
            ("playback", "PLAYBACK_PROTOCOLS"),
            ("whep_url", "WHEP_URL"),
            ("ice_servers", "ICE_SERVERS"),
            ("freeze_ms", "FREEZE_MS"),
            ("livepeer.api_url", "LIVEPEER_API_URL"),
            ("livepeer.ingest_protocol", "LIVEPEER_INGEST_PROTOCOL"),
        ):
            message = message.replace(f": {field}:", f": {variable}:")
        raise ConfigError(message.replace("streams[0] ('", "environment ('")) from None


def parse_listen_address(value: str, field: str = "METRICS_ADDR") -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{field}: expected host:port, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104
