"""Livepeer Studio API client: test streams (create, list, delete), ingest endpoints.

Every failure is one `LivepeerAPIError` whose text is the operation, the HTTP status and the
API's own error message; the API key never appears in it (nor in logs). Each call's latency,
failed calls included, goes to an optional `on_latency(operation, seconds)` callback.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import aiohttp

from streamer.http_body import BodyTooLargeError, read_capped
from streamer.untrusted import quote_untrusted

_log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://livepeer.studio/api"
TEST_STREAM_PREFIX = "streamer-"
# Regional hosts (LIVEPEER.md); fill with `regional_base(template, region)`.
LIVEPEER_INGEST_TEMPLATE = "rtmp://{region}-rtmp.livepeer.com/live"
LIVEPEER_PLAYBACK_TEMPLATE = "https://{region}-cdn.livepeer.com/hls"

Operation = Literal[
    "create_stream", "get_stream", "delete_stream", "list_streams", "ingests", "playback_info"
]
PlaybackPolicy = Literal["public", "jwt", "webhook"]
LatencyCallback = Callable[[str, float], None]
_T = TypeVar("_T")

_MAX_MESSAGE = 300
# The API's answers nest a few levels; a deeper one is broken or hostile, and walking it
# (parsing, formatting an error) could exhaust the interpreter's recursion limit.
_MAX_JSON_DEPTH = 32
_TOO_DEEP = f"malformed JSON in the answer: nested deeper than {_MAX_JSON_DEPTH} levels"
_MAX_PAGES = 100  # bounds a list that keeps answering "next"
# A page of 100 streams is well under 1 MiB: far more is a broken or hostile API.
_MAX_ANSWER_BYTES = 8 << 20
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_SLUG_SPLIT = re.compile(r"[^a-z0-9]+")


class LivepeerAPIError(Exception):
    """A failed API call. `status` is None when no HTTP answer came (timeout, connection)."""

    def __init__(self, operation: str, status: int | None, message: str) -> None:
        self.operation = operation
        self.status = status
        self.message = message
        text = f"{status} {message}" if status is not None else message
        super().__init__(f"{operation}: {text}")


@dataclass(frozen=True)
class Profile:
    """One rendition of the transcoding ladder, as the API's `profiles[]` entries."""

    name: str
    width: int
    height: int
    bitrate: int  # bits per second
    fps: int
    fps_den: int | None = None
    gop: str | None = None  # seconds between keyframes, a string in the API ("2.0")
    profile: str | None = None  # H264Baseline, H264Main, ...

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """From configuration (API or snake_case keys); fps defaults to 30, 0 = the source's.

        Raises ValueError naming the field."""
        label = data.get("name")
        if not isinstance(label, str) or not label:
            raise ValueError("profile: name is required")
        values: dict[str, int] = {}
        for key, default, least in (
            ("width", None, 1),
            ("height", None, 1),
            ("bitrate", None, 1),
            ("fps", 30, 0),
        ):
            value = data.get(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"profile {label}: {key} must be a whole number >= {least}")
            values[key] = value
        fps_den = data.get("fpsDen", data.get("fps_den"))
        if fps_den is not None and (not isinstance(fps_den, int) or fps_den < 1):
            raise ValueError(f"profile {label}: fpsDen must be a positive whole number")
        gop = data.get("gop")
        profile = data.get("profile")
        return cls(
            label,
            values["width"],
            values["height"],
            values["bitrate"],
            values["fps"],
            fps_den,
            None if gop is None else str(gop),
            None if profile is None else str(profile),
        )

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "width": self.width,
            "height": self.height,
            "bitrate": self.bitrate,
            "fps": self.fps,
        }
        if self.fps_den is not None:
            body["fpsDen"] = self.fps_den
        if self.gop is not None:
            body["gop"] = self.gop
        if self.profile is not None:
            body["profile"] = self.profile
        return body


# The ladder one of Livepeer's own testers used (LIVEPEER.md).
DEFAULT_PROFILES: tuple[Profile, ...] = (
    Profile("720p", 1280, 720, 2_000_000, 30),
    Profile("480p", 854, 480, 1_000_000, 30),
    Profile("360p", 640, 360, 500_000, 30),
)


@dataclass(frozen=True)
class CreatedStream:
    id: str
    name: str
    stream_key: str = field(repr=False)  # a secret: whoever has it can publish
    playback_id: str


