"""The monitor's HTTP server: /metrics, /healthz, /readyz, and the status page."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streamer.playback import egress


def build_app(
    registry: CollectorRegistry,
    healthy: Callable[[], tuple[bool, str]],
    ready: Callable[[], tuple[bool, str]] | None = None,
) -> web.Application:
    """`healthy` backs /healthz (liveness); `ready` backs /readyz, which also needs the
    exporter to serve (it answers, so it does)."""
    app = web.Application()

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        ok, detail = healthy()
        return web.json_response({"ok": ok, "detail": detail}, status=200 if ok else 503)

    async def readyz(_: web.Request) -> web.Response:
        ok, detail = ready() if ready is not None else (True, "ok")
        return web.json_response({"ready": ok, "detail": detail}, status=200 if ok else 503)

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    bound: list[tuple[str, int]] = []

    async def forget(_: web.Application) -> None:
        for address in bound:
            egress.stopped_listening(*address)

    app.on_cleanup.append(forget)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    # Playback fetches must never reach the monitor's own port (see playback/egress.py).
    bound.extend((str(a[0]), int(a[1])) for a in runner.addresses)
    for address in bound:
        egress.listening(*address)
    return runner
