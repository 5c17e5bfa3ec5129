"""Do two benchmark runs agree? `python -m benchmarks.compare A.json B.json [--within 15]`.

Prints, for every figure measured in both runs (of the sections asked, density by
default), the two medians and how far apart they are: |a - b| / max(|a|, |b|). Figures
whose medians are both zero agree. Timings (ms or s) also agree when they are within
`--slack-ms` of each other: the lateness of a timer on a shared machine moves by a few
milliseconds from one run to the next, which is most of a 5 ms event-loop lag but says
nothing about the monitor (overload shows as tens of milliseconds and more).

A density point where the monitor fell behind in every draw (`details.draws_behind` ==
`details.draws_total`) measures a backlog that grows at whatever pace the machine grants:
when both runs fell behind there, they agree on the verdict and its figures are listed but
not held; when only one did, the runs disagree.

Exits 1 when a figure differs by more than `--within` percent (and the slack), so that a
script can tell.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class _Median:
    value: float
    unit: str
    fell_behind: bool  # the monitor fell behind in every draw of this figure's point


def _medians(path: Path, sections: set[str]) -> dict[str, _Median]:
    document: dict[str, Any] = json.loads(path.read_text())
    out = {}
    for figure in document["figures"]:
        measured = figure.get("measured")
        if figure["section"] in sections and isinstance(measured, (int, float)):
            details = figure.get("details") or {}
            behind, total = details.get("draws_behind", 0), details.get("draws_total", 0)
            out[figure["name"]] = _Median(
                float(measured),
                figure.get("unit", ""),
                bool(total) and behind == total,
            )
    return out


def difference(a: float, b: float) -> float:
    """|a - b| relative to the larger of the two, in percent (0 when both are 0)."""
    largest = max(abs(a), abs(b))
    return 0.0 if largest == 0 else abs(a - b) / largest * 100


def _slack(unit: str, slack_ms: float) -> float:
    return {"ms": slack_ms, "s": slack_ms / 1000}.get(unit, 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__)
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--sections", default="density", help="comma-separated")
    parser.add_argument("--within", type=float, default=15.0, help="percent")
    parser.add_argument("--slack-ms", type=float, default=5.0, help="for timings")
    args = parser.parse_args(argv)
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    first, second = _medians(args.first, sections), _medians(args.second, sections)
    apart = []
    print(f"| figure (median) | {args.first.name} | {args.second.name} | difference |")
    print("|---|---|---|---|")
    for name, one in first.items():
        other = second.get(name)
        if other is None:
            continue
        a, b, unit = one.value, other.value, one.unit
        if not (math.isfinite(a) and math.isfinite(b)):
            continue
        percent = difference(a, b)
        slack = _slack(unit, args.slack_ms)
        flag = ""
        if one.fell_behind and other.fell_behind:
            flag = " (fell behind in both runs: not held)"
        elif one.fell_behind != other.fell_behind:
            apart.append(name)
            flag = " **over** (fell behind in one run only)"
        elif percent > args.within and abs(a - b) > slack:
            apart.append(name)
            flag = " **over**"
        print(f"| {name} | {a:.3g} {unit} | {b:.3g} {unit} | {percent:.0f} %{flag} |")
    print(f"\n{len(apart)} figure(s) differ by more than {args.within:g} %", file=sys.stderr)
    return 1 if apart else 0


if __name__ == "__main__":
    sys.exit(main())
