"""Playback checks: one module per check, a common interface (base.py) and a registry.

Importing this package registers every check, so `registry.build_checks` always sees them
all, whichever module a caller imported first. Each check reports the kind it is named
after; a stream's `checks:` mapping configures them by that name (`enabled: false`, or
the settings below; unknown names, settings or bad values are refused).

A check fails a session only on what a viewer notices; below that it returns observations,
counted in metrics and never failing (base.Observation). Defaults, and why (docs/checks.md
has the full review against healthy packagers and real outages):

    rendition_missing           expected: configured, else the first master's count
    stale_playlist              factor: 1.5 x target duration without a new segment (a live
                                playlist grows every target duration; a viewer at the live
                                edge stalls after half a target more)
    media_sequence_regression   (players replay or stall)
    media_sequence_gap          (segments no viewer could ever play)
    discontinuity               (the test stream is one timeline; its first segment exempt)
    duration_mismatch           tolerance_seconds: 0.25, at least one frame
    timestamp_gap               tolerance_seconds: 0.1 (hls.js jumps holes up to 0.1 s)
    rendition_drift             factor: 1.0 x target duration between renditions
    codec_mismatch              (players pick variants by CODECS and RESOLUTION)
    frame_drop                  min_gap_frames: 3, min_gap_ms: 150: a hole of no new picture
                                of max(3 frames, 1 frame + 150 ms), 183 ms at 30 fps (W3C
                                webrtc-stats' freeze); fewer missing frames are counted
    frozen_video                min_freeze_frames: 3, min_freeze_ms: 150: a still picture
                                (or a step back) that long; single repeats are counted
    audio_missing               max_gap_seconds: 0.1 (a dropout a listener hears)
    av_desync                   max_early_seconds: 0.045, max_late_seconds: 0.125 (ITU-R
                                BT.1359 detectability), min_count: 2 offsets in a row
    segment_latency             max_seconds: 30, newest frame sent -> segment downloaded
    part_late                   factor: 3 x PART-TARGET without a new LL-HLS part (a
                                player holds back about 3 parts)
    part_duration_mismatch      part_tolerance_seconds: 0.02 over PART-TARGET,
                                segment_tolerance_seconds: 0.1 between parts and EXTINF
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
    part_duration_mismatch,
    part_late,
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
    "part_duration_mismatch",
    "part_late",
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
