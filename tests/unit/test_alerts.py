"""The alerting state machine: one message per state change, after N consecutive failures."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from streamer.events import (
    CheckFailed,
    Event,
    Outcome,
    SegmentObserved,
    SessionEnded,
    SessionStarted,
    StreamLabels,
)
from streamer.sinks.alert_state import MAX_AGE_SECONDS
from streamer.sinks.alerts import Alert, AlertManager, AlertSettings, FailedCheck, Notifier
from streamer.sinks.notifiers import NotifyError, PagerDutyNotifier, WebhookNotifier
from tests.support.fake_webhooks import FakeWebhooks

EU = StreamLabels("eu-main", "eu-west", "us-east")
US = StreamLabels("us-main", "us-east", "us-east")
T0 = 1_714_564_800.0  # 2024-05-01T12:00:00Z


class RecordingNotifier:
    """A real notifier implementation that keeps what it is sent (no network)."""

    def __init__(self, name: str = "recorder", fail_with: Exception | None = None) -> None:
        self._name = name
        self.fail_with = fail_with
        self.alerts: list[Alert] = []
        self.closed = False

    @property
    def name(self) -> str:
        return self._name

    async def send(self, alert: Alert) -> None:
        self.alerts.append(alert)
        if self.fail_with is not None:
            raise self.fail_with

    async def aclose(self) -> None:
        self.closed = True


class Sessions:
    """Emits the events of whole sessions into a sink, at advancing times."""

    def __init__(self, manager: AlertManager) -> None:
        self.manager = manager
        self.ids: Iterator[int] = itertools.count(1)
        self.now = T0

    def run(
        self,
        outcome: Outcome,
        labels: StreamLabels = EU,
        checks: tuple[tuple[str, str | None, str], ...] = (),
        startup: float | None = 2.5,
        segment: float | None = 4.0,
    ) -> None:
        sid = f"s{next(self.ids)}"
        events: list[Event] = [
            SessionStarted(
                labels=labels,
                session_id=sid,
                at=self.now,
                ingest="rtmp://x/live/ab****",
                playback="http://x/hls/p/index.m3u8",
                duration_seconds=60,
            )
        ]
        if segment is not None:
            events.append(
                SegmentObserved(
                    labels=labels,
                    session_id=sid,
                    rendition="720p",
                    sequence=1,
                    listed_at=self.now + 10,
                    downloaded_at=self.now + 10.5,
                    extinf_seconds=2.0,
                    media_duration_seconds=2.0,
                    newest_frame_sent_at=self.now + 10.5 - segment,
                    resolution="1280x720",
                    video_codec="h264",
                    size_bytes=1000,
                )
            )
        for offset, (kind, rendition, detail) in enumerate(checks):
            events.append(
                CheckFailed(
                    labels=labels,
                    session_id=sid,
                    kind=kind,
                    rendition=rendition,
                    detail=detail,
                    at=self.now + 20 + offset,
                )
            )
        kinds = tuple(sorted({kind for kind, _, _ in checks}))
        events.append(
            SessionEnded(
                labels=labels,
                session_id=sid,
                outcome=outcome,
                at=self.now + 60,
                startup_latency_seconds=startup,
                failed_kinds=kinds,
            )
        )
        for event in events:
            self.manager.handle(event)
        self.now += 90


STARTUP_FAIL = (("startup_timeout", None, "no segment listed within 30 s"),)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def errors(registry: CollectorRegistry, notifier: str) -> float | None:
    return registry.get_sample_value("streamer_notify_errors_total", {"notifier": notifier})


async def deliver(manager: AlertManager) -> None:
    await manager.aclose()


async def test_fires_once_after_n_failures_and_resolves_once(registry: CollectorRegistry) -> None:
    notifier = RecordingNotifier()
    manager = AlertManager([notifier], registry)
    sessions = Sessions(manager)
    worker = asyncio.create_task(manager.run())

    sessions.run("failure", checks=STARTUP_FAIL)
    await asyncio.sleep(0.05)
    assert notifier.alerts == []  # one failure is not an alert
    assert not manager.is_firing("eu-main")

    for _ in range(4):  # the 2nd failure fires; the 3rd..5th say nothing new
        sessions.run("failure", checks=STARTUP_FAIL)
    await asyncio.sleep(0.05)
    assert [a.state for a in notifier.alerts] == ["firing"]
    assert manager.is_firing("eu-main")
    assert notifier.alerts[0].consecutive_failures == 2

    sessions.run("success")
    sessions.run("success")
    await manager.aclose()
    assert [a.state for a in notifier.alerts] == ["firing", "resolved"]
    assert worker.done()
    assert notifier.closed


async def test_firing_alert_says_what_failed_since_when_and_last_latencies(
    registry: CollectorRegistry,
) -> None:
    notifier = RecordingNotifier()
    settings = AlertSettings(dashboard_url="https://grafana.example/d/abc?var-stream={stream}")
    manager = AlertManager([notifier], registry, settings)
    sessions = Sessions(manager)
    sessions.run("success", startup=2.0, segment=3.0)
    sessions.run("failure", checks=STARTUP_FAIL, startup=None, segment=None)
    streak_start = T0 + 90 + 20  # the first CheckFailed of the first failed session
    sessions.run(
        "failure",
        checks=(
            ("segment_latency", "720p", "segment 12 arrived 14.2 s behind live (limit 10 s)"),
            ("segment_latency", "720p", "segment 13 arrived 15.0 s behind live (limit 10 s)"),
            ("rendition_missing", "360p", "360p not in the master playlist"),
        ),
        startup=6.5,
        segment=14.2,
    )
    await deliver(manager)

    [alert] = notifier.alerts
    assert alert.state == "firing"
    assert (alert.stream, alert.ingest_region, alert.playback_region) == (
        "eu-main",
        "eu-west",
        "us-east",
    )
    # The latest session's checks, one per (kind, rendition), with their details.
    assert alert.failed_checks == (
        FailedCheck(
            "segment_latency", "720p", "segment 12 arrived 14.2 s behind live (limit 10 s)"
        ),
        FailedCheck("rendition_missing", "360p", "360p not in the master playlist"),
    )
    assert alert.failing_kinds == ("rendition_missing", "segment_latency")
    assert alert.since == streak_start
    assert alert.last_startup_latency_seconds == 6.5
    assert alert.last_segment_latency_seconds == pytest.approx(14.2)
    assert alert.dashboard_url == "https://grafana.example/d/abc?var-stream=eu-main"


async def test_resolved_alert_names_the_checks_that_had_fired(registry: CollectorRegistry) -> None:
    notifier = RecordingNotifier()
    manager = AlertManager([notifier], registry)
    sessions = Sessions(manager)
    sessions.run("success", startup=1.9, segment=3.0)
    sessions.run("failure", checks=STARTUP_FAIL, startup=None, segment=None)
    sessions.run("failure", checks=STARTUP_FAIL, startup=None, segment=None)
    sessions.run("success", startup=2.2, segment=3.3)
    await deliver(manager)

    firing, resolved = notifier.alerts
    assert resolved.state == "resolved"
    assert resolved.failing_kinds == ("startup_timeout",)
    assert resolved.since == firing.since
    assert resolved.at > firing.at
    assert resolved.last_startup_latency_seconds == 2.2
    assert resolved.last_segment_latency_seconds == pytest.approx(3.3)
    # Latencies are the latest session's: an earlier session's 3.0 s would mislead.
    assert firing.last_startup_latency_seconds is None
    assert firing.last_segment_latency_seconds is None


async def test_aborted_sessions_count_neither_way(registry: CollectorRegistry) -> None:
    notifier = RecordingNotifier()
    manager = AlertManager([notifier], registry)
    sessions = Sessions(manager)
    sessions.run("failure", checks=STARTUP_FAIL)
    sessions.run("aborted", checks=(("publish_failed", None, "stopped"),))
    await asyncio.sleep(0)
    assert not manager.is_firing("eu-main")
    sessions.run("failure", checks=STARTUP_FAIL)  # still consecutive: fires
    assert manager.is_firing("eu-main")
    sessions.run("aborted")  # does not resolve
    assert manager.is_firing("eu-main")
    await deliver(manager)
    assert [a.state for a in notifier.alerts] == ["firing"]
    assert notifier.alerts[0].failing_kinds == ("startup_timeout",)


async def test_a_success_resets_the_count(registry: CollectorRegistry) -> None:
    notifier = RecordingNotifier()
    manager = AlertManager([notifier], registry)
    sessions = Sessions(manager)
    for outcome in ("failure", "success", "failure", "success", "failure"):
        sessions.run(outcome, checks=STARTUP_FAIL if outcome == "failure" else ())
    await deliver(manager)
    assert notifier.alerts == []  # never two failures in a row: flaky, not down


async def test_streams_are_tracked_separately(registry: CollectorRegistry) -> None:
    notifier = RecordingNotifier()
    manager = AlertManager([notifier], registry)
    sessions = Sessions(manager)
    sessions.run("failure", EU, STARTUP_FAIL)
    sessions.run("failure", US, STARTUP_FAIL)
    sessions.run("success", US)
    sessions.run("failure", EU, STARTUP_FAIL)
    await deliver(manager)
    assert [(a.state, a.stream) for a in notifier.alerts] == [("firing", "eu-main")]


@pytest.mark.parametrize("after", [1, 3])
async def test_threshold_is_configurable(registry: CollectorRegistry, after: int) -> None:
    notifier = RecordingNotifier()
    manager = AlertManager([notifier], registry, AlertSettings(alert_after_failures=after))
    sessions = Sessions(manager)
    for _ in range(after - 1):
        sessions.run("failure", checks=STARTUP_FAIL)
    assert not manager.is_firing("eu-main")
    sessions.run("failure", checks=STARTUP_FAIL)
    assert manager.is_firing("eu-main")
    await deliver(manager)
    assert len(notifier.alerts) == 1


async def test_failure_without_checks_still_names_a_kind(registry: CollectorRegistry) -> None:
    notifier = RecordingNotifier()
    manager = AlertManager([notifier], registry, AlertSettings(alert_after_failures=1))
    labels = EU
    manager.handle(
        SessionStarted(
            labels=labels,
            session_id="a",
            at=T0,
            ingest="rtmp://x/live/****",
            playback="http://x/p",
            duration_seconds=60,
        )
    )
    manager.handle(
        SessionEnded(
            labels=labels,
            session_id="a",
            outcome="failure",
            at=T0 + 5,
            startup_latency_seconds=None,
            failed_kinds=("playlist_error",),
        )
    )
    manager.handle(
        SessionStarted(
            labels=labels,
            session_id="b",
            at=T0 + 10,
            ingest="rtmp://x/live/****",
            playback="http://x/p",
            duration_seconds=60,
        )
    )
    manager.handle(
        SessionEnded(
            labels=labels,
            session_id="b",
            outcome="success",
            at=T0 + 20,
            startup_latency_seconds=2.0,
        )
    )
    manager.handle(
        SessionStarted(
            labels=labels,
            session_id="c",
            at=T0 + 30,
            ingest="rtmp://x/live/****",
            playback="http://x/p",
            duration_seconds=60,
        )
    )
    manager.handle(
        SessionEnded(
            labels=labels,
            session_id="c",
            outcome="failure",
            at=T0 + 35,
            startup_latency_seconds=None,
        )
    )
    await deliver(manager)
    assert [a.failing_kinds for a in notifier.alerts] == [
        ("playlist_error",),
        ("playlist_error",),
        ("session_failed",),
    ]
    assert notifier.alerts[0].since == T0 + 5


async def test_dedup_keys_are_stable_per_stream_and_check(registry: CollectorRegistry) -> None:
    notifier = RecordingNotifier()
    manager = AlertManager([notifier], registry)
    sessions = Sessions(manager)
    for _ in range(2):  # two incidents
        sessions.run("failure", checks=STARTUP_FAIL)
        sessions.run("failure", checks=STARTUP_FAIL)
        sessions.run("success")
    await deliver(manager)
    assert [a.state for a in notifier.alerts] == ["firing", "resolved"] * 2
    assert {a.dedup_key for a in notifier.alerts} == {"streamer/eu-main"}
    assert {a.dedup_key_for(k) for a in notifier.alerts for k in a.failing_kinds} == {
        "streamer/eu-main/startup_timeout"
    }


async def test_failing_notifier_is_counted_logged_and_does_not_stop_others(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    secret_url = "https://hooks.example/services/T000/B000/SECRETTOKEN"
    broken = RecordingNotifier("broken", NotifyError("broken", 500, "Internal Server Error"))
    crashing = RecordingNotifier("crashing", RuntimeError(f"cannot post to {secret_url}"))
    healthy = RecordingNotifier("healthy")
    manager = AlertManager([broken, crashing, healthy], registry)
    assert errors(registry, "healthy") == 0.0  # the series exist before any error

    worker = asyncio.create_task(manager.run())
    sessions = Sessions(manager)
    for outcome in ("failure", "failure", "success"):
        sessions.run(outcome, checks=STARTUP_FAIL)
    await manager.aclose()

    assert [a.state for a in healthy.alerts] == ["firing", "resolved"]
    assert errors(registry, "broken") == 2.0
    assert errors(registry, "crashing") == 2.0
    assert errors(registry, "healthy") == 0.0
    assert "broken: HTTP 500 Internal Server Error" in caplog.text
    assert "RuntimeError" in caplog.text
    assert "SECRETTOKEN" not in caplog.text  # a foreign exception's text may hold a URL
    await asyncio.sleep(0)
    assert worker.done()  # a worker that had not started yet ends at once


async def test_handle_never_raises_and_ignores_unrelated_events(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = RecordingNotifier()
    manager = AlertManager([notifier], registry)
    sessions = Sessions(manager)
    sessions.run("failure", checks=STARTUP_FAIL)
    manager.handle("not an event")  # type: ignore[arg-type]
    assert "alerting failed on a str event" in caplog.text
    assert not manager.is_firing("eu-main")  # the stray event neither fired nor reset
    sessions.run("failure", checks=STARTUP_FAIL)
    assert manager.is_firing("eu-main")
    await deliver(manager)
    assert [(a.state, a.stream, a.consecutive_failures) for a in notifier.alerts] == [
        ("firing", "eu-main", 2)
    ]


async def test_full_queue_drops_and_counts(registry: CollectorRegistry) -> None:
    notifier = RecordingNotifier()
    manager = AlertManager(
        [notifier], registry, AlertSettings(alert_after_failures=1), queue_size=1
    )
    sessions = Sessions(manager)
    sessions.run("failure", checks=STARTUP_FAIL)  # queued: firing
    sessions.run("success")  # queue full: resolved dropped
    await deliver(manager)
    assert [a.state for a in notifier.alerts] == ["firing"]
    assert registry.get_sample_value("streamer_alerts_dropped_total") == 1.0


async def test_aclose_gives_up_on_a_stuck_notifier(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    class Stuck(RecordingNotifier):
        async def send(self, alert: Alert) -> None:
            await asyncio.sleep(60)

    stuck = Stuck("stuck")
    manager = AlertManager([stuck], registry, AlertSettings(alert_after_failures=1))
    worker = asyncio.create_task(manager.run())
    Sessions(manager).run("failure", checks=STARTUP_FAIL)
    await asyncio.wait_for(manager.aclose(drain_seconds=0.2), 5)
    assert worker.cancelled()
    assert stuck.closed
    assert "undelivered" in caplog.text


def test_settings_from_env(tmp_path: Path) -> None:
    settings = AlertSettings.from_env(
        {
            "ALERT_AFTER_FAILURES": "3",
            "DASHBOARD_URL": "https://g.example/d/x?s={stream}",
            "ALERT_STATE_FILE": str(tmp_path / "state" / "alerts.json"),
        }
    )
    assert settings.alert_after_failures == 3
    assert settings.dashboard_for("eu main/1") == "https://g.example/d/x?s=eu%20main%2F1"
    assert settings.state_file == tmp_path / "state" / "alerts.json"
    # By default the state lives next to the clip cache (a volume in docker-compose).
    cache = {"STREAMER_CACHE_DIR": str(tmp_path / "cache"), "ALERT_STATE_FILE": ""}
    assert AlertSettings.from_env(cache) == AlertSettings(
        2, None, tmp_path / "cache" / "alert-state.json"
    )
    xdg = AlertSettings.from_env({"XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert xdg.state_file == tmp_path / "xdg" / "streamer" / "alert-state.json"
    for bad in (
        {"ALERT_AFTER_FAILURES": "0"},
        {"ALERT_AFTER_FAILURES": "two"},
        {"DASHBOARD_URL": "javascript:alert(1)"},
    ):
        with pytest.raises(ValueError):
            AlertSettings.from_env(bad)


def test_logging_is_quiet_per_failed_session(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamer.sinks.alerts")
    manager = AlertManager([], registry)
    sessions = Sessions(manager)
    for _ in range(5):
        sessions.run("failure", checks=STARTUP_FAIL)
    assert caplog.text.count("alert firing for stream eu-main") == 1


# --- alert state across restarts ------------------------------------------------------------


def persistent(path: Path, after: int = 2) -> AlertSettings:
    return AlertSettings(alert_after_failures=after, state_file=path)


def stored(path: Path) -> dict[str, object]:
    document = json.loads(path.read_text())
    assert document["version"] == 1
    streams: dict[str, object] = document["streams"]
    return streams


async def test_a_restart_while_firing_resolves_on_the_next_success_and_never_refires(
    tmp_path: Path,
) -> None:
    state = tmp_path / "alert-state.json"
    before = RecordingNotifier()
    manager = AlertManager([before], CollectorRegistry(), persistent(state))
    sessions = Sessions(manager)
    sessions.run("failure", checks=STARTUP_FAIL)
    sessions.run("failure", checks=(("stale_playlist", "720p", "no new segment for 6 s"),))
    await deliver(manager)
    [firing] = before.alerts
    assert firing.state == "firing"

    # The monitor restarts (a new process: nothing in memory but the file).
    after = RecordingNotifier()
    restarted = AlertManager([after], CollectorRegistry(), persistent(state))
    assert restarted.is_firing("eu-main")
    sessions.manager = restarted
    sessions.run("failure", checks=STARTUP_FAIL)  # still down: already fired, says nothing
    sessions.run("success", startup=1.5)
    sessions.run("failure", checks=STARTUP_FAIL)  # a new streak starts from zero
    await deliver(restarted)

    [resolved] = after.alerts
    assert resolved.state == "resolved"
    assert resolved.failed_checks == firing.failed_checks  # what had fired, before the restart
    assert resolved.since == firing.since
    assert resolved.consecutive_failures == 3
    assert resolved.last_startup_latency_seconds == 1.5
    assert not restarted.is_firing("eu-main")
    assert stored(state)["eu-main"] == {
        "ingest_region": "eu-west",
        "playback_region": "us-east",
        "consecutive_failures": 1,
        "since": sessions.now - 90 + 20,
        "firing_at": None,
        "firing_checks": [],
        "updated_at": sessions.now - 90 + 60,
    }


async def test_the_failure_streak_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "alert-state.json"
    manager = AlertManager([RecordingNotifier()], CollectorRegistry(), persistent(state))
    sessions = Sessions(manager)
    sessions.run("failure", checks=STARTUP_FAIL)
    await deliver(manager)

    notifier = RecordingNotifier()
    restarted = AlertManager([notifier], CollectorRegistry(), persistent(state))
    sessions.manager = restarted
    sessions.run("failure", checks=STARTUP_FAIL)  # the second in a row, across the restart
    await deliver(restarted)
    [alert] = notifier.alerts
    assert (alert.state, alert.consecutive_failures, alert.since) == ("firing", 2, T0 + 20)


async def test_only_streams_with_something_to_remember_are_stored(tmp_path: Path) -> None:
    state = tmp_path / "alert-state.json"
    manager = AlertManager([], CollectorRegistry(), persistent(state))
    sessions = Sessions(manager)
    sessions.run("success")
    assert not state.exists()  # healthy streams cost no write at all
    sessions.run("failure", EU, STARTUP_FAIL)
    sessions.run("failure", US, STARTUP_FAIL)
    assert set(stored(state)) == {"eu-main", "us-main"}
    sessions.run("success", US)
    assert set(stored(state)) == {"eu-main"}
    # Written aside and renamed: no temp file is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "alert-state.json",
        "alert-state.json.lock",
    ]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"version": 1, "streams": {"eu-main": {"consecut', "not valid JSON"),
        (b"\x00\xff\xfe garbage", "not valid JSON"),
        (b'{"version": 2, "streams": {}}', "version"),
        (b'{"version": 1, "streams": {"eu-main": {"consecutive_failures": -3}}}', "eu-main"),
        (b"[]", "not a streamer alert state file"),
        (b"", "not valid JSON"),
    ],
    ids=["truncated", "binary", "future-version", "bad-entry", "not-an-object", "empty"],
)
async def test_a_corrupt_state_file_is_logged_and_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, reason: str
) -> None:
    state = tmp_path / "alert-state.json"
    state.write_bytes(content)
    notifier = RecordingNotifier()
    manager = AlertManager([notifier], CollectorRegistry(), persistent(state))
    assert "alert state file" in caplog.text and "ignored" in caplog.text
    assert reason in caplog.text
    sessions = Sessions(manager)
    sessions.run("failure", checks=STARTUP_FAIL)
    sessions.run("failure", checks=STARTUP_FAIL)
    await deliver(manager)
    assert [a.state for a in notifier.alerts] == ["firing"]  # a clean start, then as usual
    assert stored(state)["eu-main"]["firing_at"] is not None  # type: ignore[index]


async def test_an_unusable_state_path_is_logged_once_and_alerting_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "not-a-folder").write_text("a file where a folder should be")
    state = tmp_path / "not-a-folder" / "alert-state.json"
    notifier = RecordingNotifier()
    manager = AlertManager([notifier], CollectorRegistry(), persistent(state))
    sessions = Sessions(manager)
    for _ in range(4):
        sessions.run("failure", checks=STARTUP_FAIL)
    sessions.run("success")
    await deliver(manager)
    assert [a.state for a in notifier.alerts] == ["firing", "resolved"]
    assert caplog.text.count("cannot save the alert state") == 1

    # A directory where the file should be: unreadable, unwritable, still no crash.
    (tmp_path / "dir.json").mkdir()
    other = RecordingNotifier()
    manager = AlertManager([other], CollectorRegistry(), persistent(tmp_path / "dir.json"))
    sessions.manager = manager
    sessions.run("failure", checks=STARTUP_FAIL)
    sessions.run("failure", checks=STARTUP_FAIL)
    await deliver(manager)
    assert [a.state for a in other.alerts] == ["firing"]
    assert "dir.json ignored" in caplog.text


async def test_a_failed_write_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamer.sinks.alert_state")
    state = tmp_path / "alert-state.json"
    manager = AlertManager([], CollectorRegistry(), persistent(state))
    sessions = Sessions(manager)
    sessions.run("failure", checks=STARTUP_FAIL)
    previous = state.read_bytes()

    def disk_full(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    sessions.run("failure", checks=STARTUP_FAIL)  # fires; the save fails
    monkeypatch.undo()
    assert manager.is_firing("eu-main")
    assert "No space left on device" in caplog.text
    assert state.read_bytes() == previous  # never half a file
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    sessions.run("failure", checks=STARTUP_FAIL)  # the next save works again
    assert "alert state saved" in caplog.text
    assert stored(state)["eu-main"]["consecutive_failures"] == 3  # type: ignore[index]


async def test_monitors_sharing_a_state_file_keep_each_others_streams(tmp_path: Path) -> None:
    state = tmp_path / "alert-state.json"
    eu_monitor = AlertManager([], CollectorRegistry(), persistent(state, after=1))
    us_monitor = AlertManager([], CollectorRegistry(), persistent(state, after=1))
    Sessions(eu_monitor).run("failure", EU, STARTUP_FAIL)
    Sessions(us_monitor).run("failure", US, STARTUP_FAIL)  # us_monitor never loaded eu-main
    assert set(stored(state)) == {"eu-main", "us-main"}
    restarted = AlertManager([], CollectorRegistry(), persistent(state))
    assert restarted.is_firing("eu-main") and restarted.is_firing("us-main")


async def test_entries_of_streams_gone_for_long_are_dropped(tmp_path: Path) -> None:
    state = tmp_path / "alert-state.json"
    manager = AlertManager([], CollectorRegistry(), persistent(state))
    sessions = Sessions(manager)
    sessions.run("failure", EU, STARTUP_FAIL)  # eu-main is then removed from the config
    sessions.now += MAX_AGE_SECONDS
    sessions.run("failure", US, STARTUP_FAIL)
    assert set(stored(state)) == {"us-main"}


async def test_fire_restart_recover_sends_one_trigger_and_one_resolve(tmp_path: Path) -> None:
    """Two monitor lifetimes against real HTTP receivers: PagerDuty and a signed webhook."""
    state = tmp_path / "alert-state.json"
    async with FakeWebhooks() as hooks:

        def manager() -> AlertManager:
            notifiers: list[Notifier] = [
                PagerDutyNotifier("pd-routing-key-0123456789", hooks.url("/pd"), min_interval=0),
                WebhookNotifier(hooks.url("/hook"), "hmac-secret", min_interval=0),
            ]
            return AlertManager(notifiers, CollectorRegistry(), persistent(state))

        first = manager()
        worker = asyncio.create_task(first.run())
        sessions = Sessions(first)
        for _ in range(2):
            sessions.run("failure", checks=STARTUP_FAIL)
        await first.aclose()  # SIGTERM while the alert fires
        assert worker.done()

        second = manager()
        worker = asyncio.create_task(second.run())
        sessions.manager = second
        sessions.run("failure", checks=STARTUP_FAIL)
        sessions.run("success")
        await second.aclose()

    pagerduty = [(r.json["event_action"], r.json["dedup_key"]) for r in hooks.received["/pd"]]
    assert pagerduty == [
        ("trigger", "streamer/eu-main/startup_timeout"),
        ("resolve", "streamer/eu-main/startup_timeout"),
    ]
    assert [r.json["state"] for r in hooks.received["/hook"]] == ["firing", "resolved"]
