"""The benchmarks' table and JSON: what `make bench` prints and writes stays well-formed."""

from __future__ import annotations

import json
import math
from pathlib import Path

from benchmarks.common import percentile, summary
from benchmarks.table import (
    Figure,
    Target,
    figures_from_document,
    format_number,
    render_markdown,
    render_text,
    to_document,
    write_document,
)

FIGURES = [
    Figure(
        "accuracy",
        "listed-time error p50",
        12.3,
        "ms",
        Target("<=", 25.0),
        410.0,
        "fixed 500 ms polling",
        details={"segments": 30},
    ),
    Figure(
        "density",
        "N=50: monitor CPU / ffmpeg CPU",
        1.4,
        "x",
        Target("<=", 1.0),
        note="limited by | per-packet Python work",
    ),
    Figure("density", "N=50: RSS per stream", 2.5, "MB"),
    Figure("detection", "frozen", None, "s", Target("<=", 3.5), note="not reported"),
    Figure("soak", "fds", 0.0, "", Target("<=", 0.0, text="≤ 0 (flat)")),
    Figure("soak", "rss", 4.99, "%", Target("<", 5.0)),
    Figure("x", "nan", math.nan, "ms", Target("==", 1.0, tolerance=0.05)),
    # three draws: the median meets the target, one draw did not
    Figure("density", "N=100: segments missed", 0.0, "", Target("<=", 0.0), spread=(0.0, 12.0)),
    Figure("density", "N=50: lag p99", 41.5, "ms", spread=(12.34, 180.0)),
    Figure("density", "RSS per added stream", -0.5, "MB", spread=(-1.0, 0.25)),
]


def test_every_target_is_marked_met_or_not() -> None:
    text = render_text(FIGURES)
    lines = text.splitlines()
    assert lines[0].split() == ["figure", "measured", "target", "baseline", "status"]
    rows = {line.split("  ")[0].strip(): line for line in lines[2 : 2 + len(FIGURES)]}
    assert rows["accuracy: listed-time error p50"].rstrip().endswith("met")
    assert "NOT MET" in rows["density: N=50: monitor CPU / ffmpeg CPU [1]"]
    assert rows["density: N=50: RSS per stream"].rstrip().endswith("info")
    assert "NOT MET" in rows["detection: frozen [2]"]  # not measured is not met
    assert "n/a" in rows["detection: frozen [2]"]
    assert rows["soak: fds"].rstrip().endswith("met")
    assert "≤ 0 (flat)" in rows["soak: fds"]
    assert rows["soak: rss"].rstrip().endswith("met")
    assert "NOT MET" in rows["x: nan"]
    assert rows["density: N=100: segments missed"].rstrip().endswith("met")
    assert "0 (0-12.0)" in rows["density: N=100: segments missed"]
    assert "41.5 ms (12.3-180)" in rows["density: N=50: lag p99"]
    assert "-0.500 MB (-1.00 to 0.250)" in rows["density: RSS per added stream"]
    assert "12.3 ms" in rows["accuracy: listed-time error p50"]
    assert "≤ 25.0 ms" in rows["accuracy: listed-time error p50"]
    assert "410 ms (fixed 500 ms polling)" in rows["accuracy: listed-time error p50"]
    assert lines[-2] == "[1] limited by | per-packet Python work"
    assert lines[-1] == "[2] not reported"


def test_markdown_escapes_pipes_and_numbers_notes() -> None:
    markdown = render_markdown(FIGURES).splitlines()
    assert markdown[0] == "| figure | measured | target | baseline | status |"
    assert markdown[1] == "|---|---|---|---|---|"
    assert all(line.count(" | ") == 4 for line in markdown[2 : 2 + len(FIGURES)])
    assert "1. limited by | per-packet Python work" in markdown


def test_json_document_round_trips(tmp_path: Path) -> None:
    document = to_document(FIGURES, "python -m benchmarks", 0.0, {"benchmarks": ["accuracy"]})
    path = tmp_path / "latest.json"
    write_document(document, path)
    loaded = json.loads(path.read_text())  # strict JSON: NaN became null
    assert loaded["command"] == "python -m benchmarks"
    assert loaded["benchmarks"] == ["accuracy"]
    first = loaded["figures"][0]
    assert first["status"] == "met" and first["met"] is True
    assert first["target_text"] == "≤ 25.0 ms"
    assert first["details"] == {"segments": 30}
    assert loaded["figures"][2]["met"] is None
    assert loaded["figures"][6]["measured"] is None
    assert loaded["figures"][7]["spread"] == [0.0, 12.0]
    assert loaded["figures"][0]["spread"] is None
    again = figures_from_document(loaded)
    assert [f.name for f in again] == [f.name for f in FIGURES]
    assert again[7].spread == (0.0, 12.0)
    assert render_text(again[:6] + again[7:]) == render_text(FIGURES[:6] + FIGURES[7:])


def test_number_formatting_and_percentiles() -> None:
    assert format_number(1234.5, "ms") == "1234 ms"
    assert format_number(12.34, "ms") == "12.3 ms"
    assert format_number(1.234, "s") == "1.23 s"
    assert format_number(0.1234, "s") == "0.123 s"
    assert format_number(None, "s") == "n/a"
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values[:10], 99) == 10.0  # nearest rank: a measured value
    assert math.isnan(percentile([], 50))
    assert summary([0.001, 0.003], scale=1000)["p50"] == 1.0
    assert summary([]) == {"count": 0}
