"""Alerting: turns session outcomes into "firing"/"resolved" notifications, per stream.

A stream fires after `alert_after_failures` consecutive failed sessions and resolves on the
next successful one: one message per state change, never one per failed session. Aborted
sessions (the monitor stopping, say) count neither way. With a state file (`alert_state`),
the streak and the firing alert survive a restart: saved before the message is queued, so a
restarted monitor resolves what fired and never triggers it twice.

`handle(event)` is synchronous and cheap, as the session expects of a sink; deliveries go
through a bounded queue to the `run()` worker, which the monitor starts as a task. A failing
notifier is logged and counted in `streamer_notify_errors_total{notifier}`; nothing here
raises into the monitor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import quote, urlsplit

from prometheus_client import CollectorRegistry, Counter

from streamer.events import (
    CheckFailed,
    Event,
    SegmentObserved,
    SessionEnded,
    SessionStarted,
    StreamLabels,
)
from streamer.sinks.alert_state import (
    AlertStateFile,
    StoredCheck,
    StoredStream,
    default_state_path,
)

_log = logging.getLogger(__name__)

AlertState = Literal["firing", "resolved"]

DEFAULT_ALERT_AFTER_FAILURES = 2
_MAX_CHECKS = 20  # bounds message sizes when every rendition fails every check
_MAX_DETAIL = 300
_UNKNOWN_KIND = "session_failed"  # a failed session that reported no check


@dataclass(frozen=True)
class FailedCheck:
    kind: str
    rendition: str | None
    detail: str


@dataclass(frozen=True)
class Alert:
    state: AlertState
    stream: str
    ingest_region: str
    playback_region: str
    failed_checks: tuple[FailedCheck, ...]  # resolved: the checks that had fired
    since: float  # epoch seconds of the first failure of the streak
    at: float  # epoch seconds of the state change
    consecutive_failures: int
    last_startup_latency_seconds: float | None  # of the latest session
    last_segment_latency_seconds: float | None  # of the latest session
    dashboard_url: str | None

    @property
    def dedup_key(self) -> str:
        """Stable per stream: one incident per stream in tools that group by key."""
        return f"streamer/{self.stream}"

    @property
    def failing_kinds(self) -> tuple[str, ...]:
        return tuple(sorted({check.kind for check in self.failed_checks}))

    def dedup_key_for(self, kind: str) -> str:
        """Stable per stream and check kind (one PagerDuty incident per failing check)."""
        return f"streamer/{self.stream}/{kind}"


class Notifier(Protocol):
    @property
    def name(self) -> str:
        """A short fixed name (discord, slack, ...): the `notifier` label of the metrics."""
        ...

    async def send(self, alert: Alert) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class AlertSettings:
    alert_after_failures: int = DEFAULT_ALERT_AFTER_FAILURES
    dashboard_url: str | None = None  # may hold "{stream}", replaced per stream
    state_file: Path | None = None  # None: alert state lives in memory only

    def __post_init__(self) -> None:
        if self.alert_after_failures < 1:
            raise ValueError("ALERT_AFTER_FAILURES must be at least 1")
        if self.dashboard_url is not None:
            parts = urlsplit(self.dashboard_url)
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                raise ValueError("DASHBOARD_URL must be an http(s) URL")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AlertSettings:
        raw = env.get("ALERT_AFTER_FAILURES", "").strip()
        try:
            after = int(raw) if raw else DEFAULT_ALERT_AFTER_FAILURES
        except ValueError:
            raise ValueError("ALERT_AFTER_FAILURES must be a whole number") from None
        state_file = env.get("ALERT_STATE_FILE", "").strip()
        return cls(
            after,
            env.get("DASHBOARD_URL", "").strip() or None,
            Path(state_file) if state_file else default_state_path(env),
        )

    def dashboard_for(self, stream: str) -> str | None:
        if self.dashboard_url is None:
            return None
        return self.dashboard_url.replace("{stream}", quote(stream, safe=""))


@dataclass
class _StreamState:
    labels: StreamLabels
    consecutive_failures: int = 0
    since: float | None = None
    firing: Alert | None = None
    checks: dict[str, list[FailedCheck]] = field(default_factory=dict)  # by session id
    first_failure_at: dict[str, float] = field(default_factory=dict)  # by session id
    last_startup: float | None = None
    last_segment: float | None = None

    @property
    def clean(self) -> bool:
        return self.consecutive_failures == 0 and self.firing is None

    def stored(self, now: float) -> StoredStream:
        firing = self.firing
        return StoredStream(
            ingest_region=self.labels.ingest_region,
            playback_region=self.labels.playback_region,
            consecutive_failures=self.consecutive_failures,
            since=self.since,
            firing_at=firing.at if firing is not None else None,
            firing_checks=tuple(
                StoredCheck(kind=c.kind, rendition=c.rendition, detail=c.detail)
                for c in (firing.failed_checks if firing is not None else ())
            ),
            updated_at=now,
        )


class AlertManager:
    def __init__(
        self,
        notifiers: Sequence[Notifier],
        registry: CollectorRegistry,
        settings: AlertSettings | None = None,
        *,
        queue_size: int = 100,
    ) -> None:
        self.notifiers = list(notifiers)
        self.settings = settings or AlertSettings()
        self._streams: dict[str, _StreamState] = {}
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=queue_size)
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self._errors = Counter(
            "streamer_notify_errors",
            "Alert notifications that could not be delivered, by notifier.",
            ["notifier"],
            registry=registry,
        )
        self._dropped = Counter(
            "streamer_alerts_dropped",
            "Alerts dropped because the notification queue was full or closed.",
            registry=registry,
        )
        for notifier in self.notifiers:
            self._errors.labels(notifier.name)  # the series exists at 0 from the start
        path = self.settings.state_file
        self._state_file = AlertStateFile(path) if path is not None else None
        if self._state_file is not None:
            self._restore(self._state_file.load())

    def _restore(self, stored: dict[str, StoredStream]) -> None:
        for stream, entry in stored.items():
            state = _StreamState(
                StreamLabels(stream, entry.ingest_region, entry.playback_region),
                consecutive_failures=entry.consecutive_failures,
                since=entry.since,
            )
            if entry.firing_at is not None:
                checks = tuple(
                    FailedCheck(c.kind, c.rendition, c.detail) for c in entry.firing_checks
                )
                state.firing = self._alert(state, "firing", entry.firing_at, checks)
            self._streams[stream] = state
        if stored:
            firing = sorted(name for name, state in self._streams.items() if state.firing)
            _log.info(
                "alert state restored for %d stream(s); firing: %s",
                len(stored),
                ", ".join(firing) or "none",
            )

    def is_firing(self, stream: str) -> bool:
        state = self._streams.get(stream)
        return state is not None and state.firing is not None

    # -- the event sink -------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        try:
            self._handle(event)
        except Exception:
            _log.exception("alerting failed on a %s event", type(event).__name__)

    def _handle(self, event: Event) -> None:
        stream = event.labels.stream
        state = self._streams.get(stream)
        if state is None:
            state = self._streams[stream] = _StreamState(event.labels)
        state.labels = event.labels
        if isinstance(event, SessionStarted):
            # Forget sessions that never ended (a crash): their checks are stale.
            state.checks.clear()
            state.first_failure_at.clear()
            state.last_segment = None
        elif isinstance(event, CheckFailed):
            detail = event.detail[:_MAX_DETAIL]
            state.checks.setdefault(event.session_id, []).append(
                FailedCheck(event.kind, event.rendition, detail)
            )
            state.first_failure_at.setdefault(event.session_id, event.at)
        elif isinstance(event, SegmentObserved):
            if event.segment_latency_seconds is not None:
                state.last_segment = event.segment_latency_seconds
        elif isinstance(event, SessionEnded):
            self._session_ended(state, event)

    def _session_ended(self, state: _StreamState, event: SessionEnded) -> None:
        checks = state.checks.pop(event.session_id, [])
        first_at = state.first_failure_at.pop(event.session_id, event.at)
        if event.outcome == "aborted":
            return
        state.last_startup = event.startup_latency_seconds
        if event.outcome == "success":
            if state.clean:
                return  # the common case: nothing to save
            resolved = None
            if state.firing is not None:
                resolved = self._alert(state, "resolved", event.at, state.firing.failed_checks)
            state.firing = None
            state.consecutive_failures = 0
            state.since = None
            self._save(state, event.at)
            if resolved is not None:
                self._enqueue(resolved)
            return
        state.consecutive_failures += 1
        if state.since is None:
            state.since = min(first_at, event.at)
        fired = None
        if (
            state.firing is None
            and state.consecutive_failures >= self.settings.alert_after_failures
        ):
            fired = state.firing = self._alert(state, "firing", event.at, _summarise(checks, event))
        self._save(state, event.at)  # before queueing: a crash now cannot trigger twice
        if fired is not None:
            self._enqueue(fired)

    def _save(self, state: _StreamState, now: float) -> None:
        if self._state_file is not None:
            entry = None if state.clean else state.stored(now)
            self._state_file.save(state.labels.stream, entry, now)

    def _alert(
        self, state: _StreamState, kind: AlertState, at: float, checks: tuple[FailedCheck, ...]
    ) -> Alert:
        labels = state.labels
        return Alert(
            state=kind,
            stream=labels.stream,
            ingest_region=labels.ingest_region,
            playback_region=labels.playback_region,
            failed_checks=checks,
            since=state.since if state.since is not None else at,
            at=at,
            consecutive_failures=state.consecutive_failures,
            last_startup_latency_seconds=state.last_startup,
            last_segment_latency_seconds=state.last_segment,
            dashboard_url=self.settings.dashboard_for(labels.stream),
        )

    def _enqueue(self, alert: Alert) -> None:
        _log.info("alert %s for stream %s", alert.state, alert.stream)
        if not self.notifiers:
            return
        if self._closed:
            self._dropped.inc()
            _log.warning("alert for stream %s dropped: alerting is closed", alert.stream)
            return
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            self._dropped.inc()
            _log.warning("alert for stream %s dropped: notification queue full", alert.stream)

    # -- delivery -------------------------------------------------------------------------

    async def run(self) -> None:
        """Delivers queued alerts until cancelled; start it as a task next to the sessions."""
        if self._closed:  # started after aclose() (which then delivered the queue itself)
            return
        self._worker = asyncio.current_task()
        while True:
            alert = await self._queue.get()
            try:
                await self._deliver(alert)
            finally:
                self._queue.task_done()

    async def aclose(self, drain_seconds: float = 10.0) -> None:
        """Delivers what is queued (for up to `drain_seconds`), stops the worker, closes
        the notifiers."""
        self._closed = True
        worker = self._worker
        try:
            if worker is not None and not worker.done():
                await asyncio.wait_for(self._queue.join(), drain_seconds)
            else:
                await asyncio.wait_for(self._drain(), drain_seconds)
        except TimeoutError:
            _log.warning("alerting closed with %d undelivered alert(s)", self._queue.qsize())
        if worker is not None and worker is not asyncio.current_task():
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        for notifier in self.notifiers:
            try:
                await notifier.aclose()
            except Exception as exc:
                _log.warning("notifier %s did not close cleanly (%s)", notifier.name, type(exc))

    async def _drain(self) -> None:
        while not self._queue.empty():
            alert = self._queue.get_nowait()
            try:
                await self._deliver(alert)
            finally:
                self._queue.task_done()

    async def _deliver(self, alert: Alert) -> None:
        # Concurrently, so one slow notifier (rate limited) does not hold back the others;
        # one alert at a time, so each notifier sees firing before resolved.
        await asyncio.gather(*(self._send(n, alert) for n in self.notifiers))

    async def _send(self, notifier: Notifier, alert: Alert) -> None:
        try:
            await notifier.send(alert)
        except Exception as exc:
            self._errors.labels(notifier.name).inc()
            # NotifyError messages are safe; other exceptions may quote a URL: type only.
            reason = str(exc) if getattr(exc, "safe_to_log", False) else type(exc).__name__
            _log.warning(
                "notifier %s failed to send the %s alert of stream %s: %s",
                notifier.name,
                alert.state,
                alert.stream,
                reason,
            )


def _summarise(checks: list[FailedCheck], event: SessionEnded) -> tuple[FailedCheck, ...]:
    """The session's failed checks, one per (kind, rendition), every kind kept when capping."""
    unique: dict[tuple[str, str | None], FailedCheck] = {}
    for check in checks:
        unique.setdefault((check.kind, check.rendition), check)
    for kind in event.failed_kinds:
        if all(check.kind != kind for check in unique.values()):
            unique[(kind, None)] = FailedCheck(kind, None, "")
    if not unique:
        unique[(_UNKNOWN_KIND, None)] = FailedCheck(_UNKNOWN_KIND, None, "")
    first_of_kind: dict[str, FailedCheck] = {}
    for check in unique.values():
        first_of_kind.setdefault(check.kind, check)
    rest = [c for c in unique.values() if c not in first_of_kind.values()]
    kept = list(first_of_kind.values())
    return tuple(kept + rest[: max(0, _MAX_CHECKS - len(kept))])
