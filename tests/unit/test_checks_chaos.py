"""The chaos proxy's fault injectors do what the e2e fault tests rely on."""

from __future__ import annotations

import asyncio

import pytest

from streamer.playback.playlist import MediaPlaylist, parse
from streamer.playback.segment import SegmentDecodeError, analyse
from tests.support.chaos import (
    ChaosProxy,
    Corrupt,
    Fault,
    InsertTag,
    Request,
    SetExtinf,
    Skip,
    drop_segments,
    media_segments,
    shift_timestamps,
    strip_audio,
)
from tests.support.check_records import real_segment

MEDIA = b"""#EXTM3U
#EXT-X-VERSION:3
#EXT-X-MEDIA-SEQUENCE:4
#EXT-X-TARGETDURATION:2
#EXT-X-DISCONTINUITY
#EXTINF:2.000,
k-4.ts
#EXTINF:2.000,
k-5.ts
#EXTINF:2.000,
k-6.ts
"""


def _apply(fault: Fault, body: bytes, progress: int = 6) -> bytes:
    request = Request("/hls/k.m3u8", "k.m3u8", "media", progress, 200, body)
    result = asyncio.run(fault.apply(ChaosProxy("http://127.0.0.1:1"), request))
    assert isinstance(result, Request)
    return result.body


def _media(body: bytes) -> MediaPlaylist:
    parsed = parse(body.decode(), "http://o/hls/k.m3u8")
    assert isinstance(parsed, MediaPlaylist)
    return parsed


def test_media_segments_and_drop_segments_keep_numbering() -> None:
    assert media_segments(MEDIA) == (4, ["k-4.ts", "k-5.ts", "k-6.ts"])
    tail = _media(drop_segments(MEDIA, keep_from=6))
    assert [(s.sequence, s.uri.rsplit("/", 1)[1]) for s in tail.segments] == [(6, "k-6.ts")]
    head = _media(drop_segments(MEDIA, keep_until=5))
    assert [s.sequence for s in head.segments] == [4, 5] and head.segments[0].discontinuity


def test_skip_hides_a_segment_for_good() -> None:
    # While newest, segment 6 is held back; once 7 exists, everything up to 6 is cut.
    assert _media(_apply(Skip("k.m3u8", sequence=6), MEDIA)).last_sequence == 5
    later = MEDIA + b"#EXTINF:2.000,\nk-7.ts\n"
    skipped = _media(_apply(Skip("k.m3u8", sequence=6), later, progress=7))
    assert [s.sequence for s in skipped.segments] == [7]


def test_tags_and_extinf_land_on_the_right_segment() -> None:
    tagged = _media(_apply(InsertTag("k.m3u8", before=5), MEDIA))
    assert [s.discontinuity for s in tagged.segments] == [True, True, False]
    errored = _media(_apply(InsertTag("k.m3u8", tag="#EXT-X-ERROR:boom"), MEDIA))
    assert errored.error == "boom"
    longer = _media(_apply(SetExtinf("k.m3u8", sequence=6, seconds=3.5), MEDIA))
    assert [s.duration for s in longer.segments] == [2.0, 2.0, 3.5]


def test_strip_audio_leaves_video_only() -> None:
    analysis = analyse(strip_audio(real_segment()))
    assert analysis.audio is None and analysis.frame_count == 30


@pytest.mark.parametrize("seconds", [0.5, -0.25])
def test_shift_timestamps_moves_video_and_audio(seconds: float) -> None:
    before = analyse(real_segment())
    after = analyse(shift_timestamps(real_segment(), seconds))
    assert after.first_pts - before.first_pts == pytest.approx(seconds, abs=1e-4)
    assert before.audio is not None and after.audio is not None
    assert after.audio.first_pts - before.audio.first_pts == pytest.approx(seconds, abs=1e-4)
    assert after.timecodes == before.timecodes


@pytest.mark.parametrize("keep", [None, 376, 564, 20_000])
def test_corrupt_segments_never_decode(keep: int | None) -> None:
    body = asyncio.run(
        Corrupt("k.m3u8", keep_bytes=keep).apply(
            ChaosProxy("http://127.0.0.1:1"),
            Request("/hls/k-1.ts", "k-1.ts", "segment", 1, 200, real_segment()),
        )
    )
    assert isinstance(body, Request)
    with pytest.raises(SegmentDecodeError):
        analyse(body.body)
