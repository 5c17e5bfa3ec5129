"""Hostile segments cost bounded work: HLS containers only, bounded frames and picture size.

Each segment here is made with FFmpeg's libraries the way a hostile or broken packager
would make it, and must end in a clean SegmentDecodeError that says why, or, for the
containers HLS allows, in an analysis.
"""

from __future__ import annotations

import io
from fractions import Fraction
from functools import cache

import av
import numpy as np
import pytest

from streamer.playback.segment import (
    MAX_VIDEO_FRAMES,
    SegmentDecodeError,
    analyse,
    container_format,
)
from tests.support.check_records import real_segment


def _encode(
    container: str,
    codec: str,
    width: int,
    height: int,
    frames: int,
    options: dict[str, str] | None = None,
) -> bytes:
    out_buffer = io.BytesIO()
    with av.open(out_buffer, "w", format=container, options=options or {}) as out:
        stream = out.add_stream(codec, rate=30)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        gray = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
        for n in range(frames):
            frame = av.VideoFrame.from_ndarray(gray, format="yuv420p")
            frame.pts, frame.time_base = n, Fraction(1, 30)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return out_buffer.getvalue()


@cache
def _fragmented_mp4() -> bytes:
    return _encode(
        "mp4", "mpeg4", 320, 180, 30, {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
    )


def test_an_8k_picture_is_refused() -> None:
    data = _encode("mpegts", "mpeg2video", 7680, 4320, 1)
    with pytest.raises(SegmentDecodeError, match="7680x4320 is larger than 4K"):
        analyse(data)


def test_a_flood_of_tiny_frames_is_refused() -> None:
    data = _encode("mpegts", "mpeg2video", 16, 16, MAX_VIDEO_FRAMES + 200)
    with pytest.raises(SegmentDecodeError, match=f"more than {MAX_VIDEO_FRAMES} video frames"):
        analyse(data)


@pytest.mark.parametrize(
    "data",
    [
        # A playlist where a segment belongs: FFmpeg's HLS demuxer would fetch what it names.
        b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nhttp://169.254.169.254/latest\n",
        b"ffconcat version 1.0\nfile '/etc/passwd'\n",
        b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00",
        b"\x1a\x45\xdf\xa3\x93\x42\x82\x88matroska",  # Matroska / WebM
        b"<html>502 Bad Gateway</html>",
    ],
    ids=["playlist", "ffconcat", "flv", "matroska", "html"],
)
def test_containers_hls_does_not_allow_are_refused(data: bytes) -> None:
    with pytest.raises(SegmentDecodeError, match="not a segment format HLS allows"):
        analyse(data)


def test_fragmented_mp4_is_analysed_with_and_without_an_init_section() -> None:
    data = _fragmented_mp4()
    assert container_format(data) == "mov"
    whole = analyse(data)
    assert whole.frame_count == 30 and whole.resolution == "320x180"
    split = data.index(b"moof") - 4  # init section (ftyp, moov), then the fragments
    init, media = data[:split], data[split:]
    assert container_format(media) == "mov"
    assert analyse(media, init).frame_count == 30


def test_mpeg_ts_is_analysed() -> None:
    assert container_format(real_segment()) == "mpegts"
    assert analyse(real_segment()).frame_count == 30


def test_packed_audio_is_a_known_format_without_video() -> None:
    out_buffer = io.BytesIO()
    with av.open(out_buffer, "w", format="adts") as out:
        stream = out.add_stream("aac", rate=48000)
        samples = np.zeros((1, 1024), dtype=np.float32)
        for n in range(20):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 48000, n * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    data = b"ID3\x04\x00\x00\x00\x00\x00\x00" + out_buffer.getvalue()  # an empty ID3 tag
    assert container_format(data) == "aac"
    with pytest.raises(SegmentDecodeError, match="no video stream"):
        analyse(data)
