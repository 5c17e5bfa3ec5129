from __future__ import annotations

import pytest

from streamer.playback.playlist import (
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
        "#EXT-X-STREAM-INF:BANDWIDTH=500000\nc.m3u8\n",
        "http://o/m.m3u8",
    )
    assert isinstance(master, MasterPlaylist)
    assert rendition_names(master.variants) == ["1280x720-2000k", "1280x720-1000k", "500k"]
