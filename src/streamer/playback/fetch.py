"""HTTP GETs for playlists and segments, with bounded retries, timeouts and size caps.

Failures come back as FetchError with the kind the checks report (`http_error` or
`timeout`) and a detail that names the object type and status, never the URL (it may carry
tokens).

Every request, redirects included, goes through the fetch policy (egress.py): redirects
are followed here, hop by hop, and the addresses a host name resolves to are filtered
before aiohttp connects to them. Custom headers (a playback JWT) go only to the origin of
the requested URL, never to another one a redirect points at.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from streamer.http_body import BodyTooLargeError, read_capped
from streamer.playback.egress import AddressPolicy, Rules, parse_address, trusted_classes

MAX_SEGMENT_BYTES = 64 << 20
MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_REFUSED = "refused by fetch policy: "


class FetchError(Exception):
    def __init__(
        self,
        kind: str,
        object_type: str,
        detail: str,
        status: int | None = None,
        retryable: bool = True,
    ):
        super().__init__(f"{object_type}: {detail}")
        self.kind = kind
        self.object_type = object_type
        self.detail = detail
        self.status = status
        self.retryable = retryable  # False: the same request would fail the same way


class FetchRefusedError(FetchError):
    """The fetch policy refused a request: not retried, since it would be refused again."""

    def __init__(self, object_type: str, reason: str) -> None:
        super().__init__("http_error", object_type, _REFUSED + reason, retryable=False)


@dataclass(frozen=True)
class Fetched:
    body: bytes
    started_at: float  # wall clock, when the request was sent: for latency arithmetic
    completed_at: float  # wall clock, when the last byte arrived
    # The same two instants on the monotonic clock: for scheduling, which a wall-clock step
    # must neither stall nor burst.
    sent_monotonic: float = 0.0
    received_monotonic: float = 0.0


@dataclass(frozen=True)
class Answer:
    """The answer to a request other than a GET (see Fetcher.exchange)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: URL  # after redirects: relative Locations resolve against it


@dataclass(frozen=True)
class FetchPolicy:
    timeout_seconds: float = 10.0  # the whole request, redirects included
    connect_timeout_seconds: float = 5.0
    retries: int = 2
    retry_delay_seconds: float = 0.25
    allow: tuple[str, ...] = ()  # CIDRs and host names allowed despite their address class
    deny: tuple[str, ...] = ()  # CIDRs and host names never fetched


class _AddressRefusedError(OSError):
    """Raised by the resolver: every address of a host is refused (reason: str(self))."""


class _PolicyResolver(AbstractResolver):
    """Resolves as aiohttp would, then drops the addresses the policy refuses: aiohttp
    connects only to what this returns."""

    def __init__(self, policy: Callable[[], AddressPolicy]) -> None:
        self._inner = DefaultResolver()
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        policy = self._policy()
        allowed: list[ResolveResult] = []
        reasons: list[str] = []
        for result in results:
            address = parse_address(result["host"])
            reason = (
                "unparsable address"
                if address is None
                else policy.refuse_address(host, address, result["port"])
            )
            if reason is None:
                allowed.append(result)
            else:
                reasons.append(reason)
        if not allowed and reasons:
            raise _AddressRefusedError(reasons[0])
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def _origin(url: URL) -> tuple[str, str, int | None]:
    return url.scheme, (url.host or "").lower(), url.port


