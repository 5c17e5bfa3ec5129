"""A private network namespace in which 127.0.0.1 is also on an ordinary interface.

Janus gathers ICE candidates only on interfaces without the LOOPBACK flag (src/ice.c in
janus_ice_setup_local skips `IFF_LOOPBACK`; libnice does the same when left to choose),
and no setting changes that. To run it on 127.0.0.1 alone, the test thread moves into a
namespace of its own where a veth pair carries 127.0.0.1/32 as well as `lo`: Janus gathers
127.0.0.1 on the veth, and the kernel still delivers every packet for 127.0.0.1 through
loopback. Nothing outside the namespace is reachable or touched, and the namespace
disappears with the last process in it.

A network namespace belongs to a thread (and the processes it starts): everything the
test does in the block (its event loop's sockets, Janus, the session under test) runs in
the thread that entered it, which is moved back to its own namespace at the end.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
# The veth end that carries 127.0.0.1 (Janus's ICE enforce list names it).
INTERFACE = "loveth0"
_PEER = "loveth1"

_libc = ctypes.CDLL(None, use_errno=True)


class NamespaceError(RuntimeError):
    pass


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise NamespaceError(f"{what}: {os.strerror(errno)} (needs root: CAP_SYS_ADMIN)")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@contextlib.contextmanager
def private_loopback() -> Iterator[None]:
    """The calling thread in a fresh network namespace for the block (see the module)."""
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        try:
            _ip("link", "set", "lo", "up")
            _ip("link", "add", INTERFACE, "type", "veth", "peer", "name", _PEER)
            _ip("addr", "add", "127.0.0.1/32", "dev", INTERFACE)
            _ip("link", "set", _PEER, "up")
            _ip("link", "set", INTERFACE, "up")
            yield
        finally:
            _check(_libc.setns(original, CLONE_NEWNET), "setns back")
    finally:
        os.close(original)
