"""The density benchmark's bookkeeping: which segments count, and late is not missed."""

from __future__ import annotations

import asyncio
import gc
import json
import math
import time
from collections import namedtuple
from pathlib import Path
from typing import Any

from benchmarks.density import (
    COPY_DEFAULT,
    COPY_KEYFRAME,
    LADDER_DEFAULT,
    BaselineRun,
    DensityPoint,
    JsonLines,
    MonitorRun,
    _expected,
    _gc_pauses,
    _machine_figures,
    _missed_note,
    _player_url,
    _pooled_figure,
    _ratio_figure,
    _Reported,
    _score,
    _tracks,
    clean,
    fell_behind,
    spread,
)
from benchmarks.monitor_proc import _GcPauses, _LoopLag
from benchmarks.speed import Speed
from benchmarks.usage import HostSample, Usage, host_span

WINDOW = (100.0, 120.0)  # SETTLE_SECONDS = 4: segments listed up to 116 are expected


def _usage() -> Usage:
    host = {"load_before": [1.0, 1.0, 1.0], "other_cores": 0.5}
    return Usage(10.0, 20.0, 1e8, 1e8, 1, started_at=WINDOW[0], ended_at=WINDOW[1], host=host)


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    with open(path, "a") as out:
        out.writelines(json.dumps(r) + "\n" for r in records)


def _segment(
    stream: str, sequence: int, listed: float, reported: float, rendition: str = "source"
) -> dict[str, Any]:
    return {
        "type": "segment",
        "stream": stream,
        "rendition": rendition,
        "sequence": sequence,
        "listed_at": listed + 0.02,
        "reported_at": reported,
    }


def _fetched(stream: str, sequence: int, listed: float, error: str | None) -> dict[str, Any]:
    return {
        "type": "fetched",
        "stream": stream,
        "rendition": "source",
        "sequence": sequence,
        "listed_at": listed,
        "downloaded_at": listed + 0.1,
        "analysed_at": listed + 0.2,
        "error": error,
    }


def test_expected_segments_are_those_listed_in_the_window_before_the_settle_time() -> None:
    truth = {"a.m3u8": {0: 99.0, 1: 100.0, 2: 116.0, 3: 116.5}, "b.m3u8": {7: 110.0}}
    expected = _expected(truth, {"s000/source": "a.m3u8", "s001/source": "b.m3u8"}, *WINDOW)
    assert expected == {
        ("s000/source", 1): 100.0,
        ("s000/source", 2): 116.0,
        ("s001/source", 7): 110.0,
    }


def test_a_segment_reported_after_the_window_is_late_and_one_never_reported_is_missed(
    tmp_path: Path,
) -> None:
    events = tmp_path / "events.jsonl"
    _write(
        events,
        [
            _fetched("s000", 1, 101.0, None),
            _segment("s000", 1, 101.0, 101.3),  # on time
            _fetched("s000", 2, 110.0, None),
            _segment("s000", 2, 110.0, 125.0),  # reported during the drain: 15 s behind
            _fetched("s001", 1, 105.0, "http_error"),  # handed over, failed, not reported
            {"type": "failure", "stream": "s001", "kind": "http_error", "at": 105.3, "detail": "x"},
            {"type": "failure", "stream": "s001", "kind": "http_error", "at": 121.0, "detail": "y"},
        ],
    )
    reported = _Reported(events)
    reported.update()
    expected = {
        ("s000/source", 1): 101.0,
        ("s000/source", 2): 110.0,
        ("s000/source", 3): 115.0,  # never handed over by its follower
        ("s001/source", 1): 105.0,
    }
    run = _score(2, _usage(), expected, reported, [1.0, 250.0], {"drain_seconds": 5.0})
    assert (run.expected, run.late, run.missed) == (4, 1, 2)
    assert run.details["late_examples"] == ["s000/source#2"]
    assert run.details["missed_examples"] == ["s000/source#3", "s001/source#1"]
    assert run.details["missed_handed_over"] == {"http_error": 1}
    assert run.details["missed_never_handed_over"] == 1
    assert [round(b) for b in run.backlog_ms] == [300, 15000]
    assert [round(e) for e in run.errors_ms] == [20, 20]
    assert len(run.failures) == 1  # only the one inside the window
    assert run.details["drain_seconds"] == 5.0
    on_time = _score(2, _usage(), {("s000/source", 1): 101.0}, reported, [1.0], {})
    note = _missed_note(DensityPoint(COPY_DEFAULT, 2, [on_time, run]))
    assert note.startswith("copy, default, N=2: the monitor fell behind in 1 of 2 draws")
    assert "1 late and 2 missed of 4: overload: the monitor fell behind" in note
    assert "downloads or analysis failed: 1 http_error" in note
    assert "max 15.0 s" in note
    assert _missed_note(DensityPoint(COPY_DEFAULT, 2, [on_time])) == ""


