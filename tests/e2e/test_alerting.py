"""Alerting from a real monitor: a stream fails twice -> one alert; it recovers -> resolved."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.support.fake_webhooks import FakeWebhooks, verify_signature
from tests.support.nginx import NginxOrigin
from tests.support.ports import free_port

pytestmark = pytest.mark.e2e

SECRET = "hmac-secret-0123456789"
PD_KEY = "pd-routing-key-abcdef0123456789"


async def test_monitor_alerts_once_after_two_failures_then_resolves(tmp_path: Path) -> None:
    origin = NginxOrigin(tmp_path / "nginx")
    key = "keyalertsecret42"
    config = tmp_path / "streams.yaml"
    # The origin is down at first: sessions fail at once with publish_failed.
    config.write_text(f"""
streams:
  - name: flaky
    duration: 6s
    grace_period: 1s
    injest_region: eu
    playback_region: eu
    injest_url: {origin.ingest_url(key)}
    playback_url: {origin.playback_url(key)}
""")
    async with FakeWebhooks() as hooks:
        env = {
            **os.environ,
            "METRICS_ADDR": f"127.0.0.1:{free_port()}",
            "LOG_FORMAT": "json",
            "WEBHOOK_URL": hooks.url("/hook"),
            "WEBHOOK_SECRET": SECRET,
            "PAGERDUTY_ROUTING_KEY": PD_KEY,
            "PAGERDUTY_EVENTS_URL": hooks.url("/pd"),
            "DASHBOARD_URL": "http://grafana.local/d/streamer?var-stream={stream}",
            # Not the shared cache folder's: a run killed while firing must not leak into the next.
            "ALERT_STATE_FILE": str(tmp_path / "alert-state.json"),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "streamer",
            "monitor",
            "--config",
            str(config),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 40
            while not hooks.received.get("/hook"):
                assert time.monotonic() < deadline, "no alert after failing sessions"
                await asyncio.sleep(0.2)
            await asyncio.sleep(3)  # more failed sessions: still only one message
            assert len(hooks.received["/hook"]) == 1
            origin.start()  # the platform recovers
            try:
                deadline = time.monotonic() + 60
                while len(hooks.received["/hook"]) < 2:
                    assert time.monotonic() < deadline, "no resolve after recovery"
                    await asyncio.sleep(0.3)
            finally:
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.communicate(), 10)
                origin.stop()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    firing, resolved = (r.json for r in hooks.received["/hook"][:2])
    assert firing["state"] == "firing" and resolved["state"] == "resolved"
    assert firing["stream"] == "flaky" and firing["ingest_region"] == "eu"
    assert firing["consecutive_failures"] >= 2
    assert [c["kind"] for c in firing["failed_checks"]] == ["publish_failed"]
    assert "refused" in firing["failed_checks"][0]["detail"]
    assert firing["dashboard_url"].endswith("var-stream=flaky")
    for received in hooks.received["/hook"]:
        assert verify_signature(received.body, received.headers.get("X-Streamer-Signature"), SECRET)
    pd = [r.json for r in hooks.received["/pd"]]
    assert [(p["event_action"], p["dedup_key"]) for p in pd] == [
        ("trigger", "streamer/flaky/publish_failed"),
        ("resolve", "streamer/flaky/publish_failed"),
    ]
    everything = b"".join(r.body for r in hooks.all()).decode()
    assert key not in everything and SECRET not in everything
    assert all(p["routing_key"] == PD_KEY for p in pd)  # the key goes only where it belongs