@dataclass(frozen=True)
class StreamSummary:
    id: str
    name: str
    created_at: datetime | None
    is_active: bool = False


@dataclass(frozen=True)
class Ingest:
    base: str
    ingest: str  # RTMP base: <ingest>/<streamKey>
    playback: str  # HLS base: <playback>/<playbackId>/index.m3u8


# The WebRTC source in the playback info: what Livepeer's player plays over WHEP first.
WEBRTC_SOURCE_TYPE = "html5/video/h264"


def webrtc_source(body: Any) -> str | None:
    """The WHEP URL of a `GET /playback/{playbackId}` answer (`meta.source[]` of type
    html5/video/h264); None when it lists none."""
    meta = body.get("meta") if isinstance(body, dict) else None
    sources = meta.get("source") if isinstance(meta, dict) else None
    for source in sources if isinstance(sources, list) else []:
        if isinstance(source, dict) and source.get("type") == WEBRTC_SOURCE_TYPE:
            url = source.get("url")
            if isinstance(url, str) and url.startswith(("https://", "http://")):
                return url
    return None


# WHIP ingest as Livepeer documents it: POST the offer to <base>/<streamKey>.
WHIP_INGEST_BASE = "https://playback.livepeer.studio/webrtc"


def whip_ingest_url(stream_key: str, whip_base: str = WHIP_INGEST_BASE) -> str:
    """The whip+https:// ingest URL of a stream key (the scheme names the protocol)."""
    base = whip_base.rstrip("/")
    return f"{base if base.startswith('whip+') else 'whip+' + base}/{stream_key}"


def ingest_url(stream_key: str, ingest_base: str) -> str:
    return f"{ingest_base.rstrip('/')}/{stream_key}"


LIVEPEER_SRT_PORT = 2935


def srt_ingest_url(stream_key: str, ingest_base: str) -> str:
    """Livepeer's SRT ingest for a stream key: `srt://<ingest host>:2935?streamid=<key>`.

    `ingest_base` is the RTMP base the API lists (`rtmp://host/live`: its host takes SRT on
    port 2935), or an `srt://host[:port]` base of one's own.
    """
    parts = urlsplit(ingest_base.strip())
    if not parts.hostname:
        raise ValueError("the ingest base has no host")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = parts.port if parts.scheme == "srt" and parts.port else LIVEPEER_SRT_PORT
    return f"srt://{host}:{port}?streamid={quote(stream_key, safe='')}"


def playback_url(playback_id: str, playback_base: str) -> str:
    return f"{playback_base.rstrip('/')}/{playback_id}/index.m3u8"


def regional_base(template: str, region: str) -> str:
    """ "rtmp://{region}-rtmp.example/live" + "fra" -> "rtmp://fra-rtmp.example/live"."""
    if not _REGION.match(region):
        raise ValueError("region must be lowercase letters, digits and dashes")
    return template.replace("{region}", region)


def stream_slug(stream: str, max_length: int = 32) -> str:
    """A name-safe form of a stream's label: "EU West #1" -> "eu-west-1"."""
    slug = _SLUG_SPLIT.sub("-", stream.lower()).strip("-")[:max_length].rstrip("-")
    return slug or "stream"


def stream_name_prefix(stream: str) -> str:
    """The name prefix of one monitored stream's test streams (for `delete_leftovers`)."""
    return f"{TEST_STREAM_PREFIX}{stream_slug(stream)}-"


def build_stream_name(stream: str, short_id: str | None = None) -> str:
    """`streamer-<slug>-<short id>`: recognisable as ours, unique per session."""
    return f"{stream_name_prefix(stream)}{short_id or secrets.token_hex(4)}"


