"""A local receiver for notifier posts (Discord, Slack, generic webhook, PagerDuty).

Records every POST per path with its headers, raw body and arrival time; can answer 429
with `Retry-After` (or any status) for the next N requests of a path.

    async with FakeWebhooks() as hooks:
        DiscordNotifier(hooks.url("/discord/123/token"))
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

from tests.support.aio import LocalServer


@dataclass(frozen=True)
class Received:
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Answer:
    times: int
    status: int
    headers: dict[str, str]
    body: str


def verify_signature(body: bytes, header: str | None, secret: str) -> bool:
    """Checks `X-Streamer-Signature: sha256=<hex>` as a receiver would, in constant time."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256="))


@dataclass
class FakeWebhooks:
    received: dict[str, list[Received]] = field(
        default_factory=lambda: defaultdict(list), init=False
    )
    port: int = field(default=0, init=False)
    _answers: dict[str, list[_Answer]] = field(default_factory=dict, init=False, repr=False)
    _server: LocalServer | None = field(default=None, init=False, repr=False)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def all(self) -> list[Received]:
        return sorted((r for rs in self.received.values() for r in rs), key=lambda r: r.at)

    def answer_next(
        self,
        path: str,
        times: int = 1,
        status: int = 429,
        *,
        retry_after: str | None = None,
        body: str = "",
    ) -> None:
        """The next `times` POSTs to `path` get `status` (with `Retry-After` if given)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self._answers.setdefault(path, []).append(_Answer(times, status, headers, body))

    async def __aenter__(self) -> FakeWebhooks:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._receive)
        self._server = await LocalServer.start(app)
        self.port = self._server.port
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            await self._server.stop()

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received[request.path].append(
            Received(
                request.path, request.query_string, dict(request.headers), body, time.monotonic()
            )
        )
        answers = self._answers.get(request.path)
        if answers:
            answer = answers[0]
            answer.times -= 1
            if answer.times <= 0:
                answers.pop(0)
            return web.Response(status=answer.status, headers=answer.headers, text=answer.body)
        # What the real services answer on success.
        if request.path.startswith("/pagerduty"):
            return web.json_response(
                {"status": "success", "message": "Event processed"}, status=202
            )
        if request.path.startswith("/discord"):
            return web.Response(status=204)
        return web.Response(text="ok")
