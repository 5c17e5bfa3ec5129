"""ICE set-up for aiortc peer connections: which STUN/TURN servers, which host addresses.

Two aiortc defaults do not suit a monitor:

- without `iceServers`, aiortc contacts a public STUN server. A monitor contacts what it is
  told to, so the configuration is always explicit (empty unless `ice_servers` is set);
- aioice (0.13) never gathers 127.0.0.1, so two peers on one host connect through a
  non-loopback address, or not at all in a network namespace that has only `lo`. aioice
  offers no option for it; its module function `get_host_addresses` is the one place that
  decides. It is wrapped once here: a peer connection set up inside `loopback_only()`
  gathers 127.0.0.1 alone (the embedded origin and tests, where the other side is on
  loopback); everywhere else aioice's own choice is unchanged.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from urllib.parse import urlsplit

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

LOOPBACK = "127.0.0.1"
# Set for the task that sets up a peer connection (and the tasks it starts: aiortc gathers
# in tasks of its own, which copy the context).
_loopback_only: ContextVar[bool] = ContextVar("streamer_ice_loopback_only", default=False)
_original_host_addresses = aioice.ice.get_host_addresses


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    if _loopback_only.get():
        return [LOOPBACK] if use_ipv4 else []
    return _original_host_addresses(use_ipv4, use_ipv6)


aioice.ice.get_host_addresses = _host_addresses


@contextlib.contextmanager
def loopback_only(enabled: bool = True) -> Iterator[None]:
    """Peer connections gathering inside this block offer 127.0.0.1 only (when `enabled`)."""
    token = _loopback_only.set(enabled)
    try:
        yield
    finally:
        _loopback_only.reset(token)


def is_loopback_url(url: str) -> bool:
    """Whether `url` names a loopback host literally (127.0.0.0/8, ::1 or localhost)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def configuration(ice_servers: Sequence[str]) -> RTCConfiguration:
    """An explicit configuration: the given `stun:`/`turn:` URLs, or none at all. TURN
    credentials may be given as `turn:USER:PASSWORD@host:3478` (split out here)."""
    servers = [_server(url) for url in ice_servers]
    return RTCConfiguration(iceServers=servers)


def _server(url: str) -> RTCIceServer:
    scheme, _, rest = url.partition(":")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return RTCIceServer(urls=url)
    username, _, password = credentials.partition(":")
    return RTCIceServer(urls=f"{scheme}:{host}", username=username, credential=password)


def validate_ice_server(url: str) -> str:
    """`url` if it is a stun:, stuns:, turn: or turns: URL; ValueError otherwise."""
    scheme, sep, rest = url.partition(":")
    if not sep or scheme not in ("stun", "stuns", "turn", "turns") or not rest.split("@")[-1]:
        raise ValueError("ice_servers entries must be stun:, stuns:, turn: or turns: URLs")
    return url
