"""Playback checks: one module per check, a common interface (base.py) and a registry.

Importing this package registers every check, so `registry.build_checks` always sees them
all, whichever module a caller imported first. Each check reports the kind it is named
after; a stream's `checks:` mapping configures them by that name (`enabled: false`, or
the settings below; unknown names, settings or bad values are refused):

    rendition_missing           (expected: SessionContext.expected_renditions)
    stale_playlist              factor: 1.5          x target duration without a new segment
    media_sequence_regression
    media_sequence_gap
    discontinuity
    duration_mismatch           tolerance_seconds: 0.25   (at least one frame)
    timestamp_gap               tolerance_seconds: 0.1
    rendition_drift             factor: 1.0          x target duration between renditions
    codec_mismatch
    frame_drop                  max_missing: 0       frames beyond the rendition's step
    frozen_video                max_repeats: 0       repeats beyond the rendition's step
    audio_missing               max_gap_seconds: 0.1
    av_desync                   threshold_seconds: 0.1, min_count: 2
    segment_latency             max_seconds: 30      newest frame sent -> segment downloaded
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamer.checks import (
    audio_missing,
    av_desync,
    codec_mismatch,
    discontinuity,
    duration_mismatch,
    frame_drop,
    frozen_video,
    media_sequence_gap,
    media_sequence_regression,
    rendition_drift,
    rendition_missing,
    segment_latency,
    stale_playlist,
    timestamp_gap,
)
from streamer.checks.base import SessionContext
from streamer.checks.registry import build_checks
from streamer.publish.sendlog import SendLog

__all__ = [
    "audio_missing",
    "av_desync",
    "codec_mismatch",
    "discontinuity",
    "duration_mismatch",
    "frame_drop",
    "frozen_video",
    "media_sequence_gap",
    "media_sequence_regression",
    "rendition_drift",
    "rendition_missing",
    "segment_latency",
    "stale_playlist",
    "timestamp_gap",
    "validate_settings",
]


def validate_settings(settings: Mapping[str, Mapping[str, Any]]) -> None:
    """Raises ValueError for an unknown check, an unknown setting or a bad value: lets
    configuration loading reject a `checks:` mapping before any session runs."""
    build_checks(SessionContext(SendLog(1, 30.0), 30.0, 60, None), settings)
