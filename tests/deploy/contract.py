"""The exporter's metrics contract, and a small PromQL reader for the deploy tests.

The names here are what the dashboard and the alert rules may use; the live dashboard test
checks them against a real monitor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STREAM_LABELS = frozenset(
    {"stream", "ingest_region", "playback_region", "ingest_protocol", "playback_protocol"}
)
TARGET_LABELS = frozenset({"job", "instance"})

# name -> (type, labels besides the target labels)
METRICS: dict[str, tuple[str, frozenset[str]]] = {
    "streamer_active_tests": ("gauge", STREAM_LABELS),
    "streamer_tests_total": ("counter", STREAM_LABELS | {"outcome"}),
    "streamer_startup_latency_seconds": ("histogram", STREAM_LABELS),
    "streamer_segment_latency_seconds": ("histogram", STREAM_LABELS | {"rendition"}),
    "streamer_listed_latency_seconds": ("histogram", STREAM_LABELS | {"rendition"}),
    "streamer_segment_duration_seconds": ("histogram", STREAM_LABELS | {"rendition"}),
    "streamer_errors_total": ("counter", STREAM_LABELS | {"kind", "rendition"}),
    "streamer_last_session_success": ("gauge", STREAM_LABELS),
    "streamer_last_success_timestamp_seconds": ("gauge", STREAM_LABELS),
    "streamer_build_info": ("gauge", frozenset({"version"})),
    # WebRTC (WHEP) playback: frame by frame, freezes, transport.
    "streamer_frame_latency_seconds": ("histogram", STREAM_LABELS | {"rendition"}),
    "streamer_webrtc_connect_seconds": ("histogram", STREAM_LABELS),
    "streamer_freezes_total": ("counter", STREAM_LABELS | {"rendition"}),
    "streamer_freeze_seconds_total": ("counter", STREAM_LABELS | {"rendition"}),
    "streamer_rtp_packets_received_total": ("counter", STREAM_LABELS | {"media"}),
    "streamer_rtp_packets_lost_total": ("counter", STREAM_LABELS | {"media"}),
    "streamer_rtp_jitter_seconds": ("gauge", STREAM_LABELS | {"media"}),
    # Monitor-level: Livepeer Studio API calls by operation.
    "streamer_api_latency_seconds": ("histogram", frozenset({"operation"})),
    # Monitor-level: one series per configured notifier.
    "streamer_notify_errors_total": ("counter", frozenset({"notifier"})),
}

# Prometheus' own series that rules may use.
PROMETHEUS_SERIES: dict[str, frozenset[str]] = {"up": TARGET_LABELS}


def series_labels() -> dict[str, frozenset[str]]:
    """Every exported series name (histograms expanded) -> the labels it may carry."""
    out: dict[str, frozenset[str]] = {}
    for name, (kind, own_labels) in METRICS.items():
        labels = own_labels | TARGET_LABELS
        if kind == "histogram":
            out[f"{name}_bucket"] = labels | {"le"}
            out[f"{name}_sum"] = labels
            out[f"{name}_count"] = labels
        else:
            out[name] = labels
    return out


# --- PromQL -----------------------------------------------------------------------------------

KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "and",
        "or",
        "unless",
        "atan2",
        "inf",
        "nan",
    }
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_NUMBER = re.compile(
    r"(?<![\w:])(?:0x[0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?:ms|[smhdwy])?)(?:\d+(?:ms|[smhdwy]))*"
)
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")


@dataclass(frozen=True)
class Selector:
    metric: str
    labels: frozenset[str]


def _without_strings(expr: str) -> str:
    return _STRING.sub('""', _GRAFANA_VAR.sub("1", expr))


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (identifiers that are not functions,
    keywords, label names or numbers)."""
    text = _without_strings(expr)
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = _RANGE.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    names: set[str] = set()
    for match in _IDENT.finditer(text):
        word = match.group(0)
        rest = text[match.end() :].lstrip()
        if rest.startswith("("):  # a function or an aggregation
            continue
        if word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def selectors(expr: str) -> list[Selector]:
    """`metric{matchers}` selectors with the label names their matchers use."""
    text = _GRAFANA_VAR.sub("1", expr)
    found = []
    for match in _SELECTOR.finditer(_STRING.sub('""', text)):
        labels = frozenset(_MATCHER_LABEL.findall(match.group(2)))
        found.append(Selector(match.group(1), labels))
    return found


def unknown_references(expr: str, allowed: dict[str, frozenset[str]]) -> list[str]:
    """Problems with an expression: metric names outside `allowed`, and label matchers on
    labels that the metric does not carry."""
    problems = [f"unknown metric {name!r}" for name in sorted(metric_names(expr) - set(allowed))]
    for sel in selectors(expr):
        if sel.metric in allowed:
            extra = sel.labels - allowed[sel.metric] - {"__name__"}
            if extra:
                problems.append(f"{sel.metric} has no label(s) {sorted(extra)}")
    return problems