def test_a_monitor_seconds_behind_has_fallen_behind_before_any_segment_is_late() -> None:
    """Reports 3 s after listing at the p99, nothing late yet (that takes 4 s at the
    window's end): the monitor is not keeping up, the point is not clean."""

    details = {
        "listed_to_downloaded_ms": {},
        "downloaded_to_analysed_ms": {},
        "missed_handed_over": {},
        "missed_never_handed_over": 0,
    }

    def run(backlog_s: float) -> MonitorRun:
        backlog = [0.06 * 1000] * 90 + [backlog_s * 1000] * 10
        return MonitorRun(10, _usage(), [], backlog, [], 100, 0, 0, [], dict(details))

    assert not fell_behind(run(1.5))
    behind = run(3.0)
    assert fell_behind(behind)
    assert not clean(DensityPoint(LADDER_DEFAULT, 10, [run(1.5), behind]))
    assert clean(DensityPoint(LADDER_DEFAULT, 10, [run(1.5), run(0.1)]))
    note = _missed_note(DensityPoint(LADDER_DEFAULT, 10, [behind]))
    assert "fell behind in 1 of 1 draws" in note
    assert "0 late and 0 missed of 100: overload" in note


def test_percentile_rows_pool_the_draws_and_show_each_draws_own_as_the_range() -> None:
    draws = [[float(v) for v in range(1, 101)], [float(v) for v in range(1, 101)], [500.0] * 2]
    figure = _pooled_figure("x: p99", draws, 99, "ms")
    assert figure.measured == 100.0  # pooled: 202 samples, the 200th is 100
    assert figure.spread == (99.0, 500.0)  # each draw's own p99: 99, 99, 500
    assert figure.details["draws"] == [99.0, 99.0, 500.0]


def test_json_lines_are_read_once_and_only_when_complete(tmp_path: Path) -> None:
    path = tmp_path / "growing.jsonl"
    lines = JsonLines(path)
    assert lines.read_new() == []  # no file yet
    path.write_text('{"a": 1}\n{"b":')
    assert lines.read_new() == [{"a": 1}]
    with open(path, "a") as out:
        out.write(' 2}\n{"c": 3}\n')
    assert lines.read_new() == [{"b": 2}, {"c": 3}]
    assert lines.read_new() == []


def test_spread_is_the_median_and_range_of_the_finite_draws() -> None:
    assert spread([3.0, 1.0, 10.0]) == (3.0, (1.0, 10.0))
    assert spread([1.0, math.nan, 2.0]) == (1.5, (1.0, 2.0))
    median, limits = spread([math.nan])
    assert math.isnan(median) and limits is None


def test_host_span_shares_steal_idle_and_cores_used_by_others() -> None:
    Times = namedtuple("Times", "user nice system idle iowait irq softirq steal")
    before = HostSample(0.0, (1.0, 0.5, 0.25), Times(0, 0, 0, 0, 0, 0, 0, 0))
    # 10 s on 2 cores: 20 CPU seconds, of which 8 idle, 2 stolen, 10 busy
    after = HostSample(10.0, (2.0, 1.0, 0.5), Times(8, 0, 2, 8, 0, 0, 0, 2))
    span = host_span(before, after, own_cores=0.4)
    assert span["load_before"] == [1.0, 0.5, 0.25] and span["load_after"] == [2.0, 1.0, 0.5]
    assert span["steal_percent"] == 10.0
    assert span["idle_percent"] == 40.0
    assert span["busy_cores"] == 1.2  # steal counts as busy: the core was not ours
    assert span["other_cores"] == 0.8


def test_loop_lag_reports_a_stall_once_at_its_full_length() -> None:
    async def stall() -> list[tuple[float, float]]:
        lag = _LoopLag(every=0.05)
        timer = asyncio.create_task(lag.run())
        await asyncio.sleep(0.12)
        time.sleep(0.4)  # the loop is blocked: the timer cannot run
        await asyncio.sleep(0.12)
        timer.cancel()
        return lag.take()

    samples = asyncio.run(stall())
    lags = [lag for _, lag in samples]
    assert max(lags) >= 0.3
    # Missed ticks are not queued up: queued, they would run at once, 0.35 s, 0.30 s ... late.
    assert sum(1 for lag in lags if lag >= 0.25) == 1


def test_every_collection_is_timed_with_its_generation_and_read_back_in_the_window(
    tmp_path: Path,
) -> None:
    collections = _GcPauses()
    try:
        gc.collect()  # a full collection
    finally:
        collections.close()
    samples = collections.take()
    assert [generation for _, generation, _ in samples] == [2]
    at, _, pause = samples[0]
    assert 0 < pause < 5
    stats = tmp_path / "stats.jsonl"
    rows = [
        {"t": at, "gc": [[at - 30, 2, 0.09], [at, 2, pause], [at + 0.1, 0, 0.001]]},
        {"t": at + 30, "gc": [[at + 30, 1, 0.004]]},
    ]
    stats.write_text("".join(json.dumps(row) + "\n" for row in rows))
    # The full collection 30 s before the window is not the window's.
    assert _gc_pauses(stats, at - 1, at + 1) == [(2, pause * 1000), (0, 1.0)]


