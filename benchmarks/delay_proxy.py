"""A proxy in front of the origin that withholds every new playlist version for exactly D.

It serves the origin's HLS directory. Each media playlist version is timed by the origin's
own file (its modification time: when nginx published it) and served only from D seconds
after that; until then the previous version is served (404 before the first one is due).
Segments are served as they are. The listed latency a follower measures through it must
therefore rise by D, segment for segment.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from pathlib import Path

from aiohttp import web
from tests.support.aio import LocalServer
from tests.support.ports import free_port

from benchmarks.truth import read_new_version


class DelayProxy:
    def __init__(self, hls_dir: Path, delay: float, watch_every: float = 0.05) -> None:
        self.hls_dir = hls_dir
        self.delay = delay
        self.watch_every = watch_every
        self.port = free_port()
        self._versions: dict[str, deque[tuple[float, bytes]]] = {}
        self._seen: dict[str, tuple[int, int]] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._server: LocalServer | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/hls/{name}"

    def watch(self, name: str) -> None:
        """Starts timing a playlist's versions (also done on its first request)."""
        if name not in self._watchers:
            self._versions[name] = deque(maxlen=64)
            self._watchers[name] = asyncio.create_task(self._watch(name))

    async def __aenter__(self) -> DelayProxy:
        app = web.Application()
        app.router.add_get("/hls/{name}", self._handle)
        self._server = await LocalServer.start(app, port=self.port, shutdown_seconds=0.5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._watchers.values():
            task.cancel()
        await asyncio.gather(*self._watchers.values(), return_exceptions=True)
        if self._server is not None:
            await self._server.stop()

    async def _watch(self, name: str) -> None:
        path = self.hls_dir / name
        while True:
            self._read(name, path)
            await asyncio.sleep(self.watch_every)

    def _read(self, name: str, path: Path) -> None:
        version = read_new_version(path, self._seen.get(name))
        if version is None:
            return
        key, mtime, body = version
        self._seen[name] = key
        self._versions[name].append((mtime, body))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if "/" in name or name.startswith("."):
            return web.Response(status=404)
        if name.endswith(".m3u8"):
            self.watch(name)
            self._read(name, self.hls_dir / name)
            due = time.time() - self.delay
            body = None
            for published, version in reversed(self._versions[name]):
                if published <= due:
                    body = version
                    break
            if body is None:
                return web.Response(status=404, text="not yet")
            return web.Response(body=body, content_type="application/vnd.apple.mpegurl")
        with contextlib.suppress(FileNotFoundError):
            return web.Response(body=(self.hls_dir / name).read_bytes(), content_type="video/mp2t")
        return web.Response(status=404)
