"""Decode modes: keyframe mode reads one frame per GOP and knows the others by their PTS."""

from __future__ import annotations

import io
import itertools
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import pytest

from streamer.playback.segment import analyse, default_mode
from streamer.testsignal.clip import ClipSpec, _video_frames, load_clip
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


def _encoded(frozen: range, preset: str = "veryfast") -> bytes:
    """60 frames of the test picture (one GOP) as MPEG-TS; frames in `frozen` repeat the
    picture before them, as an encoder fed a frozen input codes them."""
    pictures = list(itertools.islice(_video_frames(ClipSpec()), 60))
    out_buffer = io.BytesIO()
    with av.open(out_buffer, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.options = {"preset": preset, "x264-params": "keyint=60:bframes=0"}
        for n in range(60):
            shown = pictures[frozen.start - 1] if n in frozen else pictures[n]
            frame = av.VideoFrame.from_ndarray(shown, format="yuv420p")
            frame.pts, frame.time_base = n, Fraction(1, 30)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return out_buffer.getvalue()


def test_keyframe_mode_decodes_every_frame_of_a_segment_whose_packets_look_still() -> None:
    # A frozen picture inside the GOP shows in no keyframe; its skipped-macroblock packets
    # (a few bytes each) show it, and the whole segment is then decoded.
    frozen = analyse(_encoded(range(20, 30)), mode="keyframe")
    assert frozen.timecodes[20:30] == (19,) * 10
    assert all(code is not None for code in frozen.timecodes)
    healthy = analyse(_encoded(range(0)), mode="keyframe")
    assert healthy.timecodes[0] == 0 and set(healthy.timecodes[1:]) == {None}


def _ffmpeg_hls_segment(tmp_path: Path) -> bytes:
    """A segment of FFmpeg's own HLS muxer: MPEG-TS, several AAC frames per PES."""
    clip = load_clip(ClipSpec())
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", str(clip.path), "-t", "2"]
    command += ["-c:v", "copy", "-c:a", "aac", "-f", "hls", "-hls_time", "2"]
    command += ["-hls_segment_filename", str(tmp_path / "seg_%03d.ts"), str(tmp_path / "x.m3u8")]
    subprocess.run(command, check=True)
    return (tmp_path / "seg_000.ts").read_bytes()


@pytest.mark.parametrize("mode", ["full", "keyframe"])
def test_audio_packed_several_frames_per_pes_is_continuous(tmp_path: Path, mode: str) -> None:
    analysis = analyse(_ffmpeg_hls_segment(tmp_path), mode=mode)  # type: ignore[arg-type]
    assert analysis.audio is not None
    assert analysis.audio.gap_seconds < 0.03
    assert analysis.audio.duration > 1.9
    assert analysis.audio.leading_loud is not None  # the burst at 0 s was decoded
