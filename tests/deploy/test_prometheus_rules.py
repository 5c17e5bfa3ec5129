"""Prometheus config and alert rules, checked by the real promtool (Debian prometheus)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.contract import PROMETHEUS_SERIES, series_labels, unknown_references

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "deploy" / "prometheus"
RULES = PROM_DIR / "rules.yml"
RULES_TEST = PROM_DIR / "rules_test.yml"

EXPECTED_ALERTS = {
    "StreamerTestFailing",
    "StreamerNoSuccess",
    "StreamerStartupLatencyHigh",
    "StreamerSegmentLatencyHigh",
    "StreamerStalls",
    "StreamerMonitorDown",
}


def promtool(*args: str, cwd: Path = PROM_DIR) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is not installed (Debian package prometheus)"
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_prometheus_config_is_valid() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def test_rules_are_valid() -> None:
    result = promtool("check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(EXPECTED_ALERTS)} rules found" in result.stdout


def test_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_unit_tests_can_fail(tmp_path: Path) -> None:
    # A rule with a changed threshold must break the unit tests: they pin behaviour.
    shutil.copy(RULES_TEST, tmp_path / "rules_test.yml")
    (tmp_path / "rules.yml").write_text(RULES.read_text().replace("> 30 * 60", "> 40 * 60"))
    result = promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "StreamerNoSuccess" in result.stdout + result.stderr


def test_the_expected_alerts_exist() -> None:
    assert {rule["alert"] for rule in alert_rules()} == EXPECTED_ALERTS


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: str(r["alert"]))
def test_alert_is_labelled_and_explained(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    annotations = rule["annotations"]
    for key in ("summary", "description"):
        text = annotations[key]
        assert "{{ $labels.stream }}" in text, f"{key} does not name the stream"
        assert "{{ $labels.ingest_region }}" in text, f"{key} does not name the region"
        assert "{{ $labels.playback_region }}" in text


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: str(r["alert"]))
def test_alert_uses_only_exported_metrics(rule: dict[str, Any]) -> None:
    allowed = series_labels() | PROMETHEUS_SERIES
    assert unknown_references(rule["expr"], allowed) == []


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    tests = yaml.safe_load(RULES_TEST.read_text())
    assert tests["rule_files"] == ["rules.yml"]
    firing: set[str] = set()
    silent: set[str] = set()
    for group in tests["tests"]:
        for case in group.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    assert firing == EXPECTED_ALERTS, f"never tested firing: {EXPECTED_ALERTS - firing}"
    assert silent == EXPECTED_ALERTS, f"never tested silent: {EXPECTED_ALERTS - silent}"
