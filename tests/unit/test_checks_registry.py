"""The registry builds every check, with per-stream settings validated up front."""

from __future__ import annotations

import pytest

from streamer.checks import validate_settings
from streamer.checks.registry import REGISTRY, build_checks
from tests.support.check_records import context

ALL_CHECKS = {
    "audio_missing",
    "av_desync",
    "codec_mismatch",
    "discontinuity",
    "duration_mismatch",
    "frame_drop",
    "frozen_video",
    "media_sequence_gap",
    "media_sequence_regression",
    "part_duration_mismatch",
    "part_late",
    "rendition_drift",
    "rendition_missing",
    "segment_latency",
    "stale_playlist",
    "timestamp_gap",
}


def test_build_checks_sees_every_check_module() -> None:
    assert {check.name for check in build_checks(context())} == ALL_CHECKS
    # One kind per check: `checks: {<kind>: ...}` configures exactly what it reports.
    for name, cls in REGISTRY.items():
        assert cls.kinds == (name,)


def test_a_check_can_be_disabled_per_stream() -> None:
    names = {c.name for c in build_checks(context(), {"frozen_video": {"enabled": False}})}
    assert names == ALL_CHECKS - {"frozen_video"}


def test_settings_override_defaults() -> None:
    (stale,) = [
        c
        for c in build_checks(context(), {"stale_playlist": {"factor": 3}})
        if c.name == "stale_playlist"
    ]
    assert stale.settings["factor"] == 3
    (drift,) = [c for c in build_checks(context()) if c.name == "rendition_drift"]
    assert drift.settings == {"factor": 1.0}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"no_such_check": {}}, "unknown check"),
        ({"stale_playlist": {"factr": 2}}, "unknown setting(s) factr"),
        ({"stale_playlist": {"factor": "fast"}}, "factor must be a number"),
        ({"timestamp_gap": {"tolerance_seconds": -1}}, "tolerance_seconds must be a number >= 0"),
        ({"av_desync": {"threshold_seconds": float("nan")}}, "threshold_seconds"),
        ({"frame_drop": {"min_gap_ms": True}}, "min_gap_ms must be a number"),
        ({"frozen_video": {"max_repeats": 1}}, "max_repeats is no longer supported"),
    ],
)
def test_bad_settings_fail_before_any_session(
    settings: dict[str, dict[str, object]], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_settings(settings)


def test_valid_settings_pass_validation() -> None:
    validate_settings({"duration_mismatch": {"tolerance_seconds": 0.5, "enabled": True}})
