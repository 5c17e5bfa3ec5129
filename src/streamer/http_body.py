"""Reading an HTTP body that a peer chose, whole but bounded.

`StreamReader.read(n)` returns what has arrived so far, up to n bytes: an answer that
crosses the network in two TCP segments would be cut after the first one (an SDP answer
that no longer parses: a false failure). Here every chunk is read until the end of the
body, and reading stops as soon as the body is larger than the caller's limit.
"""

from __future__ import annotations

import aiohttp

_CHUNK = 1 << 16


class BodyTooLargeError(Exception):
    """The body went on past the limit (the rest was not read)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"body larger than {limit} bytes")
        self.limit = limit


async def read_capped(content: aiohttp.StreamReader, limit: int) -> bytes:
    """The whole body; `BodyTooLargeError` once more than `limit` bytes have come."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(limit)
        chunks.append(chunk)
    return b"".join(chunks)
