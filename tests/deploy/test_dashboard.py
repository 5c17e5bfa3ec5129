"""The Grafana dashboard, checked statically: its queries use only the exporter's metrics,
parse as PromQL (promtool), and its variables and datasource fit the provisioning."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import dashboard as dash
from tests.deploy.contract import (
    METRICS,
    metric_names,
    selectors,
    series_labels,
    unknown_references,
)

ROOT = Path(__file__).resolve().parents[2]
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"

DASHBOARD = dash.load()
TARGETS = dash.targets(DASHBOARD)
VARIABLES = dash.variables(DASHBOARD)
# What a user picks from: every query variable resolved to "All".
ALL_VALUES = {
    name: str(v.get("allValue") or ".*") for name, v in VARIABLES.items() if v["type"] == "query"
} | {name: str(v["current"]["value"]) for name, v in VARIABLES.items() if v["type"] == "custom"}


def test_dashboard_identity() -> None:
    assert DASHBOARD["uid"] == "streamer"
    assert DASHBOARD["title"]
    assert DASHBOARD["schemaVersion"] >= 36
    ids = [p["id"] for p in DASHBOARD["panels"]] + [
        p["id"] for row in DASHBOARD["panels"] for p in row.get("panels", [])
    ]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in DASHBOARD["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24 and pos["w"] > 0 and pos["h"] > 0


def test_template_variables() -> None:
    assert {"datasource", "stream", "region", "rendition"} <= set(VARIABLES)
    expected_label = {"stream": "stream", "region": "ingest_region", "rendition": "rendition"}
    for name, label in expected_label.items():
        variable = VARIABLES[name]
        assert variable["type"] == "query"
        assert variable["datasource"]["uid"] == "${datasource}"
        selector, got_label = dash.label_values(dash.variable_query(variable))
        assert got_label == label
        assert unknown_references(selector, series_labels()) == []
        [metric] = metric_names(selector)
        assert label in series_labels()[metric]
        assert variable["includeAll"] and variable["multi"]
        assert variable["allValue"] == ".*"


def test_datasource_variable_matches_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    [datasource] = provisioned["datasources"]
    variable = VARIABLES["datasource"]
    assert variable["type"] == "datasource"
    assert variable["query"] == datasource["type"] == "prometheus"
    assert variable["current"]["value"] == datasource["uid"]
    for panel in dash.panels(DASHBOARD):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]


def test_dashboard_provider_is_provisioned() -> None:
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "streamer.yml").read_text())
    [entry] = provider["providers"]
    assert entry["type"] == "file"
    assert entry["options"]["path"]


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: f"{t.panel}/{t.ref_id}")
def test_query_uses_only_exported_metrics(target: dash.Target) -> None:
    assert metric_names(target.expr), "a panel query must select a metric"
    assert unknown_references(target.expr, series_labels()) == []
    assert dash.referenced_variables(target.expr) <= set(VARIABLES) | set(dash.BUILTINS)


def test_queries_are_valid_promql(tmp_path: Path) -> None:
    """Every query, with its variables filled in, is parsed by promtool."""
    rules: list[dict[str, Any]] = [
        {"record": f"panel:query_{i}", "expr": dash.substitute(t.expr, ALL_VALUES)}
        for i, t in enumerate(TARGETS)
    ]
    rules += [
        {
            "record": f"variable:query_{name}",
            "expr": f"group by ({dash.label_values(dash.variable_query(v))[1]}) "
            f"({dash.substitute(dash.label_values(dash.variable_query(v))[0], ALL_VALUES)})",
        }
        for name, v in VARIABLES.items()
        if v["type"] == "query"
    ]
    (tmp_path / "queries.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (Debian package prometheus)"
    result = subprocess.run(
        [promtool, "check", "rules", "queries.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_static_check_catches_an_unknown_metric() -> None:
    bad = 'sum(rate(streamer_segments_total{stream=~"$stream"}[$__rate_interval]))'
    assert unknown_references(bad, series_labels()) == ["unknown metric 'streamer_segments_total'"]
    bad_label = 'sum(streamer_tests_total{rendition=~"$rendition"})'
    assert unknown_references(bad_label, series_labels()) == [
        "streamer_tests_total has no label(s) ['rendition']"
    ]


def test_dashboard_shows_every_stream_metric() -> None:
    used = {name for t in TARGETS for name in metric_names(t.expr)}
    for name, (kind, _labels) in METRICS.items():
        names = (
            {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else {name}
        )
        assert used & names, f"no panel shows {name}"


def test_the_panels_a_user_looks_for() -> None:
    by_title = {p["title"]: p for p in dash.panels(DASHBOARD)}
    exprs = {title: " ".join(t["expr"] for t in p["targets"]) for title, p in by_title.items()}
    assert "streamer_active_tests" in exprs["Active tests"]
    assert 'outcome="success"' in exprs["Successful sessions"]
    assert "$__range" in exprs["Successful sessions"]
    assert 'outcome="failure"' in exprs["Failed sessions"]
    assert by_title["Success ratio"]["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert "streamer_last_success_timestamp_seconds" in exprs["Time since last success"]
    startup = exprs["Startup latency p50 / p95 by region"]
    assert "histogram_quantile(0.5," in startup and "histogram_quantile(0.95," in startup
    assert "ingest_region" in startup
    segment = exprs["Segment latency by rendition"]
    assert "histogram_quantile(0.95," in segment and "rendition" in segment
    heatmap = by_title["Segment latency distribution"]
    assert heatmap["type"] == "heatmap"
    assert heatmap["targets"][0]["format"] == "heatmap"
    assert "streamer_segment_latency_seconds_bucket" in heatmap["targets"][0]["expr"]
    assert "streamer_listed_latency_seconds_bucket" in exprs["Listed latency by rendition"]
    assert "streamer_segment_duration_seconds" in exprs["Segment durations by rendition"]
    errors = exprs["Errors by kind and rendition"]
    assert "streamer_errors_total" in errors and "kind" in errors and "rendition" in errors
    # Every stream-level selector honours the stream and region filters.
    labels = series_labels()
    for target in TARGETS:
        if target.panel in {"Livepeer API latency (p95)", "Notification errors"}:
            continue  # monitor-level: shown whatever stream is selected
        for selector in selectors(target.expr):
            if "stream" in labels[selector.metric]:
                assert {"stream", "ingest_region"} <= selector.labels, target.panel
    assert "streamer_frame_latency_seconds_bucket" in exprs["Glass-to-glass latency by protocol"]
    assert "playback_protocol" in exprs["Startup latency by protocol"]
    assert "streamer_freezes_total" in exprs["Freezes by protocol"]
    counts = Counter(t.panel for t in TARGETS)
    assert counts["Segment latency by rendition"] >= 2