class LivepeerClient:
    def __init__(
        self,
        api_url: str,
        api_key: str,
        session: aiohttp.ClientSession,
        timeout: float = 10.0,
        *,
        on_latency: LatencyCallback | None = None,
    ) -> None:
        parts = urlsplit(api_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("api_url must be an http(s) URL")
        if not api_key.strip():
            raise ValueError("api_key is empty")
        self.api_url = api_url.rstrip("/")
        self._api_key = api_key.strip()
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._on_latency = on_latency

    def __repr__(self) -> str:
        return f"LivepeerClient(api_url={self.api_url!r})"

    async def create_stream(
        self,
        name: str,
        profiles: Sequence[Profile] = DEFAULT_PROFILES,
        record: bool = False,
        playback_policy: PlaybackPolicy | None = None,
    ) -> CreatedStream:
        payload: dict[str, Any] = {
            "name": name,
            "profiles": [p.to_json() for p in profiles],
            "record": record,
        }
        if playback_policy is not None:
            payload["playbackPolicy"] = {"type": playback_policy}
        answer = await self._call("create_stream", "POST", "/stream", payload)
        return answer.parse(
            lambda body: CreatedStream(
                id=_str(body, "id"),
                name=_str(body, "name"),
                stream_key=_str(body, "streamKey"),
                playback_id=_str(body, "playbackId"),
            )
        )

    async def get_stream(self, stream_id: str) -> StreamSummary:
        answer = await self._call("get_stream", "GET", f"/stream/{quote(stream_id, safe='')}")
        return answer.parse(_summary)

    async def delete_stream(self, stream_id: str) -> None:
        await self._call("delete_stream", "DELETE", f"/stream/{quote(stream_id, safe='')}")

    async def list_streams(self) -> list[StreamSummary]:
        """All streams of the account, following `Link: <...>; rel="next"` pagination."""
        streams: list[StreamSummary] = []
        path: str | None = "/stream"
        for _ in range(_MAX_PAGES):
            if path is None:
                break
            answer = await self._call("list_streams", "GET", path)
            streams.extend(answer.parse(lambda body: [_summary(item) for item in _list(body)]))
            path = answer.next_url
        return streams

    async def whep_url(self, playback_id: str) -> str:
        """The stream's WHEP endpoint, from its playback info."""
        answer = await self._call(
            "playback_info", "GET", f"/playback/{quote(playback_id, safe='')}"
        )
        url = answer.parse(webrtc_source)
        if url is None:
            raise LivepeerAPIError(
                "playback_info", answer.status, f"no WebRTC ({WEBRTC_SOURCE_TYPE}) source listed"
            )
        return url

    async def ingests(self) -> list[Ingest]:
        answer = await self._call("ingests", "GET", "/ingest")
        return answer.parse(
            lambda body: [
                Ingest(
                    base=_str(item, "base"),
                    ingest=_str(item, "ingest"),
                    playback=_str(item, "playback"),
                )
                for item in _list(body)
            ]
        )

    async def delete_leftovers(self, prefix: str, keep: Collection[str] = ()) -> int:
        """Deletes every stream whose name starts with `prefix` (ids in `keep` excepted).

        Best effort: one failed deletion is logged and the others go on; a stream already
        gone (404) is not an error. Returns how many streams were deleted.
        """
        if not prefix.strip():
            raise ValueError("refusing to delete with an empty prefix: it matches every stream")
        deleted = 0
        for stream in await self.list_streams():
            if not stream.name.startswith(prefix) or stream.id in keep:
                continue
            try:
                await self.delete_stream(stream.id)
                deleted += 1
            except LivepeerAPIError as exc:
                if exc.status != 404:
                    _log.warning("leftover test stream %s not deleted: %s", stream.name, exc)
        if deleted:
            _log.info("deleted %d leftover test stream(s) named %s*", deleted, prefix)
        return deleted

    async def _call(
        self, operation: Operation, method: str, path: str, payload: Any = None
    ) -> _Answer:
        url = path if path.startswith(("http://", "https://")) else f"{self.api_url}{path}"
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        started = time.monotonic()
        try:
            async with self._session.request(
                method, url, json=payload, headers=headers, timeout=self._timeout
            ) as response:
                status = response.status
                raw = await read_capped(response.content, _MAX_ANSWER_BYTES)
                reason = response.reason or ""
                next_link = response.links.get("next")
                next_url = str(next_link.get("url")) if next_link else None
        except BodyTooLargeError:
            raise LivepeerAPIError(
                operation, status, f"answer larger than {_MAX_ANSWER_BYTES >> 20} MiB"
            ) from None
        except TimeoutError:
            raise LivepeerAPIError(
                operation, None, f"timeout after {self._timeout.total:g}s"
            ) from None
        except aiohttp.ClientError as exc:
            # The aiohttp exception's repr can hold request headers: keep only its type.
            raise LivepeerAPIError(
                operation, None, f"connection failed ({type(exc).__name__})"
            ) from None
        finally:
            elapsed = time.monotonic() - started
            if self._on_latency is not None:
                self._on_latency(operation, elapsed)
        _log.debug("livepeer %s: HTTP %d in %.3fs", operation, status, elapsed)

        body = self._decode(operation, status, raw)
        if status >= 400:
            raise LivepeerAPIError(operation, status, self._error_message(body, reason))
        if isinstance(body, dict) and body.get("errors"):
            # Older deployments answer errors with a 2xx status.
            raise LivepeerAPIError(operation, status, self._error_message(body, reason))
        if next_url is not None:
            next_url = self._same_origin(urljoin(url, next_url))
        return _Answer(operation, status, body, next_url)

    def _same_origin(self, url: str) -> str | None:
        # A "next" link elsewhere would receive our bearer key: do not follow it.
        target, api = urlsplit(url), urlsplit(self.api_url)
        if (target.scheme, target.netloc) == (api.scheme, api.netloc):
            return url
        _log.warning("not following a pagination link to another host")
        return None

    def _decode(self, operation: str, status: int, raw: bytes) -> Any:
        if not raw.strip():
            return None
        problem = "malformed JSON in the answer"
        try:
            body = json.loads(raw)
        except RecursionError:  # the parser's own recursion: thousands of levels
            body, problem = None, _TOO_DEEP
        except (ValueError, UnicodeDecodeError):
            body = None
        else:
            if _nested_deeper_than(body, _MAX_JSON_DEPTH):
                body, problem = None, _TOO_DEEP
        if body is None and status < 400:
            raise LivepeerAPIError(operation, status, problem)
        return body  # None for an unusable error page: the status says enough

    def _error_message(self, body: Any, reason: str) -> str:
        message = ""
        if isinstance(body, dict):
            errors = body.get("errors")
            if isinstance(errors, list) and errors:
                # Only text (an entry's own or its "message"): str() of a hostile nested
                # value could recurse without bound.
                texts = (e.get("message") if isinstance(e, dict) else e for e in errors[:10])
                message = "; ".join(t for t in texts if isinstance(t, str))
            elif isinstance(body.get("message"), str):
                message = body["message"]
            elif isinstance(body.get("error"), str):
                message = body["error"]
        if not message:
            message = reason or "error"  # the HTTP reason phrase: "Service Unavailable"
        # The API is not expected to echo the key, but the message ends up in logs.
        message = message.replace(self._api_key, "****")
        return quote_untrusted(message, _MAX_MESSAGE)


@dataclass(frozen=True)
class _Answer:
    operation: str
    status: int
    body: Any  # decoded JSON; None for an empty body
    next_url: str | None  # a `rel="next"` page on the same host

    def parse(self, parser: Callable[[Any], _T]) -> _T:
        """Runs `parser` on the body; an unexpected shape becomes a `LivepeerAPIError`."""
        try:
            return parser(self.body)
        except (TypeError, ValueError, OverflowError, OSError) as exc:
            detail = str(exc) if isinstance(exc, TypeError) else type(exc).__name__
            raise LivepeerAPIError(
                self.operation, self.status, f"malformed answer: {detail}"
            ) from None


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether objects and arrays in `value` nest more than `limit` levels (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _list(body: Any) -> list[Any]:
    if not isinstance(body, list):
        raise TypeError("expected a list")
    return body


def _str(body: Any, key: str) -> str:
    if not isinstance(body, dict):
        raise TypeError("expected an object")
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise TypeError(f"{key} missing or not a string")
    return value


def _summary(item: Any) -> StreamSummary:
    stream_id = _str(item, "id")
    created = item.get("createdAt")
    created_at = None
    if isinstance(created, int | float) and not isinstance(created, bool):
        created_at = datetime.fromtimestamp(created / 1000, UTC)  # milliseconds since epoch
    return StreamSummary(
        id=stream_id,
        name=str(item.get("name") or ""),
        created_at=created_at,
        is_active=bool(item.get("isActive", False)),
    )


__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_PROFILES",
    "LIVEPEER_INGEST_TEMPLATE",
    "LIVEPEER_PLAYBACK_TEMPLATE",
    "TEST_STREAM_PREFIX",
    "CreatedStream",
    "Ingest",
    "LivepeerAPIError",
    "LivepeerClient",
    "PlaybackPolicy",
    "Profile",
    "StreamSummary",
    "build_stream_name",
    "ingest_url",
    "playback_url",
    "regional_base",
    "stream_name_prefix",
    "stream_slug",
]
