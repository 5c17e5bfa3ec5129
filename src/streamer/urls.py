"""URL helpers: validation, and masking of the secrets that ingest and playback URLs carry."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

RTMP_SCHEMES = {"rtmp": 1935, "rtmps": 443}


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
    """The playback URL as safe to show: no user info or fragment, every query value masked
    but a few harmless ones (`_HLS_msn`, ...), token-like path segments and any of `secrets`
    (stream keys: some origins, nginx-rtmp among them, name the playlist after the key)
    masked.

    CDNs sign URLs in many ways (`X-Amz-Signature`, `Policy`, `hdnts`, `wmsAuthSign`, `md5`,
    tokens in the path): masking by default keeps the ones nobody listed hidden too.
    """
    try:
        parts = urlsplit(url.strip())
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
    except ValueError:
        return "<malformed URL>"
    path = parts.path
    for secret in secrets:
        if secret:
            path = path.replace(secret, _mask_key(secret))
    path = "/".join(_mask_segment(s) for s in path.split("/"))
    query = "&".join(
        _mask_query_item(name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit((parts.scheme, netloc, path, query, ""))


# Query parameters whose values say nothing secret (LL-HLS delivery directives, format).
_HARMLESS_QUERY_NAMES = frozenset({"_hls_msn", "_hls_part", "_hls_skip", "format"})
_MASK = "****"
_MEDIA_EXTENSION = re.compile(r"\.(?:m3u8?|ts|m4s|mp4|m4[av]|aac|vtt|cmf[va]|mpd)$", re.IGNORECASE)
_JWT_SHAPED = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{16,}")
_ALNUM_RUN = re.compile(r"[A-Za-z0-9]{16,}")  # ids and keys: a Livepeer playback id is 16
_TOKEN_RUN = re.compile(r"[A-Za-z0-9_-]{16,}")  # base64url, dashed keys
_LONG_TOKEN_RUN = re.compile(r"[A-Za-z0-9_-]{32,}")


def looks_like_token(text: str) -> bool:
    """Whether a path segment or query name looks like a credential rather than a name."""
    text = unquote(text)
    if "=" in text or _JWT_SHAPED.search(text) or _LONG_TOKEN_RUN.search(text):
        return True
    if _HEX_DIGEST.search(text) or _ALNUM_RUN.search(text):
        return True
    return any(_looks_random(run) for run in _TOKEN_RUN.findall(text))


def _looks_random(run: str) -> bool:
    """Letters and digits (and cases) alternating often: random, not words and numbers."""
    chars = [c for c in run if c.isalnum()]

    def kind(c: str) -> int:
        return 0 if c.isdigit() else 1 if c.islower() else 2

    changes = sum(kind(a) != kind(b) for a, b in itertools.pairwise(chars))
    return changes * 4 >= len(chars)


def _mask_segment(segment: str) -> str:
    if not looks_like_token(segment):
        return segment
    extension = _MEDIA_EXTENSION.search(segment)
    stem = segment[: extension.start()] if extension else segment
    return _mask_key(stem) + (extension.group() if extension else "")


def _mask_query_item(name: str, value: str) -> str:
    if not value and looks_like_token(name):  # a bare token: ?<token>
        return _MASK
    shown_name = quote(name, safe="")
    if not value:
        return shown_name
    harmless = name.lower() in _HARMLESS_QUERY_NAMES and not looks_like_token(value)
    return f"{shown_name}={quote(value, safe='') if harmless else _MASK}"


def validate_playback(url: str) -> str:
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise InvalidURLError(f"malformed playback URL: {exc}") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidURLError("playback URL must be an http:// or https:// URL with a host")
    return url.strip()
