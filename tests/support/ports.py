"""Free loopback ports for the servers tests start."""

from __future__ import annotations

import os
import random
import socket
import time

# Below Linux's ephemeral range (32768-60999 by default): a server a test starts on port 0
# or an outgoing connection never takes one of these from under us.
_FIRST, _LAST = 20000, 32000


def _worker() -> tuple[int, int]:
    """This pytest-xdist worker's index and the number of workers ((0, 1) without xdist)."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return int(name.removeprefix("gw")), max(count, 1)


def free_port() -> int:
    """A port free now, TCP and UDP. Each pytest-xdist worker draws from its own slice of the
    range: two workers asking at the same moment are never handed the same port."""
    index, count = _worker()
    size = (_LAST - _FIRST) // count
    first = _FIRST + index * size
    while True:
        port = random.randrange(first, first + size)
        try:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")
