"""Terminal views: the probe's live progress and its final report table."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from streamer.events import (
    CheckFailed,
    Event,
    FirstSegment,
    PublishConnected,
    RenditionDiscovered,
    SegmentObserved,
    SessionStarted,
)


class LiveView:
    """A progress bar over the session and one row per rendition, redrawn as events arrive."""

    def __init__(self, duration_seconds: float, console: Console | None = None) -> None:
        self._console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=self._console,
        )
        self._task = self._progress.add_task("connecting", total=duration_seconds)
        self._status = "connecting"
        self._started: float | None = None
        self._rows: dict[str, dict[str, Any]] = {}
        self._errors = 0
        self._view = self._render()
        # Each refresh (4 a second, from rich's thread) advances the bar by the clock, so it
        # moves while no event arrives (e.g. waiting for the first segment).
        self._live = Live(
            console=self._console,
            refresh_per_second=4,
            transient=False,
            get_renderable=self._current,
        )

    def _current(self) -> Group:
        if self._started is not None:
            self._progress.update(self._task, completed=time.time() - self._started)
        return self._view

    def _render(self) -> Group:
        table = Table(box=None, header_style="bold")
        for column in ("rendition", "resolution", "segments", "latest latency", "listed"):
            table.add_column(column, justify="left" if column == "rendition" else "right")
        for name, row in sorted(self._rows.items()):
            latency = row.get("latency")
            listed = row.get("listed")
            table.add_row(
                Text(name),
                Text(row.get("resolution") or "?"),
                str(row.get("segments", 0)),
                f"{latency:.2f}s" if latency is not None else "-",
                f"{listed:.2f}s" if listed is not None else "-",
            )
        footer = Text(
            f"{self._status}   errors: {self._errors}", style="red" if self._errors else "green"
        )
        return Group(self._progress, table, footer)

    def handle(self, event: Event) -> None:
        if isinstance(event, SessionStarted):
            self._status = f"publishing to {event.ingest}"
        elif isinstance(event, PublishConnected):
            self._started = event.at
            self._status = "waiting for the first segment"
            self._progress.update(self._task, description="session")
        elif isinstance(event, FirstSegment):
            self._status = f"playing (startup {event.startup_latency_seconds:.2f}s)"
        elif isinstance(event, RenditionDiscovered):
            self._rows.setdefault(event.rendition, {})["resolution"] = event.resolution
        elif isinstance(event, SegmentObserved):
            row = self._rows.setdefault(event.rendition, {})
            row["segments"] = row.get("segments", 0) + 1
            row["resolution"] = row.get("resolution") or event.resolution
            row["latency"] = event.segment_latency_seconds
            row["listed"] = event.listed_latency_seconds
        elif isinstance(event, CheckFailed):
            self._errors += 1
        self._view = self._render()

    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.stop()


def _stat(values: dict[str, float] | None, key: str) -> str:
    return f"{values[key]:.3f}" if values else "-"


def render_report(document: dict[str, Any], out: TextIO) -> None:
    # Off a terminal (a pipe, a CI log) nothing must be cut to 80 columns.
    console = Console(file=out, highlight=False, width=None if out.isatty() else 160)
    outcome = document["outcome"]
    style = "green" if outcome == "success" else "red"
    startup = document["startup_latency_seconds"]
    console.print(Text(f"outcome: {outcome}", style=f"bold {style}"))
    console.print(
        f"startup latency: {startup:.3f}s" if startup is not None else "startup latency: -"
    )
    table = Table(title="renditions (seconds)")
    for column in (
        "rendition",
        "resolution",
        "segments",
        "latency p50",
        "p95",
        "max",
        "listed p50",
        "p95",
        "max",
        "duration min",
        "mean",
        "max",
    ):
        table.add_column(column, justify="left" if column == "rendition" else "right")
    for r in document["renditions"]:
        lat, listed, dur = (
            r["segment_latency_seconds"],
            r["listed_latency_seconds"],
            r["segment_duration_seconds"],
        )
        table.add_row(
            Text(r["name"]),
            Text(r["resolution"] or "?"),
            str(r["segments"]),
            _stat(lat, "p50"),
            _stat(lat, "p95"),
            _stat(lat, "max"),
            _stat(listed, "p50"),
            _stat(listed, "p95"),
            _stat(listed, "max"),
            _stat(dur, "min"),
            _stat(dur, "mean"),
            _stat(dur, "max"),
        )
    console.print(table)
    webrtc = document.get("webrtc")
    if webrtc is not None:
        _render_webrtc(console, webrtc)
    if document["errors"]:
        errors = Table(title="errors")
        for column in ("kind", "protocol", "rendition", "count", "detail"):
            errors.add_column(column)
        for e in document["errors"]:
            errors.add_row(
                Text(e["kind"]),
                Text(e.get("protocol") or "-"),
                Text(e["rendition"] or "-"),
                str(e["count"]),
                Text(e["detail"]),
            )
        console.print(errors)


def _seconds(value: float | None) -> str:
    return f"{value:.3f}s" if value is not None else "-"


def _render_webrtc(console: Console, webrtc: dict[str, Any]) -> None:
    """WebRTC's own figures, under the table where its units show as the `webrtc` row."""
    frames = webrtc["frame_latency_seconds"]
    console.print(
        f"webrtc: {webrtc['frames']} frames, glass-to-glass p50 {_stat(frames, 'p50')} "
        f"p95 {_stat(frames, 'p95')} max {_stat(frames, 'max')}; "
        f"startup {_seconds(webrtc['startup_latency_seconds'])}, "
        f"connect {_seconds(webrtc['connect_seconds'])}"
    )
    lost, received = webrtc["rtp_packets_lost"], webrtc["rtp_packets_received"]
    console.print(
        f"webrtc: {webrtc['freezes']} freeze(s), {webrtc['freeze_seconds']:.3f}s frozen; "
        f"RTP packets lost {lost} of {lost + received}"
    )
