"""Reading the Grafana dashboard: panels, their queries, template variables."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "streamer.json"

# Grafana's own variables, with values for evaluating queries outside Grafana.
BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)\]\]")
_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")


@dataclass(frozen=True)
class Target:
    panel: str
    panel_type: str
    ref_id: str
    expr: str
    fmt: str


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows; rows themselves excluded."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def targets(dashboard: Mapping[str, Any]) -> list[Target]:
    return [
        Target(p["title"], p["type"], t["refId"], t["expr"], t.get("format", "time_series"))
        for p in panels(dashboard)
        for t in p.get("targets", [])
    ]


def variables(dashboard: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def variable_query(variable: Mapping[str, Any]) -> str:
    query = variable.get("query")
    if isinstance(query, Mapping):
        return str(query["query"])
    return str(query or variable.get("definition", ""))


def label_values(query: str) -> tuple[str, str]:
    """`label_values(selector, label)` -> (selector, label); selector may be ''."""
    match = _LABEL_VALUES.match(query.strip())
    if not match:
        raise ValueError(f"not a label_values() query: {query!r}")
    return (match.group("selector") or "").strip(), match.group("label")


def referenced_variables(expr: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in _VARIABLE.finditer(expr)}


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace $var, ${var}, ${var:fmt} and [[var]] by values (builtins included); an
    unknown variable raises KeyError."""
    merged = {**BUILTINS, **values}

    def replace(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        return merged[name]

    return _VARIABLE.sub(replace, expr)
