"""HTTP GETs for playlists and segments, with bounded retries, timeouts and size caps.

Failures come back as FetchError with the kind the checks report (`http_error` or
`timeout`) and a detail that names the object type and status, never the URL (it may carry
tokens).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp

MAX_SEGMENT_BYTES = 64 << 20


class FetchError(Exception):
    def __init__(self, kind: str, object_type: str, detail: str, status: int | None = None):
        super().__init__(f"{object_type}: {detail}")
        self.kind = kind
        self.object_type = object_type
        self.detail = detail
        self.status = status


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
class FetchPolicy:
    timeout_seconds: float = 10.0
    connect_timeout_seconds: float = 5.0
    retries: int = 2
    retry_delay_seconds: float = 0.25


class Fetcher:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        policy: FetchPolicy | None = None,
        headers: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        self._session = session
        self._policy = policy or FetchPolicy()
        self._headers = headers
        self.requests = 0  # counts every request made, retries included

    async def get(self, url: str, object_type: str, max_bytes: int, retry: bool = True) -> Fetched:
        attempts = 1 + (self._policy.retries if retry else 0)
        last: FetchError | None = None
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self._policy.retry_delay_seconds * attempt)
            try:
                return await self._get_once(url, object_type, max_bytes)
            except FetchError as exc:
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

    async def _get_once(self, url: str, object_type: str, max_bytes: int) -> Fetched:
        policy = self._policy
        timeout = aiohttp.ClientTimeout(
            total=policy.timeout_seconds, connect=policy.connect_timeout_seconds
        )
        headers = dict(self._headers()) if self._headers else {}
        self.requests += 1
        started, sent = time.time(), time.monotonic()
        try:
            async with self._session.get(
                url, timeout=timeout, headers=headers, allow_redirects=True
            ) as response:
                if response.status >= 300:
                    detail = f"HTTP {response.status}"
                    if response.status in (401, 403):
                        detail += " (playback refused: token missing, expired or invalid)"
                    raise FetchError("http_error", object_type, detail, response.status)
                declared = response.content_length
                if declared is not None and declared > max_bytes:
                    raise FetchError(
                        "http_error", object_type, f"body of {declared} bytes exceeds {max_bytes}"
                    )
                chunks = []
                size = 0
                async for chunk in response.content.iter_chunked(1 << 16):
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchError(
                            "http_error", object_type, f"body larger than {max_bytes} bytes"
                        )
                    chunks.append(chunk)
                return Fetched(b"".join(chunks), started, time.time(), sent, time.monotonic())
        except TimeoutError:
            raise FetchError(
                "timeout", object_type, f"no complete answer within {policy.timeout_seconds:g}s"
            ) from None
        except aiohttp.ClientPayloadError:
            raise FetchError("http_error", object_type, "truncated response body") from None
        except aiohttp.ClientConnectorError as exc:
            raise FetchError(
                "http_error", object_type, f"cannot connect ({exc.os_error.__class__.__name__})"
            ) from None
        except aiohttp.ClientError as exc:
            raise FetchError(
                "http_error", object_type, f"request failed ({exc.__class__.__name__})"
            ) from None
