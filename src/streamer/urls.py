"""URL helpers: validation, and masking of the secrets that ingest and playback URLs carry."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

RTMP_SCHEMES = {"rtmp": 1935, "rtmps": 443}
_SECRET_QUERY_KEYS = {"jwt", "token", "key", "api_key", "apikey", "sig", "signature", "auth"}


class InvalidURLError(ValueError):
    pass


@dataclass(frozen=True)
class IngestURL:
    scheme: str
    host: str
    port: int
    app: str  # the RTMP application path, e.g. "live"
    stream_key: str
    raw: str

    @property
    def secure(self) -> bool:
        return self.scheme == "rtmps"

    def masked(self) -> str:
        return mask_ingest(self.raw)

    def with_endpoint(self, host: str, port: int, scheme: str = "rtmp") -> str:
        """The same app and key behind another endpoint (e.g. the local RTMPS relay)."""
        return f"{scheme}://{host}:{port}/{self.app}/{self.stream_key}"

    def tc_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/{self.app}"


def parse_ingest(url: str) -> IngestURL:
    """Parses rtmp[s]://host[:port]/app[/...]/streamKey; raises InvalidURLError."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise InvalidURLError(f"malformed ingest URL: {exc}") from None
    if parts.scheme not in RTMP_SCHEMES:
        raise InvalidURLError("ingest URL must start with rtmp:// or rtmps://")
    if not parts.hostname:
        raise InvalidURLError("ingest URL has no host")
    path = parts.path.strip("/")
    if "/" not in path:
        raise InvalidURLError("ingest URL needs an application and a stream key: /app/key")
    app, key = path.rsplit("/", 1)
    if not key:
        raise InvalidURLError("ingest URL has an empty stream key")
    return IngestURL(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or RTMP_SCHEMES[parts.scheme],
        app=app,
        stream_key=key,
        raw=url.strip(),
    )


def _mask_key(key: str) -> str:
    return (key[:4] + "****") if len(key) > 8 else "****"


def mask_ingest(url: str) -> str:
    """rtmp://host/live/abcd-1234-efgh -> rtmp://host/live/abcd****; safe to log."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "<malformed URL>"
    path = parts.path.rstrip("/")
    head, _, key = path.rpartition("/")
    masked_key = _mask_key(key)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, f"{head}/{masked_key}", "", ""))


def mask_playback(url: str, secrets: tuple[str, ...] = ()) -> str:
    """Drops user info, masks token-like query parameters and any of `secrets` in the path.

    Some origins (nginx-rtmp among them) name the playlist after the stream key.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "<malformed URL>"
    path = parts.path
    for secret in secrets:
        if secret:
            path = path.replace(secret, _mask_key(secret))
    query = [
        (k, "****" if k.lower() in _SECRET_QUERY_KEYS else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, path, urlencode(query), ""))


def validate_playback(url: str) -> str:
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise InvalidURLError(f"malformed playback URL: {exc}") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidURLError("playback URL must be an http:// or https:// URL with a host")
    return url.strip()
