"""A UDP impairment relay on loopback: loss, delay and blackouts on a media path, as a bad
network would add them: between an SRT caller and its listener, or between a WebRTC viewer
and its server (`WhepRelayProxy` puts it there).

Clients send to `port`; each client gets its own upstream socket, so the listener sees one
peer per client and its answers go back to the right one. Loss applies to each datagram in
both directions (data one way, ACKs and loss reports the other), from a seeded generator so
a run can be repeated; delay is added each way; a blackout drops everything while it is set.

`WhepRelayProxy` forwards WHEP requests to a real WHEP server and rewrites the host
candidates of its SDP answer to relays of its own, so that every datagram of the session
(ICE, DTLS, SRTP) passes through a `UdpRelay`. The viewer's own candidates are rewritten
the same way in the offer, so that neither side can reach the other around the relay.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import aiohttp
from aiohttp import web

Address = tuple[str, int]
Send = Callable[[bytes, Address], None]

_CANDIDATE = re.compile(r"^(a=candidate:\S+ \d+ udp \d+ )(127\.0\.0\.1) (\d+)( typ host.*)$", re.M)


@dataclass
class Impairment:
    loss: float = 0.0  # probability a datagram is lost, each direction
    delay_seconds: float = 0.0  # added each way
    blackout: bool = False  # everything dropped while set
    seed: int = 1
    random: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)

    def lost(self) -> bool:
        return self.blackout or (self.loss > 0 and self.random.random() < self.loss)


class _Upstream(asyncio.DatagramProtocol):
    """One client's socket towards the listener: answers go back to that client."""

    def __init__(self, relay: UdpRelay, client: Address) -> None:
        self.relay = relay
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.relay.forward(self.relay.downstream_send, data, self.client)


class UdpRelay(asyncio.DatagramProtocol):
    def __init__(self, upstream_port: int, impairment: Impairment) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.impairment = impairment
        self.port = 0
        self.forwarded = 0
        self.dropped = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._clients: dict[Address, _Upstream] = {}
        self._pending: dict[Address, list[bytes]] = {}
        self._delayed: set[asyncio.TimerHandle] = set()

    async def start(self) -> UdpRelay:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        self.port = transport.get_extra_info("sockname")[1]
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def downstream_send(self, data: bytes, client: Address) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(data, client)

    def forward(self, send: Send, data: bytes, to: Address) -> None:
        if self.impairment.lost():
            self.dropped += 1
            return
        self.forwarded += 1
        delay = self.impairment.delay_seconds
        if delay <= 0:
            send(data, to)
            return
        handle: asyncio.TimerHandle

        def later() -> None:
            self._delayed.discard(handle)
            send(data, to)

        handle = asyncio.get_running_loop().call_later(delay, later)
        self._delayed.add(handle)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        client = (str(addr[0]), int(addr[1]))
        upstream = self._clients.get(client)
        if upstream is None:
            if client in self._pending:
                self._pending[client].append(data)
                return
            self._pending[client] = [data]
            asyncio.get_running_loop().create_task(self._open(client))
            return
        self.forward(self._upstream_send(upstream), data, client)

    def _upstream_send(self, upstream: _Upstream) -> Send:
        def send(data: bytes, _client: Address) -> None:
            if upstream.transport is not None and not upstream.transport.is_closing():
                upstream.transport.sendto(data, self.upstream)

        return send

    async def _open(self, client: Address) -> None:
        loop = asyncio.get_running_loop()
        _, upstream = await loop.create_datagram_endpoint(
            lambda: _Upstream(self, client), local_addr=("127.0.0.1", 0)
        )
        self._clients[client] = upstream
        for data in self._pending.pop(client, []):
            self.forward(self._upstream_send(upstream), data, client)

    def close(self) -> None:
        for handle in self._delayed:
            handle.cancel()
        self._delayed.clear()
        for upstream in self._clients.values():
            if upstream.transport is not None:
                upstream.transport.close()
        self._clients.clear()
        if self._transport is not None:
            self._transport.close()


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
            relay = await UdpRelay(int(match[3]), self.impairment).start()
            self.relays.append(relay)
            return f"{match[1]}127.0.0.1 {relay.port}{match[4]}"

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
