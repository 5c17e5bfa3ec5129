"""`streamer monitor`: test sessions forever, for every configured stream, in one process.

Each stream loops: a session for `duration`, a pause of `grace_period`, again. Streams
start spread out over the first grace period so that they do not all publish at once.
Nothing a platform does ends the loop; SIGTERM/SIGINT end it within seconds, the running
sessions counted as `aborted`.

A stream loop that dies anyway (its setup failed: an unwritable clip cache, say) is logged
with its cause and traceback; the other streams go on, `/healthz` answers 503 naming it
(so that Kubernetes restarts the pod), and once no loop is left the monitor exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import secrets
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
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
from streamer.exit_codes import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from streamer.livepeer.client import LivepeerAPIError
from streamer.livepeer.mode import ApiMode, api_mode, provisioner
from streamer.livepeer.provision import LivepeerProvisioner
from streamer.origin.embedded import EmbeddedOrigin, OriginStartError
from streamer.publish.flv import FlvClip
from streamer.publish.registry import ingest_protocol
from streamer.session import Session, SessionSettings
from streamer.sharding import Shard, shard_setting
from streamer.sinks.alerts import AlertManager, AlertSettings
from streamer.sinks.logs import LogSink, setup_logging
from streamer.sinks.metrics import MetricsSink, stream_label_values
from streamer.sinks.notifiers import NotifyError, notifiers_from_env
from streamer.sinks.status import StatusStore
from streamer.testsignal.clip import ClipSpec
from streamer.urls import InvalidURLError
from streamer.web.server import build_app, serve
from streamer.web.status import StatusSettings, add_status_routes
from streamer.wiring import (
    clip_spec,
    fixed_target,
    flv_clip,
    labels,
    session_settings,
)

log = logging.getLogger("streamer.monitor")

STOP_GRACE_SECONDS = 4.0


HealthCheck = Callable[[], tuple[bool, str]]


class Monitor:
    def __init__(
        self,
        config: MonitorConfig,
        sink: FanOut,
        metrics: MetricsSink,
        api_modes: dict[str, ApiMode] | None = None,
        components: Sequence[HealthCheck] = (),
    ) -> None:
        self.config = config
        self.sink = sink
        self._metrics = metrics
        self._api_modes = api_modes or {}
        self._components = tuple(components)  # e.g. the embedded origin's supervisor
        self._progress: dict[str, float] = {}
        self._started: set[str] = set()  # loops past their setup, running sessions
        self._stopped: dict[str, str] = {}  # dead loops: stream name -> cause
        self._clips: dict[ClipSpec, asyncio.Task[FlvClip]] = {}

    @property
    def stopped(self) -> dict[str, str]:
        """Streams whose loop has ended, with the cause (secrets masked)."""
        return dict(self._stopped)

    def healthy(self) -> tuple[bool, str]:
        """Unhealthy: a stream loop died, a component is down, or a loop is stuck."""
        problems = [f"stream {name!r} stopped: {cause}" for name, cause in self._stopped.items()]
        for check in self._components:
            ok, detail = check()
            if not ok:
                problems.append(detail)
        problems.extend(self._stuck())
        return (False, "; ".join(problems)) if problems else (True, "ok")

    def ready(self) -> tuple[bool, str]:
        """Ready once every stream loop has started (clip loaded, target set up)."""
        if self._stopped:
            return False, "stopped: " + ", ".join(repr(name) for name in self._stopped)
        waiting = [s.name for s in self.config.streams if s.name not in self._started]
        if waiting:
            return False, "starting: " + ", ".join(repr(name) for name in waiting)
        return True, "ok"

    def _stuck(self) -> list[str]:
        """Stuck = a stream whose loop has not moved for longer than a session could last."""
        now = time.monotonic()
        stuck = []
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
            if stream.name not in self._stopped and last is not None and now - last > limit:
                stuck.append(f"stream {stream.name!r} made no progress for {now - last:.0f}s")
        return stuck

    async def run(self) -> None:
        """Runs every stream's loop; returns once none is left (each one that ended is
        logged and reported by `healthy()`)."""
        if not self.config.streams:
            # A shard with no streams still serves /metrics and /healthz, until stopped.
            await asyncio.Event().wait()
        async with aiohttp.ClientSession() as http:
            count = len(self.config.streams)
            tasks = {
                asyncio.create_task(
                    self._loop(stream, http, i * stream.grace_period / count),
                    name=f"stream-{stream.name}",
                ): stream
                for i, stream in enumerate(self.config.streams)
            }
            pending = set(tasks)
            try:
                while pending:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        self._loop_ended(tasks[task], task)
            finally:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                for clip in self._clips.values():
                    clip.cancel()

    def _loop_ended(self, stream: StreamConfig, task: asyncio.Task[None]) -> None:
        exc = None if task.cancelled() else task.exception()
        hidden = _stream_secrets(stream, self._api_modes.get(stream.name))
        if exc is None:
            cause = "cancelled" if task.cancelled() else "ended"
            trace = ""
        else:
            cause = _redact(f"{type(exc).__name__}: {exc}", hidden)[:_MAX_CAUSE]
            trace = "\n" + _redact("".join(traceback.format_exception(exc)), hidden).rstrip()
        self._stopped[stream.name] = cause
        running = len(self.config.streams) - len(self._stopped)
        log.error(
            "stream loop stopped (%d of %d streams still running): %s%s",
            running,
            len(self.config.streams),
            cause,
            trace,
            extra={"stream": stream.name},
        )

    async def _loop(self, stream: StreamConfig, http: aiohttp.ClientSession, offset: float) -> None:
        self._progress[stream.name] = time.monotonic()
        spec = clip_spec(stream.clip)
        flv = await self._clip(spec)
        settings = await self._settings(stream, http)
        self._started.add(stream.name)
        self._progress[stream.name] = time.monotonic()
        await asyncio.sleep(offset)  # spread the streams' sessions out
        while True:
            self._progress[stream.name] = time.monotonic()
            session = Session(settings, flv, spec, self.sink)
            try:
                await session.run()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end the stream's loop: log it, go on
                log.exception("session crashed", extra={"stream": stream.name})
            self._progress[stream.name] = time.monotonic()
            await asyncio.sleep(stream.grace_period)

    async def _clip(self, spec: ClipSpec) -> FlvClip:
        # One generation per clip, however many streams share it: encoding is expensive.
        task = self._clips.get(spec)
        if task is None:
            task = asyncio.create_task(asyncio.to_thread(flv_clip, spec), name="clip")
            self._clips[spec] = task
        return await asyncio.shield(task)

    async def _settings(self, stream: StreamConfig, http: aiohttp.ClientSession) -> SessionSettings:
        mode = self._api_modes.get(stream.name)
        if mode is None:
            return session_settings(stream, fixed_target(stream))
        api = provisioner(
            stream,
            mode,
            http,
            lambda op, seconds: self._metrics.api_latency.labels(op).observe(seconds),
        )
        await self._delete_leftovers(stream, api)
        return session_settings(stream, api)

    async def _delete_leftovers(self, stream: StreamConfig, api: LivepeerProvisioner) -> None:
        """Test streams left behind by a crashed run; best effort, never fatal."""
        try:
            await api.delete_leftovers()
        except LivepeerAPIError as exc:
            self._metrics.errors.labels(*stream_label_values(labels(stream)), "api_error", "").inc()
            log.warning(
                "api_error: could not clean up leftover test streams: %s",
                exc,
                extra={"stream": stream.name, "kind": "api_error"},
            )
        except Exception:  # a bug in the clean-up must not keep the stream from running
            log.exception("cleaning up leftover test streams failed", extra={"stream": stream.name})


_MAX_CAUSE = 300


def _stream_secrets(stream: StreamConfig, mode: ApiMode | None) -> tuple[str, ...]:
    found: list[str] = []
    if stream.ingest_url:
        with contextlib.suppress(InvalidURLError):
            found.extend(ingest_protocol(stream.ingest_url).secrets(stream.ingest_url))
    if stream.livepeer is not None and stream.livepeer.api_key is not None:
        found.append(stream.livepeer.api_key.get_secret_value())
    if mode is not None:
        found.append(mode.api_key)
    return tuple(s for s in found if s)


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "****")
    return text


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
        # HLS and WebRTC (WHEP) of the same stream, side by side.
        "playback": env.get("PLAYBACK_PROTOCOLS") or ["hls", "webrtc"],
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


@dataclass(frozen=True, kw_only=True)
class _Settings:
    """What the environment configures beside the streams, validated before start-up."""

    env: dict[str, str]
    api_modes: dict[str, ApiMode]
    alerts: AlertSettings
    status: StatusSettings


async def _main(config: MonitorConfig, embedded: bool, settings: _Settings) -> int:
    metrics = MetricsSink()
    sink = FanOut([LogSink(), metrics])
    alerts = _alert_manager(settings, metrics, sink)
    origin: EmbeddedOrigin | None = None
    if embedded:
        origin = EmbeddedOrigin()
        try:
            await origin.start()
        except OriginStartError as exc:
            log.error("the embedded origin did not start: %s", exc)
            await origin.stop()
            return EXIT_FAILURE
        config = _monitoring_origin(config, origin)
    for stream in config.streams:
        # Session series (tests, active) carry the session's own protocol; the others'
        # series appear with their first measurement.
        metrics.register_stream(labels(stream))
    components = [origin.health] if origin is not None else []
    monitor = Monitor(config, sink, metrics, settings.api_modes, components)
    runner = await _serve_web(config, monitor, metrics, sink, settings.status)
    if runner is None:
        if origin is not None:
            await origin.stop()
        return EXIT_USAGE
    try:
        signalled = await _run_until_stopped(monitor, alerts, origin)
    finally:
        await runner.cleanup()
        if origin is not None:
            await origin.stop()
    # A stopped stream loop is a crash, whether or not a signal ended the rest.
    return EXIT_FAILURE if monitor.stopped or not signalled else EXIT_OK


def _alert_manager(settings: _Settings, metrics: MetricsSink, sink: FanOut) -> AlertManager | None:
    """The alert manager, subscribed to the events, when a notifier is configured."""
    notifiers = notifiers_from_env(settings.env)
    if not notifiers:
        return None
    alerts = AlertManager(notifiers, metrics.registry, settings.alerts)
    sink.add(alerts)
    log.info("alerting through %s", ", ".join(n.name for n in notifiers))
    return alerts


def _monitoring_origin(config: MonitorConfig, origin: EmbeddedOrigin) -> MonitorConfig:
    """The configuration with its one stream pointed at the running embedded origin, played
    as LL-HLS: parts and segments both measured (the plain HLS beside it stays served)."""
    key = "embedded" + secrets.token_hex(8)
    stream = config.streams[0].model_copy(
        update={
            "ingest_url": origin.ingest_url(key),
            "playback_url": origin.ll_playback_url(key),
            "whep_url": origin.whep_url(key),
        }
    )
    log.info("no ingest configured: monitoring the embedded origin (%s)", origin.describe())
    return config.model_copy(update={"streams": [stream]})


async def _serve_web(
    config: MonitorConfig,
    monitor: Monitor,
    metrics: MetricsSink,
    sink: FanOut,
    status_settings: StatusSettings,
) -> aiohttp.web.AppRunner | None:
    """/metrics, the health probes and the status page; None when the address is unusable."""
    status = StatusStore()
    for stream in config.streams:
        status.register_stream(labels(stream))
    sink.add(status)
    app = build_app(metrics.registry, monitor.healthy, monitor.ready)
    add_status_routes(app, status, status_settings)
    host, port = parse_listen_address(config.metrics_addr)
    try:
        runner = await serve(app, host, port)
    except OSError as exc:
        print(f"streamer: cannot serve on {config.metrics_addr}: {exc.strerror}", file=sys.stderr)
        return None
    log.info("serving /metrics, /healthz, /readyz and the status page on %s:%d", host, port)
    return runner


async def _run_until_stopped(
    monitor: Monitor, alerts: AlertManager | None, origin: EmbeddedOrigin | None
) -> bool:
    """Runs the monitor until SIGTERM/SIGINT (True) or until it ends by itself (False), then
    stops it and its background tasks."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    background = [asyncio.create_task(alerts.run())] if alerts is not None else []
    if origin is not None:
        background.append(asyncio.create_task(origin.supervise(), name="origin-supervisor"))
    run_task = asyncio.create_task(monitor.run(), name="monitor")
    stop_task = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([run_task, stop_task], return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            _log_run_ended(run_task)
    finally:
        log.info("stopping")
        run_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError, Exception):
            async with asyncio.timeout(STOP_GRACE_SECONDS):
                await run_task
        stop_task.cancel()
        if alerts is not None:
            await alerts.aclose(drain_seconds=2.0)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
    return stop.is_set()


