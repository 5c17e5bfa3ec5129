"""LL-HLS playlists: parts, preload hints, server controls, delta updates (RFC 8216bis)."""

from __future__ import annotations

import pytest

from streamer.playback.playlist import MediaPlaylist, PlaylistError, parse

URI = "http://origin.test/live/index.m3u8"

LL = """#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0,CAN-SKIP-UNTIL=12.0,HOLD-BACK=6
#EXT-X-PART-INF:PART-TARGET=0.334
#EXT-X-MEDIA-SEQUENCE:100
#EXT-X-MAP:URI="init.mp4"
#EXTINF:2.0,
seg100.m4s
#EXT-X-PART:DURATION=0.333,URI="p101_0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.333,URI="seg101.m4s",BYTERANGE=1000@0
#EXT-X-PART:DURATION=0.333,URI="seg101.m4s",BYTERANGE=500
#EXTINF:1.0,
seg101.m4s
#EXT-X-PART:DURATION=0.333,URI="p102_0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.333,URI="p102_1.m4s",GAP=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="p102_2.m4s"
#EXT-X-RENDITION-REPORT:URI="../low/index.m3u8",LAST-MSN=102,LAST-PART=1
"""


def media(text: str) -> MediaPlaylist:
    playlist = parse(text, URI)
    assert isinstance(playlist, MediaPlaylist)
    return playlist


def test_parts_of_listed_and_building_segments_are_numbered_by_their_segment() -> None:
    playlist = media(LL)
    assert [s.sequence for s in playlist.segments] == [100, 101]
    assert [p.key for p in playlist.parts] == [(101, 0), (101, 1), (101, 2), (102, 0), (102, 1)]
    first, ranged, follows, building, gap = playlist.parts
    assert first.independent and first.uri == "http://origin.test/live/p101_0.m4s"
    assert first.init_uri == "http://origin.test/live/init.mp4"
    assert ranged.byterange == (0, 1000) and not ranged.independent
    assert follows.byterange == (1000, 500)  # no offset: right after the previous range
    assert building.init_uri == first.init_uri and gap.gap
    assert playlist.low_latency


def test_server_control_hint_and_reports() -> None:
    playlist = media(LL)
    assert playlist.can_block_reload and playlist.part_target == pytest.approx(0.334)
    assert playlist.part_hold_back == 1.0 and playlist.hold_back == 6.0
    assert playlist.can_skip_until == 12.0 and playlist.part_inf_declared
    assert playlist.preload_hint is not None
    assert playlist.preload_hint.uri == "http://origin.test/live/p102_2.m4s"
    (report,) = playlist.rendition_reports
    assert (report.uri, report.last_msn, report.last_part) == (
        "http://origin.test/low/index.m3u8",
        102,
        1,
    )


def test_a_delta_update_numbers_segments_after_the_skipped_ones() -> None:
    delta = LL.replace(
        '#EXT-X-MAP:URI="init.mp4"\n#EXTINF:2.0,\nseg100.m4s\n',
        '#EXT-X-SKIP:SKIPPED-SEGMENTS=1\n#EXT-X-MAP:URI="init.mp4"\n',
    )
    playlist = media(delta)
    assert playlist.skipped_segments == 1 and playlist.media_sequence == 100
    assert [s.sequence for s in playlist.segments] == [101]
    assert playlist.segments_after(100) == playlist.segments
    assert playlist.parts[-1].key == (102, 1)


def test_a_plain_playlist_has_no_ll_hls_fields() -> None:
    playlist = media("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n")
    assert not playlist.low_latency and playlist.parts == () and playlist.preload_hint is None
    assert playlist.part_hold_back is None and playlist.skipped_segments == 0


def test_cutting_old_segments_drops_their_parts() -> None:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:2", "#EXT-X-PART-INF:PART-TARGET=0.5"]
    for n in range(300):
        lines += [f'#EXT-X-PART:DURATION=0.5,URI="p{n}.m4s"', "#EXTINF:2,", f"s{n}.m4s"]
    playlist = media("\n".join(lines) + "\n")
    assert playlist.segments[0].sequence == 300 - 256
    assert playlist.parts[-1].uri.endswith("p299.m4s") and playlist.parts[-1].sequence == 299
    assert playlist.parts[0].sequence > 300 - 256


@pytest.mark.parametrize(
    "bad",
    [
        '#EXT-X-PART:DURATION=-1,URI="p.m4s"',
        '#EXT-X-PART:DURATION=0.3,URI="p.m4s",BYTERANGE=0@5',
        "#EXT-X-SERVER-CONTROL:PART-HOLD-BACK=99999",
    ],
)
def test_absurd_ll_hls_values_are_playlist_errors(bad: str) -> None:
    with pytest.raises(PlaylistError):
        parse(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n{bad}\n#EXTINF:2,\na.m4s\n", URI)


def test_parts_of_the_first_segment_being_built_have_the_init_section() -> None:
    playlist = media(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=0.334\n"
        '#EXT-X-MAP:URI="init.mp4"\n#EXT-X-PART:DURATION=0.333,URI="p0.m4s",INDEPENDENT=YES\n'
    )
    assert playlist.segments == ()
    assert playlist.parts[0].init_uri == "http://origin.test/live/init.mp4"
