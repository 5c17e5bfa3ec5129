"""tests/support/prometheus.py against a real Prometheus: it scrapes a prometheus_client
exporter, answers queries, loads streamer's alert rules and stops cleanly."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from tests.support.ports import free_port
from tests.support.prometheus import PrometheusError, PrometheusServer, values

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"


@pytest.fixture
def exporter() -> Iterator[tuple[str, Counter]]:
    registry = CollectorRegistry()
    active = Gauge(
        "streamer_active_tests",
        "sessions running",
        ["stream", "ingest_region", "playback_region"],
        registry=registry,
    )
    active.labels("s1", "eu", "us").set(1)
    tests = Counter(
        "streamer_tests",
        "sessions ended",
        ["stream", "ingest_region", "playback_region", "outcome"],
        registry=registry,
    )
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield f"127.0.0.1:{port}", tests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_scrapes_queries_and_evaluates_rules(tmp_path: Path, exporter: tuple[str, Counter]) -> None:
    target, tests = exporter
    with PrometheusServer(tmp_path, targets=[target], rule_files=[RULES]) as prom:
        up = prom.wait_for('up{job="streamer"}', lambda r: values(r) == [1.0], timeout=20)
        assert up[0]["metric"]["instance"] == target
        active = prom.wait_for("streamer_active_tests", timeout=10)
        assert active[0]["metric"]["stream"] == "s1"
        assert active[0]["metric"]["ingest_region"] == "eu"
        assert "streamer_active_tests" in prom.metric_names()

        tests.labels("s1", "eu", "us", "failure").inc(3)
        prom.wait_for(
            'streamer_tests_total{outcome="failure"}', lambda r: values(r) == [3.0], timeout=10
        )
        assert values(prom.query("1 + 1")) == [2.0]  # scalars come back as one row

        # The real server loads streamer's rules and evaluates every one without error.
        deadline = time.monotonic() + 20
        while True:
            rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
            if all(r["lastEvaluation"] > "2000" for r in rules) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert len(rules) == 6
        assert {r["health"] for r in rules} == {"ok"}, [r.get("lastError") for r in rules]

        with pytest.raises(PrometheusError, match="parse"):
            prom.query("sum(")
        with pytest.raises(TimeoutError):
            prom.wait_for("streamer_active_tests", lambda r: values(r) == [5.0], timeout=1)
        port = prom.port
    # Stopped: nothing listens any more.
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_reports_a_bad_config(tmp_path: Path) -> None:
    bad_rules = tmp_path / "bad.yml"
    bad_rules.write_text("groups: [{name: x, rules: [{alert: A, expr: 'sum('}]}]\n")
    with pytest.raises(PrometheusError, match="did not become ready"):
        PrometheusServer(tmp_path / "prom", rule_files=[bad_rules], start_timeout=10).start()
