"""SRT ingest URLs: `srt://host:port?streamid=KEY&passphrase=...&latency=MS`, parsed and
masked.

`latency` is in milliseconds, as users and encoders write it (FFmpeg's own `latency=` is
in microseconds: an FFmpeg URL copied here would ask for 1000 times the latency). The
stream id and the passphrase are secrets: they never leave this module unmasked but through
`secrets()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from streamer.urls import InvalidURLError

SRT_SCHEMES: tuple[str, ...] = ("srt",)
DEFAULT_LATENCY_MS = 120  # libsrt's live-mode default
_PASSPHRASE_LENGTHS = range(10, 80)  # SRT's rule: 10 to 79 characters
_KEY_LENGTHS = (16, 24, 32)
_MAX_LATENCY_MS = 60_000
_KNOWN = ("streamid", "passphrase", "pbkeylen", "latency", "mode")


@dataclass(frozen=True)
class SrtURL:
    host: str
    port: int
    streamid: str | None  # None: no stream id sent (a listener that needs one rejects)
    passphrase: str | None
    pbkeylen: int | None
    latency_ms: int


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise InvalidURLError(f"SRT URL: {name} given more than once")
    return values[0]


def _integer(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidURLError(f"SRT URL: {name} must be a whole number") from None


def _query(raw: str) -> dict[str, list[str]]:
    query: dict[str, list[str]] = {}
    for name, value in parse_qsl(raw, keep_blank_values=True):
        query.setdefault(name.lower(), []).append(value)
    unknown = sorted(set(query) - set(_KNOWN))
    if unknown:
        raise InvalidURLError(
            f"SRT URL: unsupported parameter {unknown[0]!r} (supported: {', '.join(_KNOWN)})"
        )
    return query


def parse_srt(url: str) -> SrtURL:
    """Parses and validates an SRT caller URL; raises InvalidURLError (safe to show)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise InvalidURLError(f"malformed SRT URL: {exc}") from None
    if parts.scheme.lower() not in SRT_SCHEMES:
        raise InvalidURLError("SRT URL must start with srt://")
    if not parts.hostname:
        raise InvalidURLError("SRT URL has no host")
    if not port:
        raise InvalidURLError("SRT URL needs a port: srt://host:port?streamid=...")
    if parts.path.strip("/"):
        raise InvalidURLError("SRT URL takes no path: the stream key goes in ?streamid=")
    query = _query(parts.query)
    mode = _one(query, "mode")
    if mode is not None and mode != "caller":
        raise InvalidURLError("SRT URL: only mode=caller can publish")
    streamid = _one(query, "streamid")
    if streamid == "":
        raise InvalidURLError("SRT URL: streamid is empty")
    if streamid is not None and len(streamid) > 512:
        raise InvalidURLError("SRT URL: streamid is longer than SRT's 512 characters")
    passphrase = _one(query, "passphrase")
    if passphrase is not None and len(passphrase) not in _PASSPHRASE_LENGTHS:
        raise InvalidURLError("SRT URL: passphrase must be 10 to 79 characters long")
    pbkeylen_text = _one(query, "pbkeylen")
    pbkeylen = None if pbkeylen_text is None else _integer(pbkeylen_text, "pbkeylen")
    if pbkeylen is not None and pbkeylen not in _KEY_LENGTHS:
        raise InvalidURLError("SRT URL: pbkeylen must be 16, 24 or 32")
    latency_text = _one(query, "latency")
    latency = DEFAULT_LATENCY_MS if latency_text is None else _integer(latency_text, "latency")
    if not 0 < latency <= _MAX_LATENCY_MS:
        raise InvalidURLError(
            f"SRT URL: latency is in milliseconds, 1 to {_MAX_LATENCY_MS} (FFmpeg's "
            "latency= is in microseconds: divide by 1000)"
        )
    return SrtURL(
        host=parts.hostname,
        port=port,
        streamid=streamid,
        passphrase=passphrase,
        pbkeylen=pbkeylen,
        latency_ms=latency,
    )


def srt_secrets(url: str) -> tuple[str, ...]:
    parsed = parse_srt(url)
    return tuple(s for s in (parsed.streamid, parsed.passphrase) if s)


def mask_srt(url: str) -> str:
    """srt://host:2935?streamid=abcd-1234-efgh&passphrase=x -> ...streamid=abcd****&
    passphrase=****; safe to log (also for a URL that does not parse)."""
    try:
        parts = urlsplit(url.strip())
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
    except ValueError:
        return "<malformed URL>"
    shown = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        key = name.lower()
        if key == "streamid":
            value = (value[:4] + "****") if len(value) > 8 else "****"  # noqa: PLW2901
        elif key not in ("latency", "pbkeylen", "mode"):
            value = "****"  # noqa: PLW2901 - the passphrase, and anything unknown
        shown.append(f"{key}={value}")
    query = "&".join(shown)
    return f"{parts.scheme}://{netloc}" + (f"?{query}" if query else "")
