"""Do two benchmark runs agree? `python -m benchmarks.compare A.json B.json [--within 15]`.

Prints, for every figure measured in both runs (of the sections asked, density by
default), the two medians and how far apart they are: |a - b| / max(|a|, |b|). Figures
whose medians are both zero agree. Timings (ms or s) also agree when they are within
`--slack-ms` of each other: the lateness of a timer on a shared machine moves by a
millisecond or two from one run to the next, which is most of a 3 ms event-loop lag but
says nothing about the monitor. Exits 1 when a figure differs by more than `--within`
percent (and the slack), so that a script can tell.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any


def _medians(path: Path, sections: set[str]) -> dict[str, tuple[float, str]]:
    document: dict[str, Any] = json.loads(path.read_text())
    out = {}
    for figure in document["figures"]:
        measured = figure.get("measured")
        if figure["section"] in sections and isinstance(measured, (int, float)):
            out[figure["name"]] = (float(measured), figure.get("unit", ""))
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
    parser.add_argument("--slack-ms", type=float, default=2.0, help="for timings")
    args = parser.parse_args(argv)
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    first, second = _medians(args.first, sections), _medians(args.second, sections)
    apart = []
    print(f"| figure (median) | {args.first.name} | {args.second.name} | difference |")
    print("|---|---|---|---|")
    for name, (a, unit) in first.items():
        if name not in second:
            continue
        b = second[name][0]
        if not (math.isfinite(a) and math.isfinite(b)):
            continue
        percent = difference(a, b)
        flag = ""
        if percent > args.within and abs(a - b) > _slack(unit, args.slack_ms):
            apart.append(name)
            flag = " **over**"
        print(f"| {name} | {a:.3g} {unit} | {b:.3g} {unit} | {percent:.0f} %{flag} |")
    print(f"\n{len(apart)} figure(s) differ by more than {args.within:g} %", file=sys.stderr)
    return 1 if apart else 0


if __name__ == "__main__":
    sys.exit(main())
