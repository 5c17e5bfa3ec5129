"""A local fake of the Livepeer Studio API, following the contract in LIVEPEER.md.

Checks the bearer key, validates `POST /stream`, keeps streams in memory, records every call,
and can be scripted to fail the next N calls of an operation. `GET /ingest` answers the bases
a test configures, e.g. a real nginx-rtmp origin's `rtmp://127.0.0.1:PORT/live` and
`http://127.0.0.1:PORT/hls`. nginx-rtmp serves `<hls>/<key>.m3u8`, so with
`playback_id_is_stream_key=True` the playback id equals the stream key.

    async with FakeLivepeer(api_key="k") as fake:
        client = LivepeerClient(fake.api_url, "k", session)
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

from tests.support.aio import LocalServer

OPERATIONS = (
    "create_stream",
    "get_stream",
    "list_streams",
    "delete_stream",
    "ingests",
    "playback_info",
    "webrtc",
)
_POLICIES = {"public", "jwt", "webhook"}
_PROFILE_INTS = ("width", "height", "bitrate")
_PAYLOAD: web.RequestKey[Any] = web.RequestKey("payload", object)


@dataclass(frozen=True)
class Call:
    operation: str
    method: str
    path: str
    json: Any
    authorization: str | None


@dataclass
class _Script:
    times: int
    status: int
    message: str | None
    body: str | None
    delay: float
    headers: dict[str, str]


@dataclass
class FakeLivepeer:
    api_key: str = "test-api-key"
    ingest_base: str = "rtmp://127.0.0.1:1935/live"
    playback_base: str = "http://127.0.0.1:8080/hls"
    playback_id_is_stream_key: bool = False
    stream_key: str | None = None  # one key for every stream: for origins that need it ahead
    # WHEP: the playback info's html5/video/h264 source is /webrtc/<playbackId> here, which
    # redirects (307, as Livepeer's edge does) to <webrtc_base>/<playbackId>.
    webrtc_base: str | None = None
    page_size: int | None = None  # paginate GET /stream with Link rel="next"
    calls: list[Call] = field(default_factory=list, init=False)
    streams: dict[str, dict[str, Any]] = field(default_factory=dict, init=False)
    created: list[dict[str, Any]] = field(default_factory=list, init=False)  # deleted too
    port: int = field(default=0, init=False)
    _scripts: dict[str, list[_Script]] = field(default_factory=dict, init=False, repr=False)
    _server: LocalServer | None = field(default=None, init=False, repr=False)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def fail_next(
        self,
        operation: str,
        times: int = 1,
        status: int = 500,
        message: str | None = "internal error",
        *,
        body: str | None = None,
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next `times` calls of `operation` answer `status` with `{"errors": [message]}`
        (or the raw `body`), after `delay` seconds. A 2xx status with `body` scripts answers
        that look fine on the status line only."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation}")
        self._scripts.setdefault(operation, []).append(
            _Script(times, status, message, body, delay, dict(headers or {}))
        )

    def add_stream(self, name: str, *, created_at_ms: int | None = None) -> dict[str, Any]:
        """A stream that exists before the test (a leftover from an earlier run, say)."""
        return self._create({"name": name, "profiles": [], "record": False}, created_at_ms)

    def calls_of(self, operation: str) -> list[Call]:
        return [c for c in self.calls if c.operation == operation]

    # -- server ---------------------------------------------------------------------------

    async def __aenter__(self) -> FakeLivepeer:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/api/stream", self._create_stream)
        app.router.add_get("/api/stream", self._list_streams)
        app.router.add_get("/api/stream/{id}", self._get_stream)
        app.router.add_delete("/api/stream/{id}", self._delete_stream)
        app.router.add_get("/api/ingest", self._ingests)
        app.router.add_get("/api/playback/{id}", self._playback_info)
        app.router.add_post("/webrtc/{id}", self._webrtc_redirect)
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

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        operation = _operation(request)
        payload: Any = None
        if request.can_read_body:
            try:
                payload = await request.json()
            except json.JSONDecodeError:
                payload = "<invalid json>"
        self.calls.append(
            Call(
                operation,
                request.method,
                request.path,
                payload,
                request.headers.get("Authorization"),
            )
        )
        scripts = self._scripts.get(operation)
        if scripts:
            script = scripts[0]
            script.times -= 1
            if script.times <= 0:
                scripts.pop(0)
            if script.delay:
                await asyncio.sleep(script.delay)
            body = script.body
            if body is None:
                body = json.dumps({"errors": [script.message]})
            return web.Response(
                status=script.status,
                text=body,
                content_type="application/json",
                headers=script.headers,
            )
        if operation != "webrtc" and request.headers.get("Authorization") != (
            f"Bearer {self.api_key}"
        ):
            return _errors(401, "invalid API key")
        request[_PAYLOAD] = payload
        response: web.StreamResponse = await handler(request)
        return response

    # -- handlers -------------------------------------------------------------------------

    async def _create_stream(self, request: web.Request) -> web.Response:
        payload = request[_PAYLOAD]
        problem = _validate_stream(payload)
        if problem:
            return _errors(422, problem)
        return web.json_response(self._create(payload), status=201)

    async def _list_streams(self, request: web.Request) -> web.Response:
        streams = list(self.streams.values())
        if self.page_size is None:
            return web.json_response(streams)
        start = int(request.query.get("cursor", "0"))
        page = streams[start : start + self.page_size]
        headers = {}
        if start + self.page_size < len(streams):
            headers["Link"] = f'</api/stream?cursor={start + self.page_size}>; rel="next"'
        return web.json_response(page, headers=headers)

    async def _get_stream(self, request: web.Request) -> web.Response:
        stream = self.streams.get(request.match_info["id"])
        if stream is None:
            return _errors(404, "not found")
        return web.json_response(stream)

    async def _delete_stream(self, request: web.Request) -> web.Response:
        if self.streams.pop(request.match_info["id"], None) is None:
            return _errors(404, "not found")
        return web.Response(status=204)

    async def _ingests(self, request: web.Request) -> web.Response:
        return web.json_response(
            [
                {
                    "base": self.playback_base.rsplit("/", 1)[0],
                    "ingest": self.ingest_base,
                    "playback": self.playback_base,
                }
            ]
        )

    async def _playback_info(self, request: web.Request) -> web.Response:
        playback_id = request.match_info["id"]
        if not any(s["playbackId"] == playback_id for s in self.streams.values()):
            return _errors(404, "not found")
        sources = [
            {
                "hrn": "HLS (TS)",
                "type": "html5/application/vnd.apple.mpegurl",
                "url": f"{self.playback_base}/{playback_id}/index.m3u8",
            }
        ]
        if self.webrtc_base is not None:
            sources.append(
                {
                    "hrn": "WebRTC (H264)",
                    "type": "html5/video/h264",
                    "url": f"http://127.0.0.1:{self.port}/webrtc/{playback_id}",
                }
            )
        return web.json_response({"type": "live", "meta": {"live": 0, "source": sources}})

    async def _webrtc_redirect(self, request: web.Request) -> web.Response:
        assert self.webrtc_base is not None
        location = f"{self.webrtc_base}/{request.match_info['id']}"
        return web.Response(status=307, headers={"Location": location})

    def _create(self, payload: dict[str, Any], created_at_ms: int | None = None) -> dict[str, Any]:
        key = self.stream_key or "-".join(secrets.token_hex(2) for _ in range(4))
        stream = {
            "id": str(uuid.uuid4()),
            "name": payload["name"],
            "streamKey": key,
            "playbackId": key if self.playback_id_is_stream_key else secrets.token_hex(8),
            "profiles": payload.get("profiles", []),
            "record": payload.get("record", False),
            "isActive": False,
            "createdAt": created_at_ms if created_at_ms is not None else int(time.time() * 1000),
        }
        if "playbackPolicy" in payload:
            stream["playbackPolicy"] = payload["playbackPolicy"]
        self.streams[stream["id"]] = stream
        self.created.append(stream)
        return stream


def _operation(request: web.Request) -> str:
    path = request.path.rstrip("/")
    if path == "/api/ingest":
        return "ingests"
    if path == "/api/stream":
        return "create_stream" if request.method == "POST" else "list_streams"
    if path.startswith("/api/playback/"):
        return "playback_info"
    if path.startswith("/webrtc/"):
        return "webrtc"
    if path.startswith("/api/stream/"):
        return "delete_stream" if request.method == "DELETE" else "get_stream"
    return "unknown"


def _errors(status: int, *messages: str) -> web.Response:
    return web.json_response({"errors": list(messages)}, status=status)


def _validate_stream(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return "body must be a JSON object"
    name = payload.get("name")
    if not isinstance(name, str) or not name:
        return "name is required"
    if "record" in payload and not isinstance(payload["record"], bool):
        return "record must be a boolean"
    policy = payload.get("playbackPolicy")
    if policy is not None and (not isinstance(policy, dict) or policy.get("type") not in _POLICIES):
        return "playbackPolicy.type must be public, jwt or webhook"
    profiles = payload.get("profiles", [])
    if not isinstance(profiles, list):
        return "profiles must be a list"
    for profile in profiles:
        if not isinstance(profile, dict) or not isinstance(profile.get("name"), str):
            return "each profile needs a name"
        for key in _PROFILE_INTS:
            value = profile.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                return f"profile {profile['name']}: {key} must be a positive integer"
        fps = profile.get("fps", 0)  # 0, or absent: the source's frame rate
        if not isinstance(fps, int) or isinstance(fps, bool) or fps < 0:
            return f"profile {profile['name']}: fps must be a non-negative integer"
        if "fpsDen" in profile and not isinstance(profile["fpsDen"], int):
            return f"profile {profile['name']}: fpsDen must be an integer"
        if "gop" in profile and not isinstance(profile["gop"], str):
            return f"profile {profile['name']}: gop must be a string"
    return None
