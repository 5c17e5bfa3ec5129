"""Status page routes: the page, its static assets, a JSON API and a Server-Sent Events feed
of change notices, served from a StatusStore (sinks/status.py) on an existing aiohttp app.

The feed serves at most `max_sse_clients` clients at once (each holds a connection and a
task); past that it answers 503 with `Retry-After`, and the page polls meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from aiohttp import web

from streamer.config import ConfigError, environment
from streamer.sinks.status import Json, StatusStore, rounded

_log = logging.getLogger(__name__)

# -- HTTP --------------------------------------------------------------------------------

SSE_MIN_INTERVAL_SECONDS = 0.5  # at most 2 change notices per second per client
SSE_HEARTBEAT_SECONDS = 15.0
SSE_LIVENESS_SECONDS = 1.0  # how often an idle feed checks that its client is still there
DEFAULT_MAX_SSE_CLIENTS = 32  # open status pages per monitor; a wall of dashboards fits
SSE_RETRY_AFTER_SECONDS = 30  # the page polls every 30 s anyway; it retries the feed then


@dataclass(frozen=True, slots=True)
class StatusSettings:
    max_sse_clients: int = DEFAULT_MAX_SSE_CLIENTS  # 0: no live feed, pages poll

    def __post_init__(self) -> None:
        if self.max_sse_clients < 0:
            raise ConfigError("STATUS_MAX_SSE_CLIENTS must be 0 or more")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StatusSettings:
        raw = env.get("STATUS_MAX_SSE_CLIENTS", "").strip()
        if not raw:
            return cls()
        try:
            return cls(int(raw))
        except ValueError:
            raise ConfigError("STATUS_MAX_SSE_CLIENTS must be a whole number") from None


_COMMON_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
_PAGE_HEADERS = {
    **_COMMON_HEADERS,
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    content_type: str
    etag: str


def _content_type(name: str) -> str:
    suffix = name[name.rfind(".") :] if "." in name else ""
    return _CONTENT_TYPES.get(suffix, "text/plain; charset=utf-8")


def _load_assets() -> dict[str, _Asset]:
    """All files under the package's static/ folder, read once (works from a wheel too)."""
    assets: dict[str, _Asset] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            if child.name.startswith((".", "__")):
                continue
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif child.is_file():
                body = child.read_bytes()
                etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
                assets[prefix + child.name] = _Asset(body, _content_type(child.name), etag)

    walk(resources.files(__package__ or "streamer.web") / "static", "")
    return assets


class _FeedClient:
    """One SSE client: the streams changed since its last notice, and a wake-up."""

    def __init__(self) -> None:
        self.pending: set[str] = set()  # at most one entry per stream
        self.closed = False
        self.wakeup = asyncio.Event()

    def notify(self, name: str) -> None:
        self.pending.add(name)
        self.wakeup.set()

    def close(self) -> None:
        self.closed = True
        self.wakeup.set()


def _sse(event: str, data: Json) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(
        data, status=status, headers={**_COMMON_HEADERS, "Cache-Control": "no-store"}
    )


class _StatusRoutes:
    def __init__(self, store: StatusStore, settings: StatusSettings) -> None:
        self.store = store
        self.settings = settings
        self.assets = _load_assets()
        self.clients: set[_FeedClient] = set()

    async def page(self, request: web.Request) -> web.StreamResponse:
        return self._asset(request, self.assets["index.html"], _PAGE_HEADERS)

    async def static(self, request: web.Request) -> web.StreamResponse:
        asset = self.assets.get(request.match_info["path"])
        if asset is None:
            raise web.HTTPNotFound(text="not found", headers=_COMMON_HEADERS)
        return self._asset(request, asset, {**_COMMON_HEADERS, "Cache-Control": "no-cache"})

    @staticmethod
    def _asset(request: web.Request, asset: _Asset, headers: dict[str, str]) -> web.Response:
        headers = {**headers, "ETag": asset.etag}
        if request.headers.get("If-None-Match") == asset.etag:
            return web.Response(status=304, headers=headers)
        headers["Content-Type"] = asset.content_type
        return web.Response(body=asset.body, headers=headers)

    async def list_streams(self, request: web.Request) -> web.Response:
        return _json({"now": rounded(self.store.now()), "streams": self.store.streams()})

    async def stream(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        detail = self.store.stream(name)
        if detail is None:
            return _json({"error": "unknown stream", "name": name}, status=404)
        return _json(detail)

    async def sessions(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        sessions = self.store.sessions(name)
        if sessions is None:
            return _json({"error": "unknown stream", "name": name}, status=404)
        return _json({"name": name, "now": rounded(self.store.now()), "sessions": sessions})

    async def events(self, request: web.Request) -> web.StreamResponse:
        # The slot is taken before the first await: concurrent requests cannot overshoot.
        if len(self.clients) >= self.settings.max_sse_clients:
            return web.json_response(
                {
                    "error": "too many live feed clients",
                    "retry_after_seconds": SSE_RETRY_AFTER_SECONDS,
                },
                status=503,
                headers={
                    **_COMMON_HEADERS,
                    "Cache-Control": "no-store",
                    "Retry-After": str(SSE_RETRY_AFTER_SECONDS),
                },
            )
        client = _FeedClient()
        self.clients.add(client)
        try:
            return await self._feed(request, client)
        finally:
            self.clients.discard(client)

    async def _feed(self, request: web.Request, client: _FeedClient) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                **_COMMON_HEADERS,
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        unsubscribe = self.store.subscribe(client.notify)
        loop = asyncio.get_running_loop()
        try:
            await response.write(b"retry: 2000\n\n")
            last_write = loop.time()
            while not client.closed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(client.wakeup.wait(), SSE_LIVENESS_SECONDS)
                client.wakeup.clear()
                transport = request.transport
                if client.closed or transport is None or transport.is_closing():
                    break
                if client.pending:
                    changed, client.pending = sorted(client.pending), set()
                    await response.write(_sse("changed", {"streams": changed}))
                    last_write = loop.time()
                    await asyncio.sleep(SSE_MIN_INTERVAL_SECONDS)
                elif loop.time() - last_write >= SSE_HEARTBEAT_SECONDS:
                    await response.write(b": ping\n\n")
                    last_write = loop.time()
        except ConnectionResetError:
            pass  # the client went away mid-write
        finally:
            unsubscribe()
        return response

    async def on_shutdown(self, app: web.Application) -> None:
        for client in list(self.clients):
            client.close()


def add_status_routes(
    app: web.Application, store: StatusStore, settings: StatusSettings | None = None
) -> None:
    """Mount the status page, its assets, the JSON API and the SSE feed on `app`.

    Without `settings`, they are read from the environment (and `.env`), as the monitor's.
    """
    routes = _StatusRoutes(store, settings or StatusSettings.from_env(environment()))
    app.router.add_get("/", routes.page)
    app.router.add_get("/static/{path:.+}", routes.static)
    app.router.add_get("/api/streams", routes.list_streams)
    app.router.add_get("/api/streams/{name}", routes.stream)
    app.router.add_get("/api/streams/{name}/sessions", routes.sessions)
    app.router.add_get("/api/events", routes.events)
    app.on_shutdown.append(routes.on_shutdown)