def _log_run_ended(run_task: asyncio.Task[None]) -> None:
    """The monitor's run ended by itself: every stream loop is gone."""
    exc = run_task.exception()
    if exc is not None:
        log.error("the monitor crashed", exc_info=exc)
    else:
        log.error("no stream loop is left: exiting with status %d", EXIT_FAILURE)


def _log_shard(shard: Shard, taken: Sequence[StreamConfig], total: int) -> None:
    if not taken:
        log.info(
            "shard %s (0-based) has none of the %d streams: serving /metrics and /healthz only",
            shard,
            total,
        )
        return
    names = ", ".join(stream.name for stream in taken)
    log.info("shard %s (0-based): %d of %d streams: %s", shard, len(taken), total, names)


def monitor_command(args: argparse.Namespace) -> int:
    config, embedded = _load_config(args)
    env = environment()
    shard = shard_setting(args.shard, env)
    all_streams = config.streams
    if shard is not None:
        if embedded:
            raise ConfigError(
                f"{'--shard' if args.shard else 'STREAMER_SHARD'}: sharding needs configured "
                "streams (--config or STREAMER_CONFIG), not the embedded origin"
            )
        config = config.model_copy(update={"streams": shard.select(config.streams)})
    api_modes = {s.name: m for s in config.streams if (m := api_mode(s, env)) is not None}
    try:
        notifiers_from_env(env)  # a half-configured notifier is a configuration error
        settings = _Settings(
            env=env,
            api_modes=api_modes,
            alerts=AlertSettings.from_env(env),
            status=StatusSettings.from_env(env),
        )
    except (ValueError, NotifyError) as exc:
        raise ConfigError(str(exc)) from None
    width = max((len(s.name) for s in config.streams), default=8)
    setup_logging(env.get("LOG_FORMAT", "auto"), name_width=min(max(width, 8), 24))
    if shard is not None:
        _log_shard(shard, config.streams, len(all_streams))
    # What is loaded by now (modules, classes, the configuration) lives as long as the
    # process: out of the collector's reach, a full collection no longer walks ~70,000
    # objects, a 30-40 ms stall of every stream's polls at once (docs/benchmarks.md).
    gc.freeze()
    return asyncio.run(_main(config, embedded, settings))
