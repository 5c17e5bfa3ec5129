"""Every dashboard query against real data: a real monitor (`python -m streamer monitor`)
tests streams on a real nginx-rtmp origin, a real Prometheus scrapes it, and each panel
query, with the template variables filled in as Grafana would, must return data.

Two streams: s1 is healthy; s2 publishes to one key but plays back another that nobody
publishes, so it fails and counts errors (the failure panels need data too).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.deploy import dashboard as dash
from tests.deploy.contract import STREAM_LABELS, metric_names
from tests.support.nginx import NginxOrigin
from tests.support.ports import free_port
from tests.support.prometheus import PrometheusServer, Result

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# Panels that only have data in Livepeer API mode or after a failed notification.
OPTIONAL_PANELS = {
    "Livepeer API latency (p95)",
    "Notification errors",
    # These streams play HLS only (WebRTC is measured in tests/e2e/test_webrtc_*.py).
    "Glass-to-glass latency by protocol",
    "Freezes by protocol",
    "WebRTC connect time and RTP loss",
}
# Grafana's variables, as the time picker and a 1 s scrape interval would set them.
BUILTINS = {"__rate_interval": "30s", "__interval": "5s", "__range": "15m"}
STARTUP_TIMEOUT = 60.0
RESULTS_TIMEOUT = 150.0


def has_finite_value(result: Result) -> bool:
    return any(math.isfinite(float(row["value"][1])) for row in result)


def log_tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


@pytest.fixture
def monitor(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The origin and a monitor testing two streams on it; yields (metrics target, log)."""
    with NginxOrigin(tmp_path / "nginx", ladder=False) as origin:
        streams = {
            "streams": [
                {
                    "name": "s1",
                    "duration": "20s",
                    "grace_period": "3s",
                    "injest_region": "eu",
                    "playback_region": "eu",
                    "injest_url": origin.ingest_url("s1key"),
                    "playback_url": origin.playback_url("s1key"),
                },
                {
                    "name": "s2",
                    "duration": "20s",
                    "grace_period": "3s",
                    "injest_region": "us",
                    "playback_region": "eu",
                    "injest_url": origin.ingest_url("s2key"),
                    "playback_url": origin.playback_url("nobody-publishes-this"),
                },
            ]
        }
        config = tmp_path / "streams.yaml"
        config.write_text(yaml.safe_dump(streams, sort_keys=False))
        port = free_port()
        log = tmp_path / "monitor.log"
        env = {
            **os.environ,
            "METRICS_ADDR": f"127.0.0.1:{port}",
            "STREAMER_CACHE_DIR": str(tmp_path / "cache"),
            "LOG_FORMAT": "json",
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "streamer", "monitor", "--config", str(config)],
                cwd=tmp_path,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while True:
                if process.poll() is not None:
                    pytest.fail(f"the monitor exited with {process.returncode}:\n{log_tail(log)}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2):
                        break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    if time.monotonic() > deadline:
                        pytest.fail(f"no /metrics after {STARTUP_TIMEOUT}s:\n{log_tail(log)}")
                    time.sleep(0.2)
            yield f"127.0.0.1:{port}", log
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)


def test_every_panel_query_returns_data(tmp_path: Path, monitor: tuple[str, Path]) -> None:
    target, log = monitor
    dashboard = dash.load()
    variables = dash.variables(dashboard)
    with PrometheusServer(tmp_path / "prometheus", targets=[target]) as prom:
        # Wait for what the panels show: a success of s1, a failure and errors of s2,
        # segments of s1.
        for expr in (
            'streamer_tests_total{stream="s1", outcome="success"} > 0',
            'streamer_tests_total{stream="s2", outcome="failure"} > 0',
            'streamer_last_success_timestamp_seconds{stream="s1"} > 0',
            'sum(streamer_errors_total{stream="s2"}) > 0',
            'streamer_segment_latency_seconds_count{stream="s1"} > 0',
        ):
            try:
                prom.wait_for(expr, timeout=RESULTS_TIMEOUT)
            except TimeoutError as err:
                pytest.fail(f"{err}\nmonitor log:\n{log_tail(log)}")

        # The contract: every stream-level series carries the stream labels.
        unlabelled = prom.query(
            'count by (__name__) ({__name__=~"streamer_.+", '
            '__name__!~"streamer_build_info|streamer_notify_errors_total|streamer_api_.*", '
            'stream=""})'
        )
        assert unlabelled == [], f"series without a stream label: {unlabelled}"
        for label in STREAM_LABELS:
            assert prom.query(f'streamer_active_tests{{{label}=""}}') == []

        # Template variables resolve like Grafana's label_values() does.
        all_values = {name: ".*" for name, v in variables.items() if v["type"] == "query"}
        all_values |= {
            name: str(v["current"]["value"])
            for name, v in variables.items()
            if v["type"] == "custom"
        }
        resolved: dict[str, set[str]] = {}
        for name, variable in variables.items():
            if variable["type"] != "query":
                continue
            selector, label = dash.label_values(dash.variable_query(variable))
            rows = prom.query(f"group by ({label}) ({dash.substitute(selector, all_values)})")
            resolved[name] = {row["metric"].get(label, "") for row in rows} - {""}
        assert resolved["stream"] == {"s1", "s2"}
        assert resolved["region"] == {"eu", "us"}
        assert resolved["rendition"], "the rendition variable offers no rendition"

        # Every metric the panels use is exported by the monitor (an unknown name fails).
        exported = prom.metric_names()
        targets = dash.targets(dashboard)
        for t in targets:
            if t.panel in OPTIONAL_PANELS:
                continue
            missing = metric_names(t.expr) - exported
            assert not missing, f"panel {t.panel!r} uses metrics nobody exports: {missing}"

        # Every panel query, with "All" selected, returns data: at least one finite value.
        failures = []
        for t in targets:
            expr = dash.substitute(t.expr, all_values | BUILTINS)
            if t.panel in OPTIONAL_PANELS:
                prom.query(expr)  # must still be a valid query
                continue
            try:
                prom.wait_for(expr, has_finite_value, timeout=30)
            except TimeoutError:
                failures.append(f"{t.panel} [{t.ref_id}]: {expr}")
        assert not failures, "panels without data:\n" + "\n".join(failures)

        # The same with one stream and one region picked (a concrete, escaped value).
        picked = all_values | {"stream": "s1", "region": "eu"}
        for t in targets:
            if t.panel in OPTIONAL_PANELS or "$stream" not in t.expr:
                continue
            if t.panel in {
                "Failed sessions",
                "Errors",
                "Errors by kind and rendition",
                "Errors in range",
            }:
                continue  # s1 is the healthy stream: zero is its right answer
            expr = dash.substitute(t.expr, picked | BUILTINS)
            result = prom.query(expr)
            assert result, f"{t.panel} [{t.ref_id}] has no data for stream s1: {expr}"
