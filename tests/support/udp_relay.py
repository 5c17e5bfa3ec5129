"""UDP impairment for WebRTC on loopback: a relay in the media path, and a WHEP proxy that
puts it there.

`WhepRelayProxy` forwards WHEP requests to a real WHEP server and rewrites the host
candidates of its SDP answer to relays of its own, so that every datagram of the session
(ICE, DTLS, SRTP) passes through a `UdpRelay`, where it can be lost, delayed or blacked
out. The viewer's own candidates are rewritten the same way in the offer, so that neither
side can reach the other around the relay.
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass, field
from typing import cast

import aiohttp
from aiohttp import web

_CANDIDATE = re.compile(r"^(a=candidate:\S+ \d+ udp \d+ )(127\.0\.0\.1) (\d+)( typ host.*)$", re.M)


@dataclass
class Impairment:
    """What happens to datagrams, both ways: `loss` (0..1), `delay` (seconds), `blackout`
    (everything dropped while set)."""

    loss: float = 0.0
    delay: float = 0.0
    blackout: bool = False
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def drops(self) -> bool:
        return self.blackout or (self.loss > 0 and self.rng.random() < self.loss)


class _Side(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpRelay, facing: str) -> None:
        self.relay = relay
        self.facing = facing  # "viewer" (the port in the SDP) or "server"
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.relay.received(self.facing, data, addr)


class UdpRelay:
    """Relays datagrams between whoever sends to `port` and `upstream`."""

    def __init__(self, upstream: tuple[str, int], impairment: Impairment) -> None:
        self.upstream = upstream
        self.impairment = impairment
        self._front: _Side | None = None
        self._back: _Side | None = None
        self._peer: tuple[str, int] | None = None
        self.port = 0
        self.relayed = 0
        self._pending: set[asyncio.TimerHandle] = set()  # delayed datagrams

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        _, front = await loop.create_datagram_endpoint(
            lambda: _Side(self, "viewer"), local_addr=("127.0.0.1", 0)
        )
        _, back = await loop.create_datagram_endpoint(
            lambda: _Side(self, "server"), local_addr=("127.0.0.1", 0)
        )
        self._front, self._back = front, back
        assert front.transport is not None
        self.port = front.transport.get_extra_info("sockname")[1]
        return self.port

    def received(self, facing: str, data: bytes, addr: tuple[str, int]) -> None:
        target: tuple[str, int] | None
        if facing == "viewer":
            self._peer = addr
            side, target = self._back, self.upstream
        else:
            side, target = self._front, self._peer
        if target is None or side is None or side.transport is None:
            return
        if self.impairment.drops():
            return
        self.relayed += 1
        transport = side.transport
        if self.impairment.delay > 0:
            handle = asyncio.get_running_loop().call_later(
                self.impairment.delay, self._send_late, transport, data, target
            )
            self._pending.add(handle)
        else:
            transport.sendto(data, target)

    def _send_late(
        self, transport: asyncio.DatagramTransport, data: bytes, target: tuple[str, int]
    ) -> None:
        now = asyncio.get_running_loop().time()
        self._pending = {h for h in self._pending if h.when() > now}  # those still to fire
        if not transport.is_closing():
            transport.sendto(data, target)

    def close(self) -> None:
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        for side in (self._front, self._back):
            if side is not None and side.transport is not None:
                side.transport.close()


class WhepRelayProxy:
    """A WHEP endpoint in front of `upstream` (a WHEP URL prefix, e.g.
    http://127.0.0.1:PORT/whep) whose media all passes through impaired relays."""

    def __init__(self, upstream: str, impairment: Impairment) -> None:
        self.upstream = upstream.rstrip("/")
        self.impairment = impairment
        self.relays: list[UdpRelay] = []
        self.deleted: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/whep/{key}", self._post)
        app.router.add_delete("/whep/{key}/{session}", self._delete)
        return app

    async def _relayed(self, sdp: str) -> str:
        async def replace(match: re.Match[str]) -> str:
            relay = UdpRelay((match[2], int(match[3])), self.impairment)
            self.relays.append(relay)
            port = await relay.start()
            return f"{match[1]}127.0.0.1 {port}{match[4]}"

        parts: list[str] = []
        last = 0
        for match in _CANDIDATE.finditer(sdp):
            parts += [sdp[last : match.start()], await replace(match)]
            last = match.end()
        return "".join([*parts, sdp[last:]])

    async def _post(self, request: web.Request) -> web.Response:
        offer = await self._relayed(await request.text())
        key = request.match_info["key"]
        async with (
            aiohttp.ClientSession() as client,
            client.post(
                f"{self.upstream}/{key}",
                data=offer,
                headers={"Content-Type": "application/sdp"},
            ) as answer,
        ):
            body = await answer.text()
            if answer.status != 201:
                return web.Response(status=answer.status, text=body)
            location = answer.headers.get("Location", "")
        session = location.rsplit("/", 1)[-1]
        return web.Response(
            status=201,
            text=await self._relayed(body),
            content_type="application/sdp",
            headers={"Location": f"/whep/{key}/{session}"},
        )

    async def _delete(self, request: web.Request) -> web.Response:
        key, session = request.match_info["key"], request.match_info["session"]
        self.deleted.append(session)
        async with (
            aiohttp.ClientSession() as client,
            client.delete(f"{self.upstream}/{key}/{session}") as answer,
        ):
            return web.Response(status=answer.status)

    def close(self) -> None:
        for relay in self.relays:
            relay.close()
