"""Comparing two benchmark runs: which medians agree, and the exit status that says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmarks.compare import difference, main


def _run(path: Path, figures: dict[str, tuple[float | None, str]]) -> Path:
    path.write_text(
        json.dumps(
            {
                "figures": [
                    {"section": "density", "name": name, "measured": value, "unit": unit}
                    for name, (value, unit) in figures.items()
                ]
                + [{"section": "accuracy", "name": "other", "measured": 1.0, "unit": "ms"}]
            }
        )
    )
    return path


def test_difference_is_relative_to_the_larger_and_zero_for_two_zeros() -> None:
    assert difference(0.5, 0.4) == pytest.approx(20.0)
    assert difference(0.4, 0.5) == pytest.approx(20.0)
    assert difference(0.0, 0.0) == 0.0


def test_runs_agree_within_the_percentage_or_the_timing_slack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _run(
        tmp_path / "a.json",
        {"cpu": (0.50, "s"), "lag": (3.0, "ms"), "missed": (0.0, ""), "gone": (None, "")},
    )
    second = _run(
        tmp_path / "b.json",
        {"cpu": (0.46, "s"), "lag": (4.5, "ms"), "missed": (0.0, ""), "gone": (1.0, "")},
    )
    assert main([str(first), str(second)]) == 0  # 8 %; 1.5 ms apart is within the slack
    table = capsys.readouterr().out
    assert "| cpu | 0.5 s | 0.46 s | 8 % |" in table
    assert "other" not in table and "gone" not in table
    assert main([str(first), str(second), "--slack-ms", "1"]) == 1
    assert "| lag | 3 ms | 4.5 ms | 33 % **over** |" in capsys.readouterr().out


def test_a_cpu_figure_apart_by_more_than_the_percentage_fails(tmp_path: Path) -> None:
    first = _run(tmp_path / "a.json", {"cpu": (0.40, "s")})
    second = _run(tmp_path / "b.json", {"cpu": (0.50, "s")})
    assert main([str(first), str(second)]) == 1
    assert main([str(first), str(second), "--within", "25"]) == 0


def _point(path: Path, value: float, behind: int) -> Path:
    path.write_text(
        json.dumps(
            {
                "figures": [
                    {
                        "section": "density",
                        "name": "N=50: segments reported late",
                        "measured": value,
                        "unit": "",
                        "details": {"draws_behind": behind, "draws_total": 3},
                    }
                ]
            }
        )
    )
    return path


def test_a_point_behind_in_every_draw_of_both_runs_agrees_on_that_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _point(tmp_path / "a.json", 397.0, behind=3)
    second = _point(tmp_path / "b.json", 191.0, behind=3)
    assert main([str(first), str(second)]) == 0
    assert "fell behind in both runs: not held" in capsys.readouterr().out


def test_a_point_behind_in_one_run_only_disagrees(tmp_path: Path) -> None:
    first = _point(tmp_path / "a.json", 0.0, behind=0)
    second = _point(tmp_path / "b.json", 12.0, behind=3)
    assert main([str(first), str(second)]) == 1
    # Some draws behind in one run: compared as usual (0 vs 0 agrees).
    assert main([str(_point(tmp_path / "c.json", 0.0, 1)), str(first)]) == 0
