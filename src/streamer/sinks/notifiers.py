"""Notifiers: deliver an `Alert` to Discord, Slack, a signed generic webhook, PagerDuty.

All of them post JSON with aiohttp, keep a minimum interval between their posts, and honour
HTTP 429 `Retry-After` by waiting and retrying a bounded number of times. Any other failure
raises `NotifyError`, whose text has the status but never the URL: webhook URLs and routing
keys are secrets. So are their reprs.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp

from streamer.credentials import load_secret
from streamer.http_body import BodyTooLargeError, read_capped
from streamer.sinks.alerts import Alert, Notifier

_log = logging.getLogger(__name__)

DEFAULT_MIN_INTERVAL = 1.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_MAX_RETRY_AFTER = 60.0
_MAX_ANSWER_BYTES = 64 << 10  # a receiver's answer is only read for a 429's retry hint
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SIGNATURE_HEADER = "X-Streamer-Signature"
TIMESTAMP_HEADER = "X-Streamer-Timestamp"
DISCORD_LIMIT = 2000
SLACK_LIMIT = 3000  # a section block's limit; longer texts are cut


class NotifyError(Exception):
    """A notification not delivered. The text names the notifier and status, never the URL."""

    safe_to_log = True  # AlertManager logs the text of errors that carry this flag

    def __init__(self, notifier: str, status: int | None, message: str) -> None:
        self.notifier = notifier
        self.status = status
        text = f"HTTP {status} {message}" if status is not None else message
        super().__init__(f"{notifier}: {text}")


# -- message text ----------------------------------------------------------------------------


def iso_time(epoch_seconds: float) -> str:
    return (
        datetime.fromtimestamp(epoch_seconds, UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z")
    )


def _regions(alert: Alert) -> str:
    if alert.ingest_region == alert.playback_region:
        return f"region {alert.ingest_region}"
    return f"ingest region {alert.ingest_region}, playback region {alert.playback_region}"


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def _duration(seconds: float) -> str:
    minutes = max(0, round(seconds / 60))
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def summary(alert: Alert) -> str:
    """One line: what a pager or a notification preview shows."""
    if alert.state == "firing":
        kinds = ", ".join(alert.failing_kinds)
        return (
            f"FIRING: stream {alert.stream} ({_regions(alert)}) failing since "
            f"{iso_time(alert.since)}: {kinds}"
        )
    return (
        f"RESOLVED: stream {alert.stream} ({_regions(alert)}) healthy again after "
        f"{_duration(alert.at - alert.since)}"
    )


def format_text(alert: Alert) -> str:
    """The full message: stream, regions, failed checks with details, since, latencies, link."""
    lines = [summary(alert)]
    if alert.state == "firing":
        lines.append(f"{alert.consecutive_failures} failed sessions in a row. Failed checks:")
        for check in alert.failed_checks:
            where = f" [{check.rendition}]" if check.rendition else ""
            detail = f": {check.detail}" if check.detail else ""
            lines.append(f"- {check.kind}{where}{detail}")
    else:
        lines.append(
            f"Had been failing since {iso_time(alert.since)}: {', '.join(alert.failing_kinds)}"
        )
    lines.append(
        f"Last startup latency: {_seconds(alert.last_startup_latency_seconds)}; "
        f"last segment latency: {_seconds(alert.last_segment_latency_seconds)}"
    )
    if alert.dashboard_url:
        lines.append(f"Dashboard: {alert.dashboard_url}")
    return "\n".join(lines)


def split_message(text: str, limit: int = DISCORD_LIMIT) -> list[str]:
    """Chunks of at most `limit` characters, cut at line ends where a line fits."""
    chunks: list[str] = []
    current = ""
    for full_line in text.split("\n"):
        line = full_line
        while len(line) > limit:  # a line longer than a message: hard cut
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            chunks.append(current)
            candidate = line
        current = candidate
    if current:
        chunks.append(current)
    return chunks


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The alert as plain JSON (the generic webhook's body, PagerDuty's custom details)."""
    return {
        "state": alert.state,
        "stream": alert.stream,
        "ingest_region": alert.ingest_region,
        "playback_region": alert.playback_region,
        "failed_checks": [
            {"kind": c.kind, "rendition": c.rendition, "detail": c.detail}
            for c in alert.failed_checks
        ],
        "since": iso_time(alert.since),
        "at": iso_time(alert.at),
        "consecutive_failures": alert.consecutive_failures,
        "last_startup_latency_seconds": alert.last_startup_latency_seconds,
        "last_segment_latency_seconds": alert.last_segment_latency_seconds,
        "dashboard_url": alert.dashboard_url,
        "dedup_key": alert.dedup_key,
        "summary": summary(alert),
    }


