"""`streamer probe`: one test session, a live view while it runs, a report at the end.

The stream is configured as the monitor would configure it (see probe_config.py); in
Livepeer API mode the session creates its test stream through the API and deletes it at the
end whatever happens, Ctrl-C and SIGTERM included: they abort the session, which still
gives its stream back and reports what it saw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys

import aiohttp
from rich.console import Console
from rich.logging import RichHandler

from streamer.config import StreamConfig, environment
from streamer.events import FanOut
from streamer.exit_codes import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED
from streamer.livepeer.mode import ApiMode, api_mode, provisioner
from streamer.probe_config import probe_stream
from streamer.session import Session, SessionSettings
from streamer.sinks.report import SessionReport
from streamer.sinks.terminal import LiveView, render_report
from streamer.wiring import clip_spec, fixed_target, flv_clip, session_settings

_EXIT_ON_SIGNAL = {signal.SIGINT: EXIT_INTERRUPTED, signal.SIGTERM: EXIT_TERMINATED}


def _settings(
    stream: StreamConfig, mode: ApiMode | None, http: aiohttp.ClientSession
) -> SessionSettings:
    if mode is None:
        return session_settings(stream, fixed_target(stream))
    # As the monitor does, minus its clean-up of leftover test streams: a probe run beside a
    # monitor of the same stream name would delete the monitor's running test stream.
    return session_settings(stream, provisioner(stream, mode, http))


async def _run_until_signal(session: Session) -> signal.Signals | None:
    """Runs the session; the first SIGINT or SIGTERM aborts it and is returned. Later ones
    are ignored, so that the session's clean-up (deleting an API test stream) completes."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(session.run())
    received: list[signal.Signals] = []

    def abort(signum: signal.Signals) -> None:
        if not received:
            received.append(signum)
            task.cancel()

    for signum in _EXIT_ON_SIGNAL:
        loop.add_signal_handler(signum, abort, signum)
    try:
        await task
    except asyncio.CancelledError:
        if not received:
            raise
    finally:
        for signum in _EXIT_ON_SIGNAL:
            loop.remove_signal_handler(signum)
    return received[0] if received else None


async def _probe(
    stream: StreamConfig, mode: ApiMode | None, report: SessionReport, live: Console | None
) -> signal.Signals | None:
    """One session into `report`; with a console, a live view on it while it runs."""
    flv = await asyncio.to_thread(flv_clip, clip_spec(stream.clip))
    sink = FanOut([report])
    view = LiveView(stream.duration, live) if live is not None else None
    if view is not None:
        sink.add(view)
    async with aiohttp.ClientSession() as http:
        session = Session(_settings(stream, mode, http), flv, clip_spec(stream.clip), sink)
        if view is None:
            return await _run_until_signal(session)
        with view:
            return await _run_until_signal(session)


def probe_command(args: argparse.Namespace) -> int:
    env = environment()
    stream = probe_stream(args, env)
    mode = api_mode(stream, env)  # checks the API key before anything runs
    interactive = not args.json and sys.stderr.isatty()
    console = Console(stderr=True)
    if interactive:
        # Through the live view's console, so that a warning never tears the live view.
        handler: logging.Handler = RichHandler(console=console, show_path=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    report = SessionReport()
    stopped_by = asyncio.run(_probe(stream, mode, report, console if interactive else None))
    document = report.document()
    if args.json:
        print_json(document)
    else:
        render_report(document, sys.stdout)
    if stopped_by is not None:
        return _EXIT_ON_SIGNAL[stopped_by]
    return EXIT_OK if document["outcome"] == "success" else EXIT_FAILURE


def print_json(document: object) -> None:
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
    sys.stdout.flush()
