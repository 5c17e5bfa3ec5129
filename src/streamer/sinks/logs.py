"""Structured logs: JSON lines off a terminal (containers), readable colour lines on one.

Every line about a session carries the stream name and the session id. Records are
written and flushed one by one: nothing waits in a buffer.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from streamer.events import (
    CheckFailed,
    CheckObserved,
    Event,
    FirstSegment,
    PublishConnected,
    RenditionDiscovered,
    SegmentObserved,
    SessionEnded,
    SessionStarted,
)
from streamer.untrusted import escape_controls

_EXTRA_KEYS = ("stream", "session_id", "rendition", "kind", "outcome")
_COLOURS = {"DEBUG": "2", "INFO": "36", "WARNING": "33", "ERROR": "31", "CRITICAL": "31;1"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in _EXTRA_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                document[key] = value
        if record.exc_info:
            document["exc"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, colour: bool, name_width: int = 12) -> None:
        super().__init__()
        self._colour = colour
        self._width = name_width

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        stream = escape_controls(str(getattr(record, "stream", "-")))
        stream = stream[: self._width].ljust(self._width)
        level = record.levelname[:4]
        if self._colour:
            level = f"\x1b[{_COLOURS.get(record.levelname, '0')}m{level}\x1b[0m"
            stream = f"\x1b[1m{stream}\x1b[0m"
        # One record, one line, no escape sequence but ours: whatever text a platform got
        # into the message cannot forge log lines or drive the terminal.
        line = f"{stamp} {level} {stream} {escape_controls(record.getMessage())}"
        if record.exc_info:
            trace = self.formatException(record.exc_info).split("\n")
            line += "\n" + "\n".join(escape_controls(part) for part in trace)
        return line


def setup_logging(
    log_format: str = "auto", level: int = logging.INFO, name_width: int = 12
) -> None:
    """`auto`: text with colour on a terminal, JSON otherwise."""
    use_json = log_format == "json" or (log_format == "auto" and not sys.stdout.isatty())
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter()
        if use_json
        else TextFormatter(colour=sys.stdout.isatty(), name_width=name_width)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class LogSink:
    """Logs the session's story: start, connect, first segment, failures, end."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("streamer.session")

    def handle(self, event: Event) -> None:
        extra: dict[str, Any] = {"stream": event.labels.stream, "session_id": event.session_id}
        log = self._log
        if isinstance(event, SessionStarted):
            log.info(
                "session started: publishing to %s, playing %s for %gs",
                event.ingest,
                event.playback,
                event.duration_seconds,
                extra=extra,
            )
        elif isinstance(event, PublishConnected):
            log.info("publish accepted", extra=extra)
        elif isinstance(event, RenditionDiscovered):
            log.info(
                "rendition %s (%s)",
                event.rendition,
                event.resolution or "?",
                extra={**extra, "rendition": event.rendition},
            )
        elif isinstance(event, FirstSegment):
            log.info("first segment after %.3fs", event.startup_latency_seconds, extra=extra)
        elif isinstance(event, SegmentObserved):
            latency = event.segment_latency_seconds
            log.debug(
                "segment %d of %s: latency %s",
                event.sequence,
                event.rendition,
                f"{latency:.3f}s" if latency is not None else "?",
                extra={**extra, "rendition": event.rendition},
            )
        elif isinstance(event, CheckFailed):
            log.warning(
                "%s%s: %s",
                event.kind,
                f" [{event.rendition}]" if event.rendition else "",
                event.detail,
                extra={**extra, "kind": event.kind, "rendition": event.rendition},
            )
        elif isinstance(event, CheckObserved):
            log.debug(
                "%s%s: %s",
                event.kind,
                f" [{event.rendition}]" if event.rendition else "",
                event.detail,
                extra={**extra, "kind": event.kind, "rendition": event.rendition},
            )
        elif isinstance(event, SessionEnded):
            startup = event.startup_latency_seconds
            log.log(
                logging.WARNING if event.outcome == "failure" else logging.INFO,
                "session ended: %s (startup %s)%s",
                event.outcome,
                f"{startup:.3f}s" if startup is not None else "-",
                f", failed: {', '.join(event.failed_kinds)}" if event.failed_kinds else "",
                extra={**extra, "outcome": event.outcome},
            )
