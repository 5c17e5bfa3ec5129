"""A thin WHIP/WHEP front for Janus's VideoRoom: the HTTP exchanges become Janus API calls,
and Janus does all the ICE, DTLS, SRTP and RTP.

- `POST /whip/{room}` (an SDP offer): a Janus session and VideoRoom handle; the room is
  created when missing (H.264 and Opus, recorded to `recordings`); the offer joins it as
  its publisher, and Janus's answer is returned (201) with the resource in `Location`.
- `POST /whep/{room}`: a subscriber of the room's publisher. VideoRoom 1.1 only offers to
  subscribers ("Only publishers send offers", janus_videoroom.c), so this is the
  server-offer variant meetecho's simple-whep-server uses: the client's offer is not
  used, the answer is 406 with Janus's SDP offer and `Location`, and the client PATCHes its
  SDP answer (`application/sdp`) to the resource to start the media (204).
- `DELETE` on a resource: the participant leaves, and its Janus session is destroyed.

The Janus side speaks the plain HTTP API: requests are POSTed, and a long poll per Janus
session collects the asynchronous events (answers, offers), matched by transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

log = logging.getLogger(__name__)

PLUGIN = "janus.plugin.videoroom"
SDP = "application/sdp"
EVENT_SECONDS = 10.0
Json = dict[str, Any]


class JanusError(Exception):
    """Janus (or its VideoRoom plugin) refused a request."""


class _Session:
    """One Janus session with one VideoRoom handle, and its event long poll."""

    def __init__(self, http: aiohttp.ClientSession, api: str) -> None:
        self._http = http
        self._api = api
        self._url = ""
        self._handle_url = ""
        self._waiting: dict[str, asyncio.Future[Json]] = {}
        self._poll: asyncio.Task[None] | None = None

    async def open(self) -> None:
        session = await self._post(self._api, {"janus": "create"})
        self._url = f"{self._api}/{session['data']['id']}"
        self._poll = asyncio.create_task(self._long_poll())
        handle = await self._post(self._url, {"janus": "attach", "plugin": PLUGIN})
        self._handle_url = f"{self._url}/{handle['data']['id']}"

    async def request(self, body: Json) -> Json:
        """A synchronous plugin request (create, exists, listparticipants...): its data."""
        answer = await self._post(self._handle_url, {"janus": "message", "body": body})
        return _plugin_data(answer)

    async def message(self, body: Json, jsep: Json | None = None) -> tuple[Json, Json | None]:
        """An asynchronous plugin request (join, start, leave...): the event that answers
        it, and the JSEP that came with it."""
        transaction = secrets.token_hex(8)
        waiting = asyncio.get_running_loop().create_future()
        self._waiting[transaction] = waiting
        message: Json = {"janus": "message", "body": body, "transaction": transaction}
        if jsep is not None:
            message["jsep"] = jsep
        try:
            await self._post(self._handle_url, message)
            async with asyncio.timeout(EVENT_SECONDS):
                event = await waiting
        finally:
            self._waiting.pop(transaction, None)
        return _plugin_data(event), event.get("jsep")

    async def trickle_done(self) -> None:
        """The client's SDP carried all its candidates: tell Janus no more will come."""
        await self._post(self._handle_url, {"janus": "trickle", "candidate": {"completed": True}})

    async def close(self) -> None:
        with contextlib.suppress(JanusError, aiohttp.ClientError, TimeoutError):
            if self._url:
                await self._post(self._url, {"janus": "destroy"})
        if self._poll is not None:
            self._poll.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poll

    async def _post(self, url: str, message: Json) -> Json:
        message.setdefault("transaction", secrets.token_hex(8))
        async with self._http.post(url, json=message) as response:
            answer: Json = await response.json(content_type=None)
        if answer.get("janus") == "error":
            raise JanusError(answer.get("error", {}).get("reason", "Janus error"))
        return answer

    async def _long_poll(self) -> None:
        """Collects the session's events (this also keeps the session alive)."""
        while True:
            try:
                async with self._http.get(self._url, params={"maxev": "10"}) as response:
                    events = await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, ValueError):
                await asyncio.sleep(0.1)
                continue
            for event in events if isinstance(events, list) else [events]:
                waiting = self._waiting.get(event.get("transaction", ""))
                if waiting is not None and not waiting.done() and event.get("janus") == "event":
                    waiting.set_result(event)


def _plugin_data(answer: Json) -> Json:
    data: Json = answer.get("plugindata", {}).get("data", {})
    if "error" in data:
        raise JanusError(f"VideoRoom: {data['error']} ({data.get('error_code')})")
    return data


@dataclass
class _Participant:
    room: str
    session: _Session
    publisher: bool


