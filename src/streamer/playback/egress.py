"""Where playback requests may go: the address rules of the fetch policy.

After the configured playback URL, the platform under test chooses every URL the monitor
fetches (variants, segments, init sections, redirects). A broken or hostile platform could
point them at cloud metadata (169.254.169.254), the monitor's own port or services inside
the operator's network. So, by default, addresses of the classes below are refused:

- unless the playback URL itself names an address of that class literally
  (`http://127.0.0.1:8080/...`, `http://10.0.0.5/...`, or `localhost` for loopback): the
  operator chose that network. A host *name* on such an address does not count, since the
  platform's DNS decides what a name resolves to;
- unless an allow entry (a CIDR, or a host name whose every address is then allowed)
  matches;
- and never when a deny entry matches, or for the monitor's own listening port.

The rules are applied to the addresses actually connected to (see fetch.py), so a name
that resolves differently between a check and the connection cannot get around them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from urllib.parse import urlsplit

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


def _networks(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ip_network(c) for c in cidrs)


# Refused by default, by class name (the name is the reason shown).
ADDRESS_CLASSES: dict[str, tuple[IPNetwork, ...]] = {
    "unspecified": _networks("0.0.0.0/8", "::/128"),
    "loopback": _networks("127.0.0.0/8", "::1/128"),
    "link-local": _networks("169.254.0.0/16", "fe80::/10"),
    "private": _networks(
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7", "fec0::/10"
    ),
    "multicast": _networks("224.0.0.0/4", "ff00::/8"),
    "reserved": _networks("240.0.0.0/4"),
}
_NAT64 = ip_network("64:ff9b::/96")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"^(?:\*\.)?(?:{_LABEL}\.)*{_LABEL}$")
_WILDCARDS = {"0.0.0.0", "::", ""}  # noqa: S104 - listen addresses, compared, not bound


def parse_address(text: str) -> IPAddress | None:
    """An IP address literal (brackets and zone allowed), or None for a host name."""
    try:
        return ip_address(text.strip("[]"))
    except ValueError:
        return None


def effective(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, 6to4), else itself."""
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def address_class(address: IPAddress) -> str | None:
    """The refused-by-default class of `address`, or None for a public one."""
    address = effective(address)
    for name, networks in ADDRESS_CLASSES.items():
        if any(address in network for network in networks):
            return name
    return None


def normalize_host(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


def parse_entry(text: str) -> IPNetwork | str:
    """One allow/deny entry: a CIDR or address, or a host name (`*.example.com` for any
    subdomain); raises ValueError."""
    entry = text.strip()
    try:
        return ip_network(entry.strip("[]"), strict=False)
    except ValueError:
        pass
    name = normalize_host(entry)
    if len(name) > 253 or not _HOST_NAME.match(name):
        raise ValueError(f"{text!r} is neither a CIDR, an IP address nor a host name")
    return name


@dataclass(frozen=True)
class Rules:
    """A parsed allow or deny list."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: tuple[str, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Rules:
        parsed = [parse_entry(e) for e in entries]
        return cls(
            tuple(p for p in parsed if not isinstance(p, str)),
            tuple(p for p in parsed if isinstance(p, str)),
        )

    def matches_host(self, host: str) -> bool:
        name = normalize_host(host)
        return any(
            name.endswith(pattern[1:]) if pattern.startswith("*.") else name == pattern
            for pattern in self.hosts
        )

    def matches_address(self, address: IPAddress) -> bool:
        candidates = {address, effective(address)}
        return any(a in n for n in self.networks for a in candidates if a.version == n.version)


# The ports this process listens on (the exporter and status page): never fetched, so a
# playlist cannot make the monitor call itself.
_own_listeners: set[tuple[str, int]] = set()


def listening(host: str, port: int) -> None:
    _own_listeners.add((normalize_host(host), port))


def stopped_listening(host: str, port: int) -> None:
    _own_listeners.discard((normalize_host(host), port))


def _is_own_listener(address: IPAddress, port: int) -> bool:
    for host, listen_port in _own_listeners:
        if listen_port != port:
            continue
        if host in _WILDCARDS:
            # Bound to every interface: any local address reaches it.
            if address_class(address) is not None:
                return True
        elif (listen := parse_address(host)) is not None and effective(listen) == effective(
            address
        ):
            return True
    return False


def trusted_classes(playback_url: str | None) -> frozenset[str]:
    """The refused classes the operator chose by naming such an address as playback URL."""
    if not playback_url:
        return frozenset()
    try:
        host = normalize_host(urlsplit(playback_url).hostname or "")
    except ValueError:
        return frozenset()
    if host == "localhost" or host.endswith(".localhost"):
        return frozenset({"loopback"})
    address = parse_address(host)
    cls = address_class(address) if address is not None else None
    return frozenset({cls}) if cls is not None else frozenset()


@dataclass(frozen=True)
class AddressPolicy:
    allow: Rules = Rules()
    deny: Rules = Rules()
    trusted: frozenset[str] = frozenset()

    def refuse_host(self, host: str) -> str | None:
        """Why a request to `host` is refused before any address is known, or None."""
        return "deny-listed host" if self.deny.matches_host(host) else None

    def refuse_address(self, host: str, address: IPAddress, port: int) -> str | None:
        """Why connecting to `address`:`port` for `host` is refused, or None."""
        if self.deny.matches_address(address):
            return "deny-listed address"
        if _is_own_listener(address, port):
            return "the monitor's own listening port"
        if self.allow.matches_host(host) or self.allow.matches_address(address):
            return None
        cls = address_class(address)
        if cls is not None and cls not in self.trusted:
            return f"{cls} address"
        return None
