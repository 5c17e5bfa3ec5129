"""Decode modes: keyframe mode reads one frame per GOP and knows the others by their PTS."""

from __future__ import annotations

import pytest

from streamer.playback.segment import analyse, default_mode
from tests.support.check_records import real_segment


def test_keyframe_mode_agrees_with_full_decoding() -> None:
    data = real_segment(2.0)
    full = analyse(data, mode="full")
    keyframe = analyse(data, mode="keyframe")
    assert keyframe.frame_count == full.frame_count == 60
    assert keyframe.frame_pts == full.frame_pts
    assert (keyframe.first_pts, keyframe.last_pts) == (full.first_pts, full.last_pts)
    assert keyframe.frame_duration == full.frame_duration
    assert keyframe.resolution == full.resolution
    assert keyframe.timecodes[0] == full.timecodes[0] == 0
    assert all(code is None for code in keyframe.timecodes[1:])
    assert all(code is not None for code in full.timecodes)
    assert keyframe.audio is not None and full.audio is not None
    assert keyframe.audio.first_pts == full.audio.first_pts
    # Keyframe mode decodes the audio around its markers only (the keyframe, and the tail
    # before the next segment's): the bursts there are the same as in full decoding.
    near = [t for t in full.audio.burst_onsets if abs(t - full.first_pts) < 0.5 or t > 1.5]
    assert len(keyframe.audio.burst_onsets) == len(near) >= 1
    for a, b in zip(keyframe.audio.burst_onsets, near, strict=True):
        assert abs(a - b) < 0.002
    assert len(full.audio.burst_onsets) == 2  # at 1 s and 2 s (the one at 0 s: leading)
    assert keyframe.audio.leading_loud == full.audio.leading_loud is not None
    assert abs(keyframe.audio.quiet_end_seconds - full.audio.quiet_end_seconds) < 0.002


@pytest.mark.parametrize(
    ("value", "mode"),
    [("", "full"), ("keyframe", "keyframe"), (" KEYFRAME ", "keyframe"), ("bogus", "full")],
)
def test_mode_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str, mode: str) -> None:
    monkeypatch.setenv("STREAMER_DECODE_MODE", value)
    assert default_mode() == mode
