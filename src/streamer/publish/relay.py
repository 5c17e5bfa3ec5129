"""A loopback relay between the FFmpeg publisher and the real ingest.

FFmpeg (inside PyAV) publishes plain RTMP to 127.0.0.1; the relay carries the bytes to the
ingest over TCP or verified TLS. Doing the network part in Python gives:
- RTMPS with real certificate checks (chain and host name), which PyAV's bundled FFmpeg
  never does;
- clear, typed errors for unknown hosts, refused connections, TLS failures and timeouts,
  raised before FFmpeg starts;
- a way to end a publish at once from the event loop, even when FFmpeg is blocked in a write.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl

from streamer.publish.errors import PublishError
from streamer.urls import IngestURL

_CHUNK = 64 * 1024


class IngestRelay:
    def __init__(self, ingest: IngestURL, *, connect_timeout: float, io_timeout: float,
                 tls_context: ssl.SSLContext | None = None) -> None:
        self._ingest = ingest
        self._connect_timeout = connect_timeout
        self._io_timeout = io_timeout
        self._tls_context = tls_context
        self._server: asyncio.Server | None = None
        self._upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()
        self.error: PublishError | None = None
        self.port = 0

    async def open(self) -> None:
        """Connects to the ingest and listens on a loopback port; raises PublishError."""
        self._upstream = await self._connect_upstream()
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _connect_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, port = self._ingest.host, self._ingest.port
        tls: ssl.SSLContext | None = None
        if self._ingest.secure:
            tls = self._tls_context or ssl.create_default_context()
        try:
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(self._connect_timeout):
                try:
                    await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                except socket.gaierror:
                    raise PublishError(f"unknown host {host}") from None
                return await asyncio.open_connection(
                    host, port, ssl=tls, server_hostname=host if tls else None
                )
        except PublishError:
            raise
        except TimeoutError:
            raise PublishError(f"timed out connecting to {host}:{port}") from None
        except ssl.SSLCertVerificationError as exc:
            raise PublishError(f"TLS certificate rejected: {exc.verify_message}") from None
        except ssl.SSLError as exc:
            raise PublishError(f"TLS handshake failed: {exc.reason or exc}") from None
        except ConnectionRefusedError:
            raise PublishError(f"connection refused by {host}:{port}") from None
        except OSError as exc:
            raise PublishError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._upstream is None or self._server is None:
            writer.close()
            return
        self._server.close()  # one publisher per relay
        up_reader, up_writer = self._upstream
        self._upstream = None
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer, "to ingest")),
            asyncio.create_task(self._pump(up_reader, writer, "from ingest")),
        ]
        self._tasks.update(pumps)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        for w in (writer, up_writer):
            w.close()
        self._closed.set()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    direction: str) -> None:
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    if direction == "from ingest" and self.error is None:
                        self.error = PublishError("ingest closed the connection")
                    return
                writer.write(data)
                async with asyncio.timeout(self._io_timeout):
                    await writer.drain()
        except TimeoutError:
            self.error = PublishError(f"ingest stopped reading for {self._io_timeout:g}s")
        except (ConnectionError, OSError) as exc:
            if direction == "from ingest" or self.error is None:
                self.error = PublishError(f"connection reset ({exc.__class__.__name__})")

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._upstream is not None:
            self._upstream[1].close()
            self._upstream = None
