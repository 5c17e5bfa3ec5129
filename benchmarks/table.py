"""Figures, the one table they print as, and the JSON document they are written to.

A figure is one measured number with its unit, the target it is held to (if any) and the
baseline measured in the same run (if any). A figure measured over several draws shows
their median with the spread, `median (min-max)`, and is held to its target by the
median. Whether a target is met is computed here from
the numbers, never typed in by hand; a target that is not met stays in the table with a
note on what limits it.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Op = Literal["<", "<=", ">", ">=", "=="]


@dataclass(frozen=True)
class Target:
    """`measured op value` (for "==", within `tolerance`)."""

    op: Op
    value: float
    tolerance: float = 0.0
    text: str = ""  # how the table shows it; derived from the numbers when empty

    def met(self, measured: float | None) -> bool | None:
        if measured is None or math.isnan(measured):
            return False
        if self.op == "<":
            return measured < self.value
        if self.op == "<=":
            return measured <= self.value
        if self.op == ">":
            return measured > self.value
        if self.op == ">=":
            return measured >= self.value
        return abs(measured - self.value) <= self.tolerance


@dataclass(frozen=True)
class Figure:
    section: str  # "accuracy", "density", "detection", "verdicts", "hostile", "soak"
    name: str
    measured: float | None  # None: could not be measured (the note says why)
    unit: str = ""
    target: Target | None = None
    baseline: float | None = None
    baseline_label: str = ""  # what the baseline is, e.g. "fixed 500 ms polling"
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)  # JSON only
    # (min, max) over repeated draws; `measured` is then their median
    spread: tuple[float, float] | None = None

    @property
    def met(self) -> bool | None:
        """True/False against the target; None when the figure has no target."""
        return None if self.target is None else self.target.met(self.measured)


def format_number(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    magnitude = abs(value)
    if magnitude == 0 or magnitude >= 100:
        text = f"{value:.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".rstrip() if unit else text


def measured_text(figure: Figure) -> str:
    """`median unit (min-max)` for a figure measured over several draws."""
    text = format_number(figure.measured, figure.unit)
    if figure.spread is not None:
        low, high = figure.spread
        between = " to " if min(low, high) < 0 else "-"  # "-1.00--0.50" would not read
        text += f" ({format_number(low)}{between}{format_number(high)})"
    return text


def target_text(target: Target | None, unit: str = "") -> str:
    if target is None:
        return "-"
    if target.text:
        return target.text
    symbol = {"<": "<", "<=": "≤", ">": ">", ">=": "≥", "==": "="}[target.op]
    text = f"{symbol} {format_number(target.value, unit)}"
    if target.op == "==" and target.tolerance:
        text += f" ± {format_number(target.tolerance, unit)}"
    return text


def status_text(figure: Figure) -> str:
    met = figure.met
    if met is None:
        return "info"
    return "met" if met else "NOT MET"


HEADERS = ("figure", "measured", "target", "baseline", "status")


def rows(figures: Sequence[Figure]) -> tuple[list[list[str]], list[str]]:
    """Table rows and the numbered notes they refer to."""
    body: list[list[str]] = []
    notes: list[str] = []
    for figure in figures:
        name = f"{figure.section}: {figure.name}"
        if figure.note:
            notes.append(figure.note)
            name += f" [{len(notes)}]"
        baseline = "-"
        if figure.baseline is not None or figure.baseline_label:
            baseline = format_number(figure.baseline, figure.unit)
            if figure.baseline_label:
                baseline += f" ({figure.baseline_label})"
        body.append(
            [
                name,
                measured_text(figure),
                target_text(figure.target, figure.unit),
                baseline,
                status_text(figure),
            ]
        )
    return body, notes


def render_text(figures: Sequence[Figure]) -> str:
    """A plain-text table for the terminal, notes below it."""
    body, notes = rows(figures)
    table = [list(HEADERS), *body]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADERS))]
    lines = []
    for index, row in enumerate(table):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.extend(f"[{i}] {note}" for i, note in enumerate(notes, start=1))
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(figures: Sequence[Figure]) -> str:
    """The same table as GitHub markdown, notes as a numbered list below it."""
    body, notes = rows(figures)
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" for _ in HEADERS) + "|",
    ]
    lines.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in body)
    if notes:
        lines.append("")
        lines.extend(f"{i}. {note}" for i, note in enumerate(notes, start=1))
    return "\n".join(lines)


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def to_document(
    figures: Iterable[Figure], command: str, started_at: float, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    items = []
    for figure in figures:
        item = asdict(figure)
        item["target_text"] = target_text(figure.target, figure.unit)
        item["status"] = status_text(figure)
        item["met"] = figure.met
        items.append(item)
    document: dict[str, Any] = {
        "command": command,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at)),
        "elapsed_seconds": round(time.time() - started_at, 1),
        "machine": {"cpus": _cpus(), "python": platform.python_version()},
        "figures": items,
    }
    if extra:
        document.update(extra)
    return _clean(document)  # type: ignore[no-any-return]


def _cpus() -> int | None:
    import os

    return os.cpu_count()


def write_document(document: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    tmp.replace(path)


def figures_from_document(document: dict[str, Any]) -> list[Figure]:
    """Reads figures back from a JSON document (to re-print a table)."""
    figures = []
    for item in document["figures"]:
        target = item.get("target")
        spread = item.get("spread")
        figures.append(
            Figure(
                section=item["section"],
                name=item["name"],
                measured=item["measured"],
                unit=item.get("unit", ""),
                target=Target(**target) if target else None,
                baseline=item.get("baseline"),
                baseline_label=item.get("baseline_label", ""),
                note=item.get("note", ""),
                details=item.get("details", {}),
                spread=(spread[0], spread[1]) if spread else None,
            )
        )
    return figures