def sign(body: bytes, secret: str) -> str:
    """The `X-Streamer-Signature` value: sha256=<hex HMAC-SHA256 of the raw body>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# -- HTTP delivery ---------------------------------------------------------------------------


def _check_url(url: str, what: str) -> str:
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"{what} is not a valid URL") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"{what} must be an http(s) URL")
    return url.strip()


def _retry_after(header: str | None, body: bytes) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or an HTTP date), or Discord's body."""
    if header:
        try:
            seconds = float(header)
        except ValueError:
            try:
                seconds = (parsedate_to_datetime(header) - datetime.now(UTC)).total_seconds()
            except (TypeError, ValueError):
                seconds = math.nan
        if math.isfinite(seconds):
            return max(0.0, seconds)
    try:
        value = json.loads(body).get("retry_after")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return None
    if isinstance(value, int | float) and math.isfinite(value):
        return max(0.0, float(value))
    return None


class _HTTPNotifier:
    """Posting with spacing and 429 handling; subclasses build the bodies."""

    name: ClassVar[str]

    def __init__(
        self,
        url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        min_interval: float = DEFAULT_MIN_INTERVAL,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        timeout: float = 10.0,
    ) -> None:
        self._url = _check_url(url, f"the {self.name} URL")
        self._session = session
        self._owns_session = session is None
        self._min_interval = min_interval
        self._max_retries = max_retries
        self._max_retry_after = max_retry_after
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._lock = asyncio.Lock()
        self._last_post = -math.inf

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<url hidden>)"

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def _post_json(self, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        await self._post(json.dumps(payload).encode(), headers or {})

    async def _post(self, body: bytes, headers: Mapping[str, str]) -> None:
        async with self._lock:  # one post at a time per notifier: order and spacing
            for attempt in range(self._max_retries + 1):
                wait = self._last_post + self._min_interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._last_post = time.monotonic()
                status, reason, retry_after = await self._request(body, headers)
                if 200 <= status < 300:
                    return
                if status != 429:
                    raise NotifyError(self.name, status, reason)
                if attempt == self._max_retries:
                    break
                delay = retry_after if retry_after is not None else max(1.0, self._min_interval)
                if delay > self._max_retry_after:
                    raise NotifyError(self.name, 429, f"rate limited for {delay:g} s")
                _log.info("%s rate limited: retrying in %.1f s", self.name, delay)
                await asyncio.sleep(delay)
            raise NotifyError(
                self.name, 429, f"still rate limited after {self._max_retries} retries"
            )

    async def _request(
        self, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, str, float | None]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        all_headers = {"Content-Type": "application/json", **headers}
        try:
            async with self._session.post(
                self._url,
                data=body,
                headers=all_headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                try:  # only a 429's Retry-After hint is read from the body
                    raw = await read_capped(response.content, _MAX_ANSWER_BYTES)
                except BodyTooLargeError:
                    raw = b""
                retry = None
                if response.status == 429:
                    retry = _retry_after(response.headers.get("Retry-After"), raw)
                return response.status, response.reason or "", retry
        except TimeoutError:
            raise NotifyError(self.name, None, "timeout") from None
        except aiohttp.ClientError as exc:
            # aiohttp's messages can quote the URL (the secret): keep only the type.
            raise NotifyError(
                self.name, None, f"connection failed ({type(exc).__name__})"
            ) from None


class DiscordNotifier(_HTTPNotifier):
    name = "discord"

    async def send(self, alert: Alert) -> None:
        for chunk in split_message(format_text(alert), DISCORD_LIMIT):
            # No pings from text the platform put into check details.
            await self._post_json({"content": chunk, "allowed_mentions": {"parse": []}})


class SlackNotifier(_HTTPNotifier):
    name = "slack"

    async def send(self, alert: Alert) -> None:
        text = format_text(alert)
        if len(text) > SLACK_LIMIT:
            text = text[: SLACK_LIMIT - 1] + "…"
        # Slack reads <...> as links and mentions (<!channel>): escape as Slack documents.
        escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        await self._post_json({"text": escaped})


class WebhookNotifier(_HTTPNotifier):
    """JSON body of the alert, signed: `X-Streamer-Signature: sha256=<HMAC of the body>`.

    The body carries `sent_at` too, so a receiver can refuse replays of old deliveries.
    """

    name = "webhook"

    def __init__(self, url: str, secret: str, **options: Any) -> None:
        if not secret:
            raise ValueError("the webhook secret is empty")
        super().__init__(url, **options)
        self._secret = secret

    async def send(self, alert: Alert) -> None:
        now = time.time()
        payload = {**alert_payload(alert), "sent_at": iso_time(now)}
        body = json.dumps(payload).encode()
        headers = {SIGNATURE_HEADER: sign(body, self._secret), TIMESTAMP_HEADER: str(int(now))}
        await self._post(body, headers)


class PagerDutyNotifier(_HTTPNotifier):
    """Events API v2: one trigger per failing check kind, each resolved on recovery."""

    name = "pagerduty"

    def __init__(
        self,
        routing_key: str,
        events_url: str = PAGERDUTY_EVENTS_URL,
        *,
        severity: str = "error",
        **options: Any,
    ) -> None:
        if not routing_key:
            raise ValueError("the PagerDuty routing key is empty")
        if severity not in {"critical", "error", "warning", "info"}:
            raise ValueError("PagerDuty severity must be critical, error, warning or info")
        super().__init__(events_url, **options)
        self._routing_key = routing_key
        self._severity = severity

    def __repr__(self) -> str:
        return "PagerDutyNotifier(<routing key hidden>)"

    async def send(self, alert: Alert) -> None:
        errors: list[NotifyError] = []
        for kind in alert.failing_kinds:
            try:
                await self._post_json(self.event(alert, kind))
            except NotifyError as exc:
                errors.append(exc)  # the other kinds still get their event
        if errors:
            raise errors[0]

    def event(self, alert: Alert, kind: str) -> dict[str, Any]:
        event: dict[str, Any] = {
            "routing_key": self._routing_key,
            "event_action": "trigger" if alert.state == "firing" else "resolve",
            "dedup_key": alert.dedup_key_for(kind),
        }
        if alert.state == "resolved":
            return event
        checks = [c for c in alert.failed_checks if c.kind == kind]
        detail = next((c.detail for c in checks if c.detail), "")
        text = f"streamer: {kind} failing on stream {alert.stream} ({_regions(alert)})"
        if detail:
            text += f": {detail}"
        event["payload"] = {
            "summary": text[:1024],
            "source": f"streamer/{alert.stream}",
            "severity": self._severity,
            "component": alert.stream,
            "group": alert.ingest_region,
            "class": kind,
            "custom_details": alert_payload(alert),
        }
        event["client"] = "streamer"
        if alert.dashboard_url:
            event["links"] = [{"href": alert.dashboard_url, "text": "Dashboard"}]
        return event


def notifiers_from_env(
    env: Mapping[str, str],
    *,
    session: aiohttp.ClientSession | None = None,
    min_interval: float = DEFAULT_MIN_INTERVAL,
) -> list[Notifier]:
    """Notifiers for what the environment configures; each secret may come from `NAME_FILE`.

    DISCORD_WEBHOOK_URL, SLACK_WEBHOOK_URL, WEBHOOK_URL + WEBHOOK_SECRET,
    PAGERDUTY_ROUTING_KEY (+ PAGERDUTY_EVENTS_URL, PAGERDUTY_SEVERITY).
    """
    options: dict[str, Any] = {"session": session, "min_interval": min_interval}
    notifiers: list[Notifier] = []
    if url := load_secret(env, "DISCORD_WEBHOOK_URL"):
        notifiers.append(DiscordNotifier(_check_url(url, "DISCORD_WEBHOOK_URL"), **options))
    if url := load_secret(env, "SLACK_WEBHOOK_URL"):
        notifiers.append(SlackNotifier(_check_url(url, "SLACK_WEBHOOK_URL"), **options))
    if url := load_secret(env, "WEBHOOK_URL"):
        secret = load_secret(env, "WEBHOOK_SECRET")
        if not secret:
            raise ValueError("WEBHOOK_URL is set but WEBHOOK_SECRET is not: deliveries are signed")
        notifiers.append(WebhookNotifier(_check_url(url, "WEBHOOK_URL"), secret, **options))
    if key := load_secret(env, "PAGERDUTY_ROUTING_KEY"):
        events_url = env.get("PAGERDUTY_EVENTS_URL", "").strip() or PAGERDUTY_EVENTS_URL
        severity = env.get("PAGERDUTY_SEVERITY", "").strip() or "error"
        notifiers.append(
            PagerDutyNotifier(
                key,
                _check_url(events_url, "PAGERDUTY_EVENTS_URL"),
                severity=severity,
                **options,
            )
        )
    return notifiers
