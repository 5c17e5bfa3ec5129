"""The LL-HLS checks on real parsed playlists: part_late, part_duration_mismatch and the
playlist rules reported as playlist_error; and the follower's next blocking request."""

from __future__ import annotations

from streamer.checks.base import PartRecord
from streamer.checks.part_duration_mismatch import PartDurationMismatch
from streamer.checks.part_late import PartLate
from streamer.playback.llhls import next_part, playlist_problems
from streamer.playback.playlist import MediaPlaylist, parse
from tests.support.check_records import context

URI = "http://origin.test/ll/index.m3u8"
T0 = 1_000.0


def ll_playlist(
    segments: int,
    parts: int,
    *,
    part_duration: float = 0.333,
    extinf: float = 1.998,
    control: str = "CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0",
    part_inf: bool = True,
) -> MediaPlaylist:
    """`segments` complete segments of 6 parts each from 100 on, then `parts` parts of the
    next."""
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:2", f"#EXT-X-SERVER-CONTROL:{control}"]
    if part_inf:
        lines.append("#EXT-X-PART-INF:PART-TARGET=0.334")
    lines += ["#EXT-X-MEDIA-SEQUENCE:100", '#EXT-X-MAP:URI="init.mp4"']
    for s in range(100, 100 + segments):
        lines += [f'#EXT-X-PART:DURATION={part_duration},URI="p{s}_{i}.m4s"' for i in range(6)]
        lines += [f"#EXTINF:{extinf},", f"s{s}.m4s"]
    s = 100 + segments
    lines += [f'#EXT-X-PART:DURATION={part_duration},URI="p{s}_{i}.m4s"' for i in range(parts)]
    lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="p{s}_{parts}.m4s"')
    playlist = parse("\n".join(lines) + "\n", URI)
    assert isinstance(playlist, MediaPlaylist)
    return playlist


def downloaded(playlist: MediaPlaylist, rendition: str = "r") -> PartRecord:
    part = playlist.parts[-1]
    return PartRecord(
        rendition=rendition,
        part=part,
        listed_at=T0,
        downloaded_at=T0 + 0.05,
        hinted=True,
        newest_frame_sent_at=T0 - 0.1,
    )


def test_next_blocking_request_is_the_part_after_the_newest() -> None:
    assert next_part(ll_playlist(2, 3)) == (102, 3)
    assert next_part(ll_playlist(2, 0)) == (102, 0)  # newest segment complete


def test_part_late_fails_once_per_stall_after_factor_part_targets() -> None:
    check = PartLate(context(), {})
    playlist = ll_playlist(2, 1)
    check.on_playlist("r", playlist, T0)
    check.on_part(downloaded(playlist))
    assert check.on_tick(T0 + 0.9) == []  # within 3 x 0.334 s
    check.on_playlist("r", ll_playlist(2, 2), T0 + 0.3)
    assert check.on_tick(T0 + 1.2) == []
    (failure,) = check.on_tick(T0 + 1.4)
    assert failure.kind == "part_late" and "102.1" in failure.detail
    assert check.on_tick(T0 + 2.0) == []  # once per stall
    check.on_playlist("r", ll_playlist(2, 3), T0 + 2.1)
    assert check.on_tick(T0 + 2.3) == []


def test_part_late_ignores_streams_without_parts_and_a_finished_publish() -> None:
    check = PartLate(context(publishing=False), {})
    playlist = ll_playlist(2, 1)
    check.on_playlist("r", playlist, T0)
    check.on_part(downloaded(playlist))
    assert check.on_tick(T0 + 10) == []
    plain = parse("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n", URI)
    assert isinstance(plain, MediaPlaylist)
    fresh = PartLate(context(), {})
    fresh.on_playlist("r", plain, T0)
    assert fresh.on_tick(T0 + 10) == []


def test_part_duration_mismatch_names_long_parts_and_segments_that_do_not_add_up() -> None:
    check = PartDurationMismatch(context(), {})
    assert check.on_playlist("r", ll_playlist(3, 2), T0) == []
    long_parts = check.on_playlist("r", ll_playlist(0, 2, part_duration=0.5), T0)
    assert [f.kind for f in long_parts] == ["part_duration_mismatch"] * 2
    assert "over PART-TARGET" in long_parts[0].detail
    sums = PartDurationMismatch(context(), {}).on_playlist("r", ll_playlist(1, 0, extinf=3.0), T0)
    assert len(sums) == 1 and "add up to 1.998s" in sums[0].detail
    assert check.on_playlist("r", ll_playlist(0, 2, part_duration=0.5), T0) == []  # once


def test_ll_hls_playlist_rules() -> None:
    assert playlist_problems(ll_playlist(1, 1)) == []
    (missing,) = playlist_problems(ll_playlist(1, 1, control="CAN-BLOCK-RELOAD=YES"))
    assert "without PART-HOLD-BACK" in missing
    low = ll_playlist(1, 1, control="CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.5")
    (below,) = playlist_problems(low)
    assert "below 2 x PART-TARGET" in below
    (no_inf,) = playlist_problems(ll_playlist(1, 1, part_inf=False))
    assert "without EXT-X-PART-INF" in no_inf
