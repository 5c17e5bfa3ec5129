"""Serving an aiohttp app on loopback, for the local fakes and servers tests start.

Served like the monitor serves its own app (an AppRunner: a handler is not cancelled when
its client disconnects).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

# How long stopping waits for requests in flight before cancelling them: a fake holding a
# request (a scripted delay, an open event stream) must not hold a test's teardown for long.
SHUTDOWN_SECONDS = 5.0


class LocalServer:
    """An aiohttp app served on 127.0.0.1; `stop()` ends it (once: a second stop is a no-op)."""

    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self._runner: web.AppRunner | None = runner
        self.port = port

    @classmethod
    async def start(
        cls, app: web.Application, *, port: int = 0, shutdown_seconds: float = SHUTDOWN_SECONDS
    ) -> LocalServer:
        """Serves `app` on `port` (0: a free one)."""
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_seconds)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
        except BaseException:
            await runner.cleanup()
            raise
        return cls(runner, int(runner.addresses[0][1]))

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def stop(self) -> None:
        """Stops listening, lets requests in flight finish (within the shutdown time), and
        runs the app's shutdown and cleanup."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


@asynccontextmanager
async def serve_local(
    app: web.Application, *, port: int = 0, shutdown_seconds: float = SHUTDOWN_SECONDS
) -> AsyncIterator[LocalServer]:
    """`app` served for the block's duration."""
    server = await LocalServer.start(app, port=port, shutdown_seconds=shutdown_seconds)
    try:
        yield server
    finally:
        await server.stop()


async def send_in_pieces(
    request: web.Request,
    body: bytes,
    headers: dict[str, str],
    *,
    status: int = 201,
    piece: int = 500,
    pause: float = 0.2,
) -> web.StreamResponse:
    """Answers with `body` written `piece` bytes at a time, `pause` seconds apart: as a
    real network may deliver an answer (a reader that takes what has arrived gets a part)."""
    response = web.StreamResponse(status=status, headers=headers)
    await response.prepare(request)
    for start in range(0, len(body), piece):
        await response.write(body[start : start + piece])
        await asyncio.sleep(pause)
    await response.write_eof()
    return response