class Fetcher:
    """Fetches for one session; `close()` it when done (it owns its connection pool, whose
    resolver applies this session's policy)."""

    def __init__(
        self,
        policy: FetchPolicy | None = None,
        headers: Callable[[], Mapping[str, str]] | None = None,
        playback_url: Callable[[], str] | None = None,
    ) -> None:
        self._policy = policy or FetchPolicy()
        self._headers = headers
        self._playback_url = playback_url
        self._allow = Rules.parse(self._policy.allow)
        self._deny = Rules.parse(self._policy.deny)
        self._client: aiohttp.ClientSession | None = None
        self._resolver: _PolicyResolver | None = None
        self.requests = 0  # counts every request made, retries and redirects included

    def address_policy(self) -> AddressPolicy:
        playback = self._playback_url() if self._playback_url is not None else None
        return AddressPolicy(self._allow, self._deny, trusted_classes(playback))

    def _http(self) -> aiohttp.ClientSession:
        if self._client is None:
            self._resolver = _PolicyResolver(self.address_policy)
            connector = aiohttp.TCPConnector(resolver=self._resolver)
            self._client = aiohttp.ClientSession(connector=connector)
        return self._client

    async def close(self) -> None:
        client, resolver = self._client, self._resolver
        self._client = self._resolver = None
        if client is not None:
            await client.close()
        if resolver is not None:
            await resolver.close()

    async def get(
        self,
        url: str,
        object_type: str,
        max_bytes: int,
        retry: bool = True,
        byterange: tuple[int, int | None] | None = None,
    ) -> Fetched:
        """`byterange`: (offset, length or None: to the end), sent as a Range header (an
        LL-HLS part inside a larger resource)."""
        attempts = 1 + (self._policy.retries if retry else 0)
        last: FetchError | None = None
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self._policy.retry_delay_seconds * attempt)
            try:
                return await self._get_once(url, object_type, max_bytes, byterange)
            except FetchError as exc:
                if not exc.retryable:
                    raise
                last = exc
                # Client errors other than 404/408/429 will not heal by retrying.
                if (
                    exc.status is not None
                    and 400 <= exc.status < 500
                    and exc.status not in (404, 408, 429)
                ):
                    break
        assert last is not None
        raise last

    def _check_hop(self, url: URL, object_type: str) -> None:
        """Refuses what can be refused before connecting: the scheme, a deny-listed host
        name, an address literal (aiohttp connects to literals without resolving them)."""
        if url.scheme not in ("http", "https") or not url.host:
            raise FetchRefusedError(object_type, "not an http(s) URL")
        policy = self.address_policy()
        reason = policy.refuse_host(url.host)
        address = parse_address(url.host)
        if reason is None and address is not None:
            reason = policy.refuse_address(url.host, address, url.port or 0)
        if reason is not None:
            raise FetchRefusedError(object_type, reason)

    async def _get_once(
        self,
        url: str,
        object_type: str,
        max_bytes: int,
        byterange: tuple[int, int | None] | None = None,
    ) -> Fetched:
        policy = self._policy
        timeout = aiohttp.ClientTimeout(connect=policy.connect_timeout_seconds)
        custom = dict(self._headers()) if self._headers else {}
        ranged = {}
        if byterange is not None:
            start, length = byterange
            end = "" if length is None else str(start + length - 1)
            ranged = {"Range": f"bytes={start}-{end}"}
            custom.update(ranged)
        try:
            hop = URL(url)
        except ValueError:
            raise FetchError("http_error", object_type, "malformed URL", retryable=False) from None
        origin = _origin(hop)
        started, sent = time.time(), time.monotonic()
        try:
            async with asyncio.timeout(policy.timeout_seconds):
                for _ in range(MAX_REDIRECTS + 1):
                    self._check_hop(hop, object_type)
                    self.requests += 1
                    # Another origin gets no token, whatever sent us there.
                    headers = custom if _origin(hop) == origin else ranged
                    async with self._http().get(
                        hop, timeout=timeout, headers=headers, allow_redirects=False
                    ) as response:
                        if response.status in _REDIRECTS:
                            hop = self._redirect_target(hop, response, object_type)
                            continue
                        return await _read(response, object_type, max_bytes, started, sent)
                raise FetchError("http_error", object_type, f"more than {MAX_REDIRECTS} redirects")
        except TimeoutError:
            raise FetchError(
                "timeout", object_type, f"no complete answer within {policy.timeout_seconds:g}s"
            ) from None
        except aiohttp.ClientPayloadError:
            raise FetchError("http_error", object_type, "truncated response body") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, _AddressRefusedError):
                raise FetchRefusedError(object_type, str(exc.os_error)) from None
            raise FetchError(
                "http_error", object_type, f"cannot connect ({exc.os_error.__class__.__name__})"
            ) from None
        except aiohttp.ClientError as exc:
            raise FetchError(
                "http_error", object_type, f"request failed ({exc.__class__.__name__})"
            ) from None

    async def exchange(
        self,
        method: str,
        url: str,
        object_type: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        max_bytes: int = 1 << 20,
    ) -> Answer:
        """One request other than a GET (WHEP's POST, PATCH and DELETE), under the same
        policy, limits and header rules; never retried (a POST creates a resource).
        Redirects keep the method (307/308, as WHEP servers send them). Any status is
        answered: the caller judges it."""
        custom = dict(self._headers()) if self._headers else {}
        try:
            hop = URL(url)
        except ValueError:
            raise FetchError("http_error", object_type, "malformed URL", retryable=False) from None
        origin = _origin(hop)
        timeout = aiohttp.ClientTimeout(connect=self._policy.connect_timeout_seconds)
        try:
            async with asyncio.timeout(self._policy.timeout_seconds):
                for _ in range(MAX_REDIRECTS + 1):
                    self._check_hop(hop, object_type)
                    self.requests += 1
                    headers = custom if _origin(hop) == origin else {}
                    if content_type is not None:
                        headers = {**headers, "Content-Type": content_type}
                    async with self._http().request(
                        method,
                        hop,
                        data=body,
                        timeout=timeout,
                        headers=headers,
                        allow_redirects=False,
                    ) as response:
                        if response.status in _REDIRECTS:
                            hop = self._redirect_target(hop, response, object_type)
                            continue
                        try:
                            data = await read_capped(response.content, max_bytes)
                        except BodyTooLargeError as exc:
                            raise FetchError("http_error", object_type, str(exc)) from None
                        return Answer(response.status, response.headers.copy(), data, hop)
                raise FetchError("http_error", object_type, f"more than {MAX_REDIRECTS} redirects")
        except TimeoutError:
            raise FetchError(
                "timeout",
                object_type,
                f"no complete answer within {self._policy.timeout_seconds:g}s",
            ) from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, _AddressRefusedError):
                raise FetchRefusedError(object_type, str(exc.os_error)) from None
            raise FetchError(
                "http_error", object_type, f"cannot connect ({exc.os_error.__class__.__name__})"
            ) from None
        except aiohttp.ClientError as exc:
            raise FetchError(
                "http_error", object_type, f"request failed ({exc.__class__.__name__})"
            ) from None

    @staticmethod
    def _redirect_target(current: URL, response: aiohttp.ClientResponse, object_type: str) -> URL:
        location = response.headers.get("Location")
        if not location:
            raise FetchError(
                "http_error",
                object_type,
                f"HTTP {response.status} redirect without a Location",
                response.status,
            )
        try:
            return current.join(URL(location)).with_fragment(None)
        except ValueError:
            raise FetchError(
                "http_error",
                object_type,
                f"HTTP {response.status} to a malformed Location",
                retryable=False,
            ) from None


async def _read(
    response: aiohttp.ClientResponse,
    object_type: str,
    max_bytes: int,
    started: float,
    sent: float,
) -> Fetched:
    if response.status >= 300:
        detail = f"HTTP {response.status}"
        if response.status in (401, 403):
            detail += " (playback refused: token missing, expired or invalid)"
        raise FetchError("http_error", object_type, detail, response.status)
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        raise FetchError("http_error", object_type, f"body of {declared} bytes exceeds {max_bytes}")
    try:
        data = await read_capped(response.content, max_bytes)
    except BodyTooLargeError as exc:
        raise FetchError("http_error", object_type, str(exc)) from None
    return Fetched(data, started, time.time(), sent, time.monotonic())
