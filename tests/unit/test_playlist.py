from __future__ import annotations

import pytest

from streamer.playback.playlist import (
    MAX_PARSED_SEGMENTS,
    MAX_PARSED_VARIANTS,
    MasterPlaylist,
    MediaPlaylist,
    PlaylistError,
    parse,
    rendition_names,
)

MASTER = """#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2"
k_360p.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=256x144
sub/k_144p.m3u8
"""

MEDIA = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-TARGETDURATION:2
#EXT-X-DISCONTINUITY
#EXTINF:2.000,
k-7.ts
#EXTINF:1.500,
k-8.ts
"""


def test_master_playlist_variants_are_absolute_and_named_by_resolution() -> None:
    master = parse(MASTER, "http://origin/hls/k.m3u8")
    assert isinstance(master, MasterPlaylist)
    assert [v.uri for v in master.variants] == [
        "http://origin/hls/k_360p.m3u8",
        "http://origin/hls/sub/k_144p.m3u8",
    ]
    assert master.variants[0].codecs == "avc1.64001e,mp4a.40.2"
    assert rendition_names(master.variants) == ["640x360", "256x144"]


def test_media_playlist_segments_carry_sequence_and_duration() -> None:
    media = parse(MEDIA, "http://origin/hls/k.m3u8")
    assert isinstance(media, MediaPlaylist)
    assert [(s.sequence, s.duration, s.uri) for s in media.segments] == [
        (7, 2.0, "http://origin/hls/k-7.ts"),
        (8, 1.5, "http://origin/hls/k-8.ts"),
    ]
    assert media.segments[0].discontinuity and not media.segments[1].discontinuity
    assert media.target_duration == 2 and not media.endlist and media.last_sequence == 8


def test_ext_x_error_is_surfaced() -> None:
    media = parse(MEDIA + "#EXT-X-ERROR:transcoder down\n", "http://o/k.m3u8")
    assert media.error == "transcoder down"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "<html>502 Bad Gateway</html>",
        "#EXTM3U\n#EXTINF:2.0,\nseg.ts\n",  # no target duration
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:abc,\nseg.ts\n",
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n",  # variant without URI
    ],
)
def test_malformed_playlists_raise_playlist_error(text: str) -> None:
    with pytest.raises(PlaylistError):
        parse(text, "http://o/p.m3u8")


def test_oversized_playlists_are_refused_before_parsing() -> None:
    with pytest.raises(PlaylistError, match="larger"):
        parse("#EXTM3U\n" + "#" * (2 << 20), "http://o/p.m3u8")


def test_repeated_resolutions_get_unique_names() -> None:
    master = parse(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=1280x720\na.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=1000000,RESOLUTION=1280x720\nb.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=500000\nc.m3u8\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS="mp4a.40.2"\nd.m3u8\n',
        "http://o/m.m3u8",
    )
    assert isinstance(master, MasterPlaylist)
    assert rendition_names(master.variants) == ["1280x720", "1280x720-2", "variant", "audio"]


def _two_720p(first: int, second: int) -> MasterPlaylist:
    master = parse(
        f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH={first},RESOLUTION=1280x720\na.m3u8\n"
        f"#EXT-X-STREAM-INF:BANDWIDTH={second},RESOLUTION=1280x720\nb.m3u8\n",
        "http://o/m.m3u8",
    )
    assert isinstance(master, MasterPlaylist)
    return master


def test_names_do_not_change_when_the_bandwidth_does() -> None:
    # A platform re-measuring its variants' BANDWIDTH between master refreshes: the same
    # renditions, which must keep their names (a new name is a new follower and label).
    names = {
        tuple(rendition_names(_two_720p(a, b).variants))
        for a, b in [(2_000_000, 1_000_000), (2_100_000, 990_000), (1_900_000, 1_050_000)]
    }
    assert names == {("1280x720", "1280x720-2")}


def test_many_variants_get_unique_names() -> None:
    variants = _two_720p(1, 2).variants * 10_000
    names = rendition_names(variants)
    assert len(set(names)) == len(variants) == 20_000
    assert names[-1] == "1280x720-20000"


def test_an_absurd_resolution_is_no_name() -> None:
    master = parse(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=99999999x1\na.m3u8\n",
        "http://o/m.m3u8",
    )
    assert isinstance(master, MasterPlaylist)
    assert master.variants[0].resolution is None
    assert rendition_names(master.variants) == ["variant"]


def test_ll_hls_part_target_and_blocking_reload() -> None:
    media = parse(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=0.334\n"
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0\n"
        "#EXT-X-MEDIA-SEQUENCE:4\n#EXTINF:2,\na.ts\n#EXTINF:2,\nb.ts\n#EXTINF:2,\nc.ts\n",
        "http://o/m.m3u8",
    )
    assert isinstance(media, MediaPlaylist)
    assert media.part_target == pytest.approx(0.334) and media.can_block_reload
    assert [s.sequence for s in media.segments_after(4)] == [5, 6]
    assert media.segments_after(6) == () and len(media.segments_after(1)) == 3
    plain = parse(MEDIA, "http://o/k.m3u8")
    assert isinstance(plain, MediaPlaylist) and plain.part_target is None


def test_absurd_part_target_is_a_playlist_error() -> None:
    with pytest.raises(PlaylistError, match="PART-TARGET"):
        parse(
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=-1\n#EXTINF:2,\na.ts\n",
            "http://o/m.m3u8",
        )


def _long_media(count: int) -> str:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:10"]
    lines += ['#EXT-X-MAP:URI="init0.mp4"', "#EXT-X-DISCONTINUITY"]
    for n in range(count):
        if n == count - 2 * MAX_PARSED_SEGMENTS:  # before the cut, still in force after it
            lines.append('#EXT-X-MAP:URI="init1.mp4"')
        if n == count - 100:
            lines.append('#EXT-X-MAP:URI="init2.mp4"')
        if n == count - 50:
            lines += ["#EXT-X-DISCONTINUITY", "#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:00Z"]
        lines += ["#EXTINF:2.000,", f"s{n}.ts"]
    return "\n".join(lines) + "\n#EXT-X-ERROR:late\n"


def test_a_long_media_playlist_is_parsed_from_its_newest_segments() -> None:
    count = 3 * MAX_PARSED_SEGMENTS
    media = parse(_long_media(count), "http://o/k.m3u8")
    assert isinstance(media, MediaPlaylist)
    assert len(media.segments) == MAX_PARSED_SEGMENTS
    # Numbered as in the whole playlist, URIs and tags where they belong.
    assert [s.sequence for s in media.segments[:1]] == [10 + count - MAX_PARSED_SEGMENTS]
    assert all(s.uri == f"http://o/s{s.sequence - 10}.ts" for s in media.segments)
    assert [s.sequence - 10 for s in media.segments if s.discontinuity] == [count - 50]
    inits = {s.sequence - 10: s.init_uri for s in media.segments}
    assert inits[count - MAX_PARSED_SEGMENTS] == "http://o/init1.mp4"  # carried over the cut
    assert inits[count - 101] == "http://o/init1.mp4"
    assert inits[count - 100] == inits[count - 1] == "http://o/init2.mp4"
    assert media.error == "late"
    short = parse(_long_media(10), "http://o/k.m3u8")
    assert isinstance(short, MediaPlaylist) and len(short.segments) == 10
    assert short.segments[0].discontinuity and short.segments[0].sequence == 10


def test_a_huge_master_is_parsed_up_to_what_can_be_followed() -> None:
    variants = "".join(
        f"#EXT-X-STREAM-INF:BANDWIDTH={1000 + i},RESOLUTION=640x360\nv{i}.m3u8\n"
        for i in range(5000)
    )
    master = parse("#EXTM3U\n" + variants, "http://o/m.m3u8")
    assert isinstance(master, MasterPlaylist)
    assert len(master.variants) == MAX_PARSED_VARIANTS and master.listed_variants == 5000
    assert master.variants[-1].uri == f"http://o/v{MAX_PARSED_VARIANTS - 1}.m3u8"
