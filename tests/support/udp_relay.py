"""A UDP impairment relay on loopback: loss and delay on the path between an SRT caller and
its listener, as a bad uplink would add them.

Clients send to `port`; each client gets its own upstream socket, so the listener sees one
peer per client and its answers go back to the right one. Loss applies to each datagram in
both directions (data one way, ACKs and loss reports the other), from a seeded generator so
a run can be repeated; delay is added each way.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

Address = tuple[str, int]
Send = Callable[[bytes, Address], None]


@dataclass
class Impairment:
    loss: float = 0.0  # probability a datagram is lost, each direction
    delay_seconds: float = 0.0  # added each way
    seed: int = 1
    random: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)

    def lost(self) -> bool:
        return self.loss > 0 and self.random.random() < self.loss


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
