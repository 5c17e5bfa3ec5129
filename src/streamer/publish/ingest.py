"""The ingest seam: publish the test signal to a target and keep a send log.

An ingest protocol (RTMP/RTMPS, SRT; WebRTC WHIP next) is one module that
implements `IngestProtocol`, registered in `publish/registry.py` under its URL schemes. The
session only ever sees the `Ingest` it opens: connect, publish until told to stop, close,
and a send log mapping every frame to the wall-clock time it left. A failure of the
platform's ingest is a `PublishError` with a reason the session reports as
`publish_failed`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from streamer.publish.flv import FlvClip
from streamer.publish.publisher import FaultInjection
from streamer.publish.sendlog import SendLog
from streamer.testsignal.clip import ClipSpec


@dataclass(frozen=True, kw_only=True)
class LinkSample:
    """The ingest link as the sender sees it, sampled while publishing (SRT has it)."""

    at: float
    rtt_seconds: float
    packets_retransmitted: int  # since the previous sample
    packets_dropped: int  # since the previous sample: too late to send, past the latency
    send_buffer_bytes: int  # sent but not yet acknowledged


@dataclass(frozen=True, kw_only=True)
class IngestOptions:
    connect_timeout_seconds: float = 10.0
    io_timeout_seconds: float = 10.0
    tls_ca_file: str | None = None  # a private CA for TLS ingest (RTMPS)
    faults: FaultInjection | None = None  # test-only: frames withheld, audio shifted
    on_link_stats: Callable[[LinkSample], None] | None = None  # where link samples go


class Ingest(Protocol):
    """One publish of the test signal."""

    @property
    def send_log(self) -> SendLog: ...

    async def run(self, on_connected: Callable[[float], None] | None = None) -> None:
        """Publishes until `stop()`; calls `on_connected` with the wall-clock time the
        ingest accepted the first packet; raises PublishError when the ingest fails."""
        ...

    def stop(self) -> None:
        """Asks the publish to end cleanly (cancelling `run` ends it at once)."""
        ...


class IngestProtocol(Protocol):
    name: str  # the `ingest_protocol` label value
    schemes: tuple[str, ...]

    def validate(self, url: str) -> None:
        """Raises InvalidURLError (safe to show) when `url` cannot be published to."""
        ...

    def secrets(self, url: str) -> tuple[str, ...]:
        """What in `url` must never be shown (stream keys, passphrases)."""
        ...

    def mask(self, url: str) -> str:
        """`url` as it may be shown in logs, reports and pages."""
        ...

    def open(self, url: str, flv: FlvClip, clip: ClipSpec, options: IngestOptions) -> Ingest:
        """An ingest ready to `run`; raises InvalidURLError for an unusable URL."""
        ...
