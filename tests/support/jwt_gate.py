"""A gated playback front: forwards to the origin only with a valid Livepeer-Jwt token.

Follows Livepeer's contract for `playbackPolicy: jwt`: an ES256 token whose `sub` is the
playback id in the path, `action` is "pull", not expired, signed by the key whose public
half is registered (here: given to the gate).
"""

from __future__ import annotations

from types import TracebackType

import aiohttp
import jwt
from aiohttp import web

from tests.support.aio import LocalServer


class JwtGate:
    def __init__(self, upstream: str, public_key_pem: bytes) -> None:
        self.upstream = upstream.rstrip("/")
        self._public_key = public_key_pem
        self.refused = 0
        self.passed = 0
        self._server: LocalServer | None = None
        self._client: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/hls"

    def _allowed(self, request: web.Request) -> bool:
        token = request.headers.get("Livepeer-Jwt") or request.query.get("jwt")
        if not token:
            return False
        try:
            claims = jwt.decode(
                token, self._public_key, algorithms=["ES256"], options={"require": ["sub", "exp"]}
            )
        except jwt.PyJWTError:
            return False
        playback_id = request.match_info["tail"].split("/", 1)[0]
        return bool(claims.get("sub") == playback_id and claims.get("action") == "pull")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if not self._allowed(request):
            self.refused += 1
            return web.json_response({"errors": ["access denied"]}, status=401)
        self.passed += 1
        assert self._client is not None
        async with self._client.get(f"{self.upstream}/{request.match_info['tail']}") as up:
            body = await up.read()
            return web.Response(body=body, status=up.status, content_type=up.content_type)

    async def __aenter__(self) -> JwtGate:
        self._client = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_get("/hls/{tail:.+}", self._handle)
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
        if self._client is not None:
            await self._client.close()
