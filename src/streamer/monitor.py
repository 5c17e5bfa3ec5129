"""`streamer monitor`: test sessions forever, for every configured stream, in one process.

Each stream loops: a session for `duration`, a pause of `grace_period`, again. Streams
start spread out over the first grace period so that they do not all publish at once.
Nothing a platform does ends the loop; SIGTERM/SIGINT end it within seconds, the running
sessions counted as `aborted`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import signal
import sys
import time
from pathlib import Path

import aiohttp

from streamer.config import (
    ConfigError,
    MonitorConfig,
    StreamConfig,
    environment,
    from_environment,
    load_file,
    parse_listen_address,
)
from streamer.events import FanOut
from streamer.livepeer.client import LivepeerAPIError
from streamer.livepeer.mode import ApiMode, api_mode, provisioner
from streamer.origin.embedded import EmbeddedOrigin
from streamer.session import Session, SessionSettings
from streamer.setup import clip_spec, flv_clip, labels, session_settings
from streamer.sinks.alerts import AlertManager, AlertSettings
from streamer.sinks.logs import LogSink, setup_logging
from streamer.sinks.metrics import MetricsSink
from streamer.sinks.notifiers import NotifyError, notifiers_from_env
from streamer.web.server import build_app, serve
from streamer.web.status import StatusStore, add_status_routes

log = logging.getLogger("streamer.monitor")

STOP_GRACE_SECONDS = 4.0


class Monitor:
    def __init__(
        self,
        config: MonitorConfig,
        sink: FanOut,
        metrics: MetricsSink,
        api_modes: dict[str, ApiMode] | None = None,
    ) -> None:
        self.config = config
        self.sink = sink
        self._metrics = metrics
        self._api_modes = api_modes or {}
        self._progress: dict[str, float] = {}

    def healthy(self) -> tuple[bool, str]:
        """Stuck = a stream whose loop has not moved for longer than a session could last."""
        now = time.monotonic()
        for stream in self.config.streams:
            last = self._progress.get(stream.name)
            limit = (
                stream.duration
                + stream.grace_period
                + stream.startup_timeout
                + stream.drain_timeout
                + stream.connect_timeout
                + 60
            )
            if last is not None and now - last > limit:
                return False, f"stream {stream.name!r} made no progress for {now - last:.0f}s"
        return True, "ok"

    async def run(self) -> None:
        async with aiohttp.ClientSession() as http:
            count = len(self.config.streams)
            tasks = [
                asyncio.create_task(
                    self._loop(stream, http, i * stream.grace_period / count),
                    name=f"stream-{stream.name}",
                )
                for i, stream in enumerate(self.config.streams)
            ]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self, stream: StreamConfig, http: aiohttp.ClientSession, offset: float) -> None:
        self._progress[stream.name] = time.monotonic()
        await asyncio.sleep(offset)
        flv = await asyncio.to_thread(flv_clip, clip_spec(stream.clip))
        settings = await self._settings(stream, http)
        while True:
            self._progress[stream.name] = time.monotonic()
            session = Session(
                settings,
                flv,
                clip_spec(stream.clip),
                self.sink,
                http,
            )
            try:
                await session.run()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end the stream's loop: log it, go on
                log.exception("session crashed", extra={"stream": stream.name})
            self._progress[stream.name] = time.monotonic()
            await asyncio.sleep(stream.grace_period)

    async def _settings(self, stream: StreamConfig, http: aiohttp.ClientSession) -> SessionSettings:
        mode = self._api_modes.get(stream.name)
        if mode is None:
            assert stream.ingest_url is not None and stream.playback_url is not None
            return session_settings(stream, stream.ingest_url, stream.playback_url)
        api = provisioner(
            stream,
            mode,
            http,
            lambda op, seconds: self._metrics.api_latency.labels(op).observe(seconds),
        )
        try:  # test streams left behind by a crashed run
            await api.delete_leftovers()
        except LivepeerAPIError as exc:
            log.warning(
                "could not clean up leftover test streams: %s", exc, extra={"stream": stream.name}
            )
        # The URLs are placeholders: the provisioner creates the real ones per session.
        return session_settings(
            stream,
            "rtmp://api.invalid/live/pending",
            "http://api.invalid/pending.m3u8",
            provisioner=api,
        )


def _load_config(args: argparse.Namespace) -> tuple[MonitorConfig, bool]:
    env = environment()
    path = args.config or env.get("STREAMER_CONFIG")
    config = load_file(Path(path), env) if path else from_environment(env)
    embedded = config is None
    if config is None:
        config = _embedded_config(env)
    if args.metrics_addr:
        config = config.model_copy(update={"metrics_addr": args.metrics_addr})
    parse_listen_address(config.metrics_addr)
    return config, embedded


def _embedded_config(env: dict[str, str]) -> MonitorConfig:
    # Ports and key are filled in once the embedded origin runs; short sessions so that a
    # first-time user sees numbers within a minute.
    entry = {
        "name": env.get("STREAM_NAME") or "embedded",
        "ingest_url": "rtmp://127.0.0.1:1/live/placeholder",
        "playback_url": "http://127.0.0.1:1/hls/placeholder/index.m3u8",
        "duration": env.get("DURATION") or "30s",
        "grace_period": env.get("GRACE_PERIOD") or "5s",
        "ingest_region": env.get("REGION") or "local",
        "playback_region": env.get("REGION") or "local",
    }
    try:
        return MonitorConfig.model_validate(
            {
                "streams": [entry],
                "metrics_addr": env.get("METRICS_ADDR") or "0.0.0.0:9090",
            }
        )
    except Exception as exc:
        raise ConfigError(f"environment: {exc}") from None


async def _main(
    config: MonitorConfig, embedded: bool, env: dict[str, str], api_modes: dict[str, ApiMode]
) -> int:
    metrics = MetricsSink()
    sink = FanOut([LogSink(), metrics])
    alerts: AlertManager | None = None
    notifiers = notifiers_from_env(env)
    if notifiers:
        alerts = AlertManager(notifiers, metrics.registry, AlertSettings.from_env(env))
        sink.add(alerts)
        log.info("alerting through %s", ", ".join(n.name for n in notifiers))
    alerts_task = asyncio.create_task(alerts.run()) if alerts is not None else None
    origin: EmbeddedOrigin | None = None
    if embedded:
        origin = EmbeddedOrigin()
        await origin.start()
        key = "embedded" + secrets.token_hex(8)
        stream = config.streams[0].model_copy(
            update={"ingest_url": origin.ingest_url(key), "playback_url": origin.playback_url(key)}
        )
        config = config.model_copy(update={"streams": [stream]})
        log.info("no ingest configured: monitoring the embedded origin (%s)", origin.describe())
    for stream in config.streams:
        metrics.register_stream(labels(stream))
    monitor = Monitor(config, sink, metrics, api_modes)
    status = StatusStore()
    for stream in config.streams:
        status.register_stream(labels(stream))
    sink.add(status)
    app = build_app(metrics.registry, monitor.healthy)
    add_status_routes(app, status)
    host, port = parse_listen_address(config.metrics_addr)
    runner = await serve(app, host, port)
    log.info("serving /metrics, /healthz, /readyz and the status page on %s:%d", host, port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    run_task = asyncio.create_task(monitor.run(), name="monitor")
    stop_task = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([run_task, stop_task], return_when=asyncio.FIRST_COMPLETED)
    finally:
        log.info("stopping")
        run_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError, Exception):
            async with asyncio.timeout(STOP_GRACE_SECONDS):
                await run_task
        stop_task.cancel()
        if alerts is not None and alerts_task is not None:
            await alerts.aclose(drain_seconds=2.0)
            alerts_task.cancel()
        await runner.cleanup()
        if origin is not None:
            await origin.stop()
    return 0


def monitor_command(args: argparse.Namespace) -> int:
    config, embedded = _load_config(args)
    env = environment()
    api_modes = {s.name: m for s in config.streams if (m := api_mode(s, env)) is not None}
    try:
        notifiers_from_env(env)  # a half-configured notifier is a configuration error
    except (ValueError, NotifyError) as exc:
        raise ConfigError(str(exc)) from None
    width = max(len(s.name) for s in config.streams)
    setup_logging(env.get("LOG_FORMAT", "auto"), name_width=min(max(width, 8), 24))
    try:
        return asyncio.run(_main(config, embedded, env, api_modes))
    except OSError as exc:
        print(f"streamer: cannot serve on {config.metrics_addr}: {exc.strerror}", file=sys.stderr)
        return 2
