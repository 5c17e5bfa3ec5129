"""Serving an aiohttp app on a free loopback port, for the local fakes tests start."""

from __future__ import annotations

from aiohttp import web


async def start_local(app: web.Application) -> tuple[web.AppRunner, int]:
    """Starts `app` on 127.0.0.1 and a free port; the caller cleans the runner up."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, int(runner.addresses[0][1])