@dataclass
class JanusWhip:
    """The WHIP/WHEP front of one Janus; `app()` to serve it."""

    janus_api: str
    recordings: Path
    participants: dict[str, _Participant] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    _http: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/whip/{room}", self._publish)
        app.router.add_delete("/whip/{room}/{id}", self._delete)
        app.router.add_post("/whep/{room}", self._subscribe)
        app.router.add_patch("/whep/{room}/{id}", self._answer)
        app.router.add_delete("/whep/{room}/{id}", self._delete)
        app.on_cleanup.append(self._cleanup)
        return app

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None:
            # Long polls last up to 30 s (Janus answers a keepalive then).
            timeout = aiohttp.ClientTimeout(total=40)
            self._http = aiohttp.ClientSession(timeout=timeout)
        return self._http

    async def _cleanup(self, _: web.Application) -> None:
        participants, self.participants = self.participants, {}
        await asyncio.gather(*(p.session.close() for p in participants.values()))
        if self._http is not None:
            await self._http.close()

    async def _session(self) -> _Session:
        session = _Session(self._client(), self.janus_api)
        try:
            await session.open()
        except BaseException:
            await session.close()
            raise
        return session

    async def _publish(self, request: web.Request) -> web.Response:
        if request.content_type != SDP:
            raise web.HTTPUnsupportedMediaType(text="an SDP offer is expected")
        room = request.match_info["room"]
        offer = await request.text()
        session = await self._session()
        try:
            await self._ensure_room(session, room)
            event, jsep = await session.message(
                {"request": "joinandconfigure", "room": room, "ptype": "publisher"},
                {"type": "offer", "sdp": offer},
            )
            await session.trickle_done()
        except (JanusError, TimeoutError) as exc:
            await session.close()
            return web.Response(status=502, text=f"Janus refused the publisher: {exc}")
        if jsep is None or event.get("videoroom") != "joined":
            await session.close()
            return web.Response(status=502, text="Janus did not answer the offer")
        resource = self._keep(room, session, publisher=True)
        return _sdp_response(201, jsep["sdp"], f"/whip/{room}/{resource}")

    async def _ensure_room(self, session: _Session, room: str) -> None:
        if (await session.request({"request": "exists", "room": room})).get("exists"):
            return
        await session.request(
            {
                "request": "create",
                "room": room,
                "publishers": 1,
                "videocodec": "h264",
                "audiocodec": "opus",
                "record": True,
                "rec_dir": str(self.recordings),
            }
        )

    async def _subscribe(self, request: web.Request) -> web.Response:
        room = request.match_info["room"]
        session = await self._session()
        try:
            listing = await session.request({"request": "listparticipants", "room": room})
            feeds = [p["id"] for p in listing.get("participants", []) if p.get("publisher")]
            if not feeds:
                await session.close()
                return web.Response(status=404, text="the room has no publisher yet")
            event, jsep = await session.message(
                {
                    "request": "join",
                    "room": room,
                    "ptype": "subscriber",
                    "streams": [{"feed": feeds[0]}],
                }
            )
        except (JanusError, TimeoutError) as exc:
            await session.close()
            return web.Response(status=404, text=f"no subscription: {exc}")
        if jsep is None or event.get("videoroom") != "attached":
            await session.close()
            return web.Response(status=502, text="Janus sent no offer")
        resource = self._keep(room, session, publisher=False)
        # 406: the server offers (see the module); the client PATCHes its answer.
        return _sdp_response(406, jsep["sdp"], f"/whep/{room}/{resource}")

    async def _answer(self, request: web.Request) -> web.Response:
        participant = self.participants.get(request.match_info["id"])
        if participant is None or participant.publisher:
            raise web.HTTPNotFound()
        if request.content_type != SDP:
            # Trickle (application/trickle-ice-sdpfrag) is not needed: the answer is complete.
            raise web.HTTPUnsupportedMediaType(text="only an SDP answer is taken")
        try:
            await participant.session.message(
                {"request": "start"}, {"type": "answer", "sdp": await request.text()}
            )
            await participant.session.trickle_done()
        except (JanusError, TimeoutError) as exc:
            return web.Response(status=400, text=f"Janus refused the answer: {exc}")
        return web.Response(status=204)

    async def _delete(self, request: web.Request) -> web.Response:
        participant = self.participants.pop(request.match_info["id"], None)
        if participant is None:
            raise web.HTTPNotFound()
        self.deleted.append(request.path)
        with contextlib.suppress(JanusError, TimeoutError):
            if participant.publisher:
                await participant.session.message({"request": "leave"})
        await participant.session.close()
        return web.Response(status=200)

    def _keep(self, room: str, session: _Session, *, publisher: bool) -> str:
        resource = secrets.token_hex(8)
        self.participants[resource] = _Participant(room, session, publisher)
        return resource


def _sdp_response(status: int, sdp: str, location: str) -> web.Response:
    return web.Response(
        status=status,
        body=sdp.encode(),
        headers={"Content-Type": SDP, "Location": location},
    )
