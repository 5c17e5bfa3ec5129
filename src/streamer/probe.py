"""`streamer probe`: one test session, a live view while it runs, a report at the end."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

import aiohttp
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler

from streamer.cli import EXIT_FAILURE, EXIT_OK, print_json
from streamer.config import ConfigError, StreamConfig
from streamer.durations import parse_duration
from streamer.events import FanOut
from streamer.session import Session
from streamer.setup import clip_spec, flv_clip, session_settings
from streamer.sinks.report import SessionReport
from streamer.sinks.terminal import LiveView, render_report

_OPTION_NAMES = {
    "ingest_url": "--ingest-url",
    "playback_url": "--playback-url",
    "duration": "--duration",
    "startup_timeout": "--startup-timeout",
    "expected_renditions": "--expected-renditions",
    "name": "--name",
}


def _stream_from_args(args: argparse.Namespace) -> StreamConfig:
    for option in ("duration", "startup_timeout"):
        try:
            parse_duration(getattr(args, option))
        except ValueError as exc:
            raise ConfigError(f"{_OPTION_NAMES[option]}: {exc}") from None
    try:
        return StreamConfig.model_validate(
            {
                "name": args.name,
                "ingest_url": args.ingest_url,
                "playback_url": args.playback_url,
                "duration": args.duration,
                "startup_timeout": args.startup_timeout,
                "ingest_region": args.region,
                "playback_region": args.region,
                "expected_renditions": args.expected_renditions,
                "tls_ca_file": args.tls_ca_file,
            }
        )
    except ValidationError as exc:
        messages = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            message = str(error["msg"]).removeprefix("Value error, ")
            if not field:  # model-level: "injest_url: required ..."
                field, _, message = message.partition(": ")
                field = "ingest_url" if field == "injest_url" else field
            messages.append(f"{_OPTION_NAMES.get(field, field)}: {message}")
        raise ConfigError("; ".join(messages)) from None


async def _probe(stream: StreamConfig, live_console: Console | None) -> dict[str, Any]:
    """One session; with a console, a live view on it while the session runs."""
    assert stream.ingest_url is not None and stream.playback_url is not None
    flv = await asyncio.to_thread(flv_clip, clip_spec(stream.clip))
    report = SessionReport()
    sink = FanOut([report])
    view = LiveView(stream.duration, live_console) if live_console is not None else None
    if view is not None:
        sink.add(view)
    async with aiohttp.ClientSession() as http:
        session = Session(
            session_settings(stream, stream.ingest_url, stream.playback_url),
            flv,
            clip_spec(stream.clip),
            sink,
            http,
        )
        if view is None:
            await session.run()
        else:
            with view:
                await session.run()
    return report.document()


def probe_command(args: argparse.Namespace) -> int:
    stream = _stream_from_args(args)
    interactive = not args.json and sys.stderr.isatty()
    console = Console(stderr=True)
    if interactive:
        # Through the live view's console, so that a warning never tears the live view.
        handler: logging.Handler = RichHandler(console=console, show_path=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    document = asyncio.run(_probe(stream, console if interactive else None))
    if args.json:
        print_json(document)
    else:
        render_report(document, sys.stdout)
    return EXIT_OK if document["outcome"] == "success" else EXIT_FAILURE
