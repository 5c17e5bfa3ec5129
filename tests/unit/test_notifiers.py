"""Notifiers posting to a local receiver (tests/support/fake_webhooks.py)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from streamer.events import SessionEnded, SessionStarted, StreamLabels
from streamer.sinks.alerts import Alert, AlertManager, AlertSettings, FailedCheck
from streamer.sinks.notifiers import (
    DiscordNotifier,
    NotifyError,
    PagerDutyNotifier,
    SlackNotifier,
    WebhookNotifier,
    format_text,
    notifiers_from_env,
)
from tests.support.fake_webhooks import FakeWebhooks, verify_signature
from tests.support.ports import free_port

DISCORD = "/discord/api/webhooks/1234/DISCORDTOKEN"
SLACK = "/slack/services/T000/B000/SLACKTOKEN"
HOOK = "/hook/ingest?token=HOOKTOKEN"
PAGERDUTY = "/pagerduty/v2/enqueue"
ROUTING_KEY = "R0UT1NGKEY0123456789abcdef"
HOOK_SECRET = "whsec-HOOKSECRET"
SECRETS = ("DISCORDTOKEN", "SLACKTOKEN", "HOOKTOKEN", ROUTING_KEY, HOOK_SECRET)

FIRING = Alert(
    state="firing",
    stream="eu-main",
    ingest_region="eu-west",
    playback_region="us-east",
    failed_checks=(
        FailedCheck("startup_timeout", None, "no segment listed within 30 s"),
        FailedCheck("rendition_missing", "360p", "360p not in the master playlist"),
    ),
    since=1_714_564_800.0,  # 2024-05-01T12:00:00Z
    at=1_714_565_100.0,
    consecutive_failures=2,
    last_startup_latency_seconds=None,
    last_segment_latency_seconds=4.25,
    dashboard_url="https://grafana.example/d/streamer?var-stream=eu-main",
)
RESOLVED = Alert(
    **{
        **FIRING.__dict__,
        "state": "resolved",
        "at": 1_714_566_600.0,
        "last_startup_latency_seconds": 2.1,
        "last_segment_latency_seconds": 3.5,
    }
)


@pytest.fixture
async def hooks() -> AsyncIterator[FakeWebhooks]:
    async with FakeWebhooks() as receiver:
        yield receiver


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def all_notifiers(
    hooks: FakeWebhooks, session: aiohttp.ClientSession, min_interval: float = 0.0
) -> list[Any]:
    options: dict[str, Any] = {"session": session, "min_interval": min_interval}
    return [
        DiscordNotifier(hooks.url(DISCORD), **options),
        SlackNotifier(hooks.url(SLACK), **options),
        WebhookNotifier(hooks.url(HOOK), HOOK_SECRET, **options),
        PagerDutyNotifier(ROUTING_KEY, hooks.url(PAGERDUTY), **options),
    ]


def test_message_has_stream_regions_checks_since_latencies_and_link() -> None:
    text = format_text(FIRING)
    assert text.splitlines()[0] == (
        "FIRING: stream eu-main (ingest region eu-west, playback region us-east) failing since "
        "2024-05-01T12:00:00Z: rendition_missing, startup_timeout"
    )
    assert "- startup_timeout: no segment listed within 30 s" in text
    assert "- rendition_missing [360p]: 360p not in the master playlist" in text
    assert "Last startup latency: n/a; last segment latency: 4.25 s" in text
    assert "Dashboard: https://grafana.example/d/streamer?var-stream=eu-main" in text

    resolved = format_text(RESOLVED)
    assert resolved.startswith(
        "RESOLVED: stream eu-main (ingest region eu-west, playback region us-east) "
        "healthy again after 30 min"
    )
    assert "Last startup latency: 2.10 s; last segment latency: 3.50 s" in resolved


async def test_discord_posts_the_message_without_pings(
    hooks: FakeWebhooks, session: aiohttp.ClientSession
) -> None:
    await DiscordNotifier(hooks.url(DISCORD), session=session).send(FIRING)
    [post] = hooks.received[DISCORD]
    assert post.json == {"content": format_text(FIRING), "allowed_mentions": {"parse": []}}


async def test_discord_splits_long_messages_at_2000_chars(
    hooks: FakeWebhooks, session: aiohttp.ClientSession
) -> None:
    checks = [FailedCheck(f"check_{i}", f"{i}p", "x" * 250 + f" end{i}") for i in range(20)]
    checks.append(FailedCheck("huge", None, "y" * 4500))
    alert = Alert(**{**FIRING.__dict__, "failed_checks": tuple(checks)})
    await DiscordNotifier(hooks.url(DISCORD), session=session, min_interval=0).send(alert)

    contents = [post.json["content"] for post in hooks.received[DISCORD]]
    assert len(contents) > 3
    assert all(len(c) <= 2000 for c in contents)
    joined = "".join(contents)
    for i in range(20):  # every line made it, none was cut in two except the huge one
        assert any(f"end{i}" in c for c in contents)
    assert joined.replace("\n", "") == format_text(alert).replace("\n", "")


async def test_slack_escapes_mentions_and_links(
    hooks: FakeWebhooks, session: aiohttp.ClientSession
) -> None:
    alert = Alert(
        **{**FIRING.__dict__, "failed_checks": (FailedCheck("x", None, "<!channel> a & b"),)}
    )
    await SlackNotifier(hooks.url(SLACK), session=session).send(alert)
    [post] = hooks.received["/slack/services/T000/B000/SLACKTOKEN"]
    assert "- x: &lt;!channel&gt; a &amp; b" in post.json["text"]
    assert "<!channel>" not in post.json["text"]


async def test_webhook_body_is_signed_with_the_secret(
    hooks: FakeWebhooks, session: aiohttp.ClientSession
) -> None:
    await WebhookNotifier(hooks.url(HOOK), HOOK_SECRET, session=session).send(FIRING)
    [post] = hooks.received["/hook/ingest"]
    assert post.query == "token=HOOKTOKEN"
    assert verify_signature(post.body, post.headers["X-Streamer-Signature"], HOOK_SECRET)
    assert not verify_signature(post.body, post.headers["X-Streamer-Signature"], "other")
    tampered = post.body.replace(b"eu-main", b"us-main")
    assert not verify_signature(tampered, post.headers["X-Streamer-Signature"], HOOK_SECRET)
    assert abs(int(post.headers["X-Streamer-Timestamp"]) - time.time()) < 10

    body = post.json
    assert body["state"] == "firing"
    assert (body["stream"], body["ingest_region"], body["playback_region"]) == (
        "eu-main",
        "eu-west",
        "us-east",
    )
    assert body["failed_checks"][1] == {
        "kind": "rendition_missing",
        "rendition": "360p",
        "detail": "360p not in the master playlist",
    }
    assert body["since"] == "2024-05-01T12:00:00Z"
    assert body["last_segment_latency_seconds"] == 4.25
    assert body["last_startup_latency_seconds"] is None
    assert body["dedup_key"] == "streamer/eu-main"
    assert body["dashboard_url"] == FIRING.dashboard_url


async def test_pagerduty_triggers_and_resolves_one_incident_per_check(
    hooks: FakeWebhooks, session: aiohttp.ClientSession
) -> None:
    notifier = PagerDutyNotifier(ROUTING_KEY, hooks.url(PAGERDUTY), session=session, min_interval=0)
    await notifier.send(FIRING)
    await notifier.send(RESOLVED)

    events = [post.json for post in hooks.received[PAGERDUTY]]
    assert [(e["event_action"], e["dedup_key"]) for e in events] == [
        ("trigger", "streamer/eu-main/rendition_missing"),
        ("trigger", "streamer/eu-main/startup_timeout"),
        ("resolve", "streamer/eu-main/rendition_missing"),
        ("resolve", "streamer/eu-main/startup_timeout"),
    ]
    assert all(e["routing_key"] == ROUTING_KEY for e in events)
    trigger = events[1]["payload"]
    assert trigger["severity"] == "error"
    assert trigger["source"] == "streamer/eu-main"
    assert trigger["summary"] == (
        "streamer: startup_timeout failing on stream eu-main "
        "(ingest region eu-west, playback region us-east): no segment listed within 30 s"
    )
    assert trigger["custom_details"]["since"] == "2024-05-01T12:00:00Z"
    assert events[0]["links"] == [{"href": FIRING.dashboard_url, "text": "Dashboard"}]
    assert "payload" not in events[2]


async def test_no_secret_in_any_payload_or_repr(
    hooks: FakeWebhooks, session: aiohttp.ClientSession
) -> None:
    notifiers = all_notifiers(hooks, session)
    for notifier in notifiers:
        await notifier.send(FIRING)
        await notifier.send(RESOLVED)
        assert not any(secret in repr(notifier) for secret in SECRETS)
    posts = hooks.all()
    assert len(posts) == 2 + 2 + 2 + 4
    for post in posts:
        body = post.json
        if post.path == PAGERDUTY:
            body = {k: v for k, v in body.items() if k != "routing_key"}
        text = json.dumps(body) + json.dumps(
            {k: v for k, v in post.headers.items() if k != "X-Streamer-Signature"}
        )
        assert not any(secret in text for secret in SECRETS), post.path


async def test_429_retry_after_is_honoured(
    hooks: FakeWebhooks, session: aiohttp.ClientSession
) -> None:
    hooks.answer_next(DISCORD, times=1, status=429, retry_after="1")
    started = time.monotonic()
    await DiscordNotifier(hooks.url(DISCORD), session=session, min_interval=0).send(FIRING)
    posts = hooks.received[DISCORD]
    assert len(posts) == 2
    assert posts[1].at - posts[0].at >= 0.95
    assert time.monotonic() - started < 5


async def test_discord_body_retry_after_is_honoured(
    hooks: FakeWebhooks, session: aiohttp.ClientSession
) -> None:
    hooks.answer_next(DISCORD, times=1, status=429, body='{"retry_after": 0.4, "global": false}')
    await DiscordNotifier(hooks.url(DISCORD), session=session, min_interval=0).send(FIRING)
    posts = hooks.received[DISCORD]
    assert len(posts) == 2
    assert posts[1].at - posts[0].at >= 0.35


async def test_429_retries_are_bounded(hooks: FakeWebhooks, session: aiohttp.ClientSession) -> None:
    hooks.answer_next(SLACK, times=10, status=429, retry_after="0")
    notifier = SlackNotifier(hooks.url(SLACK), session=session, min_interval=0, max_retries=2)
    with pytest.raises(NotifyError) as info:
        await notifier.send(FIRING)
    assert info.value.status == 429
    assert len(hooks.received[SLACK]) == 3


async def test_too_long_retry_after_fails_at_once(
    hooks: FakeWebhooks, session: aiohttp.ClientSession
) -> None:
    hooks.answer_next(SLACK, status=429, retry_after="3600")
    notifier = SlackNotifier(hooks.url(SLACK), session=session, max_retry_after=30)
    started = time.monotonic()
    with pytest.raises(NotifyError, match="rate limited for 3600 s"):
        await notifier.send(FIRING)
    assert time.monotonic() - started < 2


async def test_posts_are_spaced_by_the_rate_limit(
    hooks: FakeWebhooks, session: aiohttp.ClientSession
) -> None:
    notifier = WebhookNotifier(hooks.url(HOOK), HOOK_SECRET, session=session, min_interval=0.3)
    for alert in (FIRING, RESOLVED, FIRING):
        await notifier.send(alert)
    times = [post.at for post in hooks.received["/hook/ingest"]]
    assert len(times) == 3
    assert all(b - a >= 0.28 for a, b in itertools.pairwise(times))


async def test_errors_carry_status_but_no_url(
    hooks: FakeWebhooks, session: aiohttp.ClientSession
) -> None:
    hooks.answer_next(DISCORD, status=404, body='{"message": "Unknown Webhook"}')
    with pytest.raises(NotifyError) as info:
        await DiscordNotifier(hooks.url(DISCORD), session=session).send(FIRING)
    assert str(info.value) == "discord: HTTP 404 Not Found"
    assert info.value.status == 404

    gone = f"http://127.0.0.1:{free_port()}/hook?token=HOOKTOKEN"
    with pytest.raises(NotifyError) as info:
        await WebhookNotifier(gone, HOOK_SECRET, session=session).send(FIRING)
    assert info.value.status is None
    assert "connection failed" in str(info.value)
    assert "HOOKTOKEN" not in str(info.value) and "127.0.0.1" not in str(info.value)


def test_notifiers_from_env(tmp_path: Path) -> None:
    key_file = tmp_path / "routing-key"
    key_file.write_text(ROUTING_KEY + "\n")
    env = {
        "DISCORD_WEBHOOK_URL": "https://discord.example/api/webhooks/1/DISCORDTOKEN",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.example/services/SLACKTOKEN",
        "WEBHOOK_URL": "https://receiver.example/hook?token=HOOKTOKEN",
        "WEBHOOK_SECRET": HOOK_SECRET,
        "PAGERDUTY_ROUTING_KEY_FILE": str(key_file),
    }
    notifiers = notifiers_from_env(env)
    assert [n.name for n in notifiers] == ["discord", "slack", "webhook", "pagerduty"]
    assert not any(secret in repr(notifiers) for secret in SECRETS)
    assert notifiers_from_env({}) == []


def test_notifiers_from_env_refuses_bad_settings_without_quoting_them() -> None:
    with pytest.raises(ValueError, match="WEBHOOK_SECRET"):
        notifiers_from_env({"WEBHOOK_URL": "https://receiver.example/hook?token=HOOKTOKEN"})
    with pytest.raises(ValueError, match="DISCORD_WEBHOOK_URL must be an http") as info:
        notifiers_from_env({"DISCORD_WEBHOOK_URL": "discord.example/DISCORDTOKEN"})
    assert "DISCORDTOKEN" not in str(info.value)
    with pytest.raises(ValueError, match="severity"):
        notifiers_from_env({"PAGERDUTY_ROUTING_KEY": ROUTING_KEY, "PAGERDUTY_SEVERITY": "high"})


async def test_alert_manager_end_to_end_with_a_failing_receiver(hooks: FakeWebhooks) -> None:
    """Two failed sessions: every receiver gets one firing message; the one answering 500 is
    counted, and the monitor's `handle` never notices."""
    registry = CollectorRegistry()
    env = {
        "DISCORD_WEBHOOK_URL": hooks.url(DISCORD),
        "SLACK_WEBHOOK_URL": hooks.url(SLACK),
        "WEBHOOK_URL": hooks.url(HOOK),
        "WEBHOOK_SECRET": HOOK_SECRET,
        "PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
        "PAGERDUTY_EVENTS_URL": hooks.url(PAGERDUTY),
    }
    hooks.answer_next(SLACK, times=5, status=500)
    manager = AlertManager(notifiers_from_env(env, min_interval=0.05), registry, AlertSettings())
    worker_task = asyncio.create_task(manager.run())
    labels = StreamLabels("eu-main", "eu-west", "eu-west")
    for i in range(3):
        manager.handle(
            SessionStarted(
                labels=labels,
                session_id=f"s{i}",
                at=1000.0 + i,
                ingest="rtmp://x",
                playback="http://x",
                duration_seconds=60,
            )
        )
        manager.handle(
            SessionEnded(
                labels=labels,
                session_id=f"s{i}",
                outcome="failure",
                at=1050.0 + i,
                startup_latency_seconds=None,
                failed_kinds=("stall",),
            )
        )
    await manager.aclose()
    assert worker_task.done()

    assert len(hooks.received[DISCORD]) == 1
    assert "FIRING: stream eu-main (region eu-west)" in hooks.received[DISCORD][0].json["content"]
    assert len(hooks.received[SLACK]) == 1
    assert [p.json["event_action"] for p in hooks.received[PAGERDUTY]] == ["trigger"]
    assert len(hooks.received["/hook/ingest"]) == 1
    sample = registry.get_sample_value
    assert sample("streamer_notify_errors_total", {"notifier": "slack"}) == 1.0
    assert sample("streamer_notify_errors_total", {"notifier": "discord"}) == 0.0