def test_a_ladder_is_followed_rendition_by_rendition_and_played_at_its_lowest() -> None:
    assert _tracks(LADDER_DEFAULT, ["k"]) == {
        "s000/640x360": "k_hi.m3u8",
        "s000/640x360-2": "k_lo.m3u8",
    }
    assert _tracks(COPY_KEYFRAME, ["k", "j"]) == {"s000/source": "k.m3u8", "s001/source": "j.m3u8"}

    class Origin:
        http_port = 8080

    assert _player_url(Origin(), LADDER_DEFAULT, "k").endswith(":8080/hls/k_lo.m3u8")  # type: ignore[arg-type]
    assert _player_url(Origin(), COPY_DEFAULT, "k").endswith(":8080/hls/k.m3u8")  # type: ignore[arg-type]
    assert LADDER_DEFAULT.players and not COPY_KEYFRAME.players


def test_renditions_of_one_stream_count_apart(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    _write(
        events,
        [
            _segment("s000", 4, 101.0, 101.2, "640x360"),
            _segment("s000", 4, 101.0, 101.3, "256x144"),
        ],
    )
    reported = _Reported(events)
    reported.update()
    assert set(reported.segments) == {("s000/640x360", 4), ("s000/256x144", 4)}
    assert reported.count_by_track() == {"s000/640x360": 1, "s000/256x144": 1}


def _run(cpu_seconds: float, failures: int = 0, missed: int = 0, late: int = 0) -> MonitorRun:
    usage = Usage(cpu_seconds, 20.0, 1e8, 1e8, 1, main_thread_cpu_seconds=cpu_seconds / 2)
    failed = [{"kind": "frozen_video"}] * failures
    details: dict[str, Any] = {"failure_kinds": [], "failure_examples": []}
    return MonitorRun(10, usage, [], [], [], 100, late, missed, failed, details)


def _cores(cores: float) -> Usage:
    return Usage(cores * 20.0, 20.0, 1e7, 1e7, 10)


def test_the_default_mode_is_held_to_publishers_and_players_keyframe_to_publishers() -> None:
    speed = Speed([])  # no probe samples: CPU seconds as measured
    default = DensityPoint(
        LADDER_DEFAULT, 50, [_run(20.0)], [BaselineRun(_cores(0.4), _cores(0.6))]
    )
    ratio = _ratio_figure(default, speed)
    assert ratio.name == "ladder, default, N=50: monitor CPU / ffmpeg publishers + players CPU"
    assert ratio.measured == 1.0 and ratio.met
    keyframe = DensityPoint(COPY_KEYFRAME, 100, [_run(10.0)], [BaselineRun(_cores(0.4), None)])
    ratio = _ratio_figure(keyframe, speed)
    assert ratio.name == "copy, keyframe, N=100: monitor CPU / ffmpeg publishers CPU"
    assert ratio.measured == 1.25 and ratio.met is False


def test_a_monitor_that_fell_behind_is_not_held_to_the_cpu_target() -> None:
    speed = Speed([])
    baseline = BaselineRun(_cores(0.4), _cores(0.6))
    point = DensityPoint(
        LADDER_DEFAULT, 50, [_run(16.0), _run(16.0, missed=3)], [baseline, baseline]
    )
    ratio = _ratio_figure(point, speed)
    assert ratio.measured == 0.8  # below 1.0, but not a pass: its CPU was capped
    assert ratio.target is None
    assert "fell behind in 1 of 2 draws" in ratio.note


def test_streams_per_machine_is_the_largest_clean_n_at_the_defaults() -> None:
    baseline = [BaselineRun(_cores(0.4), _cores(0.6))]
    points = [
        DensityPoint(LADDER_DEFAULT, 10, [_run(5.0)], baseline),
        DensityPoint(LADDER_DEFAULT, 50, [_run(20.0), _run(20.0, missed=1)], baseline * 2),
        DensityPoint(COPY_DEFAULT, 10, [_run(5.0)], baseline),
        DensityPoint(COPY_DEFAULT, 50, [_run(20.0)], baseline),
        DensityPoint(COPY_DEFAULT, 100, [_run(40.0, failures=2)], baseline),
        DensityPoint(COPY_KEYFRAME, 100, [_run(10.0)], baseline),  # not the defaults
    ]
    ladder, copy = _machine_figures(points)
    assert ladder.name == "streams per 2-core machine at the defaults (ladder)"
    assert ladder.measured == 10.0 and ladder.met is False  # one draw at 50 missed a segment
    assert copy.measured == 50.0  # N=100 failed checks
    behind = [DensityPoint(LADDER_DEFAULT, 50, [_run(20.0, late=191)], baseline), *points[2:]]
    ladder, _ = _machine_figures(behind)
    assert ladder.measured == 0.0  # every segment reported, but seconds late: not kept up
