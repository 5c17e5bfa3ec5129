"""Hostile playlists: parsing ends in a playlist or a clean PlaylistError, and the checks that
read parsed playlists never crash, whatever the platform serves."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.checks.registry import build_checks
from streamer.playback.playlist import (
    MAX_PLAYLIST_BYTES,
    MasterPlaylist,
    MediaPlaylist,
    PlaylistError,
    parse,
    rendition_names,
)
from tests.support.check_records import T0, context

URI = "http://origin/hls/key.m3u8"
FUZZ = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

# Values platforms (or attackers) put where numbers belong.
hostile_numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        ["", "-0", "1e309", "0x10", "2,5", "nan", "NaN", "∞", "1_000", " 7 ", "9" * 400]
    ),
)
hostile_text = st.text(max_size=40)  # any Unicode but lone surrogates
uris = st.one_of(
    st.sampled_from(
        [
            "seg.ts",
            "/abs/seg.ts",
            "http://[::1",
            "http://x:99999/a.ts",
            "../../../etc/passwd",
            "data:,x",
            "//host/seg.ts",
            " ",
            "seg.ts?a=%zz",
            "k.m3u8",
        ]
    ),
    hostile_text.filter(lambda t: t.strip() and not t.startswith("#") and "\n" not in t),
)


@st.composite
def tag_lines(draw: st.DrawFn) -> str:
    n = draw(hostile_numbers)
    text = draw(hostile_text)
    return draw(
        st.sampled_from(
            [
                "#EXTM3U",
                f"#EXT-X-VERSION:{n}",
                f"#EXT-X-TARGETDURATION:{n}",
                f"#EXT-X-MEDIA-SEQUENCE:{n}",
                f"#EXT-X-DISCONTINUITY-SEQUENCE:{n}",
                f"#EXTINF:{n},{text}",
                "#EXTINF:",
                "#EXT-X-DISCONTINUITY",
                "#EXT-X-ENDLIST",
                f"#EXT-X-ERROR:{text}",
                f"#EXT-X-BYTERANGE:{n}@{n}",
                f'#EXT-X-MAP:URI="{text}",BYTERANGE="{n}@{n}"',
                f'#EXT-X-KEY:METHOD=AES-128,URI="{text}",IV={n}',
                f"#EXT-X-PROGRAM-DATE-TIME:{text}",
                f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={n}",
                f'#EXT-X-PART:DURATION={n},URI="{text}"',
                f'#EXT-X-STREAM-INF:BANDWIDTH={n},RESOLUTION={n}x{n},CODECS="{text}"',
                f"#EXT-X-STREAM-INF:RESOLUTION={text},FRAME-RATE={n}",
                "#EXT-X-STREAM-INF:",
                f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{text}",URI="{text}"',
                f"#{text}",
            ]
        )
    )


def mostly(sane: st.SearchStrategy[str], hostile: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """`sane` nine times in ten: enough valid structure to reach the code behind parsing."""
    return st.integers(0, 9).flatmap(lambda k: hostile if k == 0 else sane)


integers = mostly(st.integers(0, 50).map(str), hostile_numbers)
durations = mostly(st.floats(0, 10, allow_nan=False).map(lambda f: f"{f:.3f}"), hostile_numbers)
segment_uris = mostly(st.integers(0, 99).map(lambda n: f"seg-{n}.ts"), uris)
junk = st.lists(st.one_of(tag_lines(), uris), max_size=2)


@st.composite
def media_playlists(draw: st.DrawFn) -> str:
    lines = ["#EXTM3U", f"#EXT-X-TARGETDURATION:{draw(integers)}"]
    if draw(st.booleans()):
        lines.append(f"#EXT-X-MEDIA-SEQUENCE:{draw(integers)}")
    for _ in range(draw(st.integers(0, 12))):
        if draw(st.integers(0, 4)) == 0:
            lines.append("#EXT-X-DISCONTINUITY")
        lines += [f"#EXTINF:{draw(durations)},", draw(segment_uris)]
        if draw(st.integers(0, 9)) == 0:
            lines.append(draw(tag_lines()))
    if draw(st.booleans()):
        lines.append("#EXT-X-ENDLIST")
    if draw(st.integers(0, 3)) == 0:
        lines += draw(junk)
    return "\n".join(lines) + "\n"


@st.composite
def master_playlists(draw: st.DrawFn) -> str:
    lines = ["#EXTM3U"]
    for _ in range(draw(st.integers(0, 6))):
        resolution = draw(mostly(st.sampled_from(["640x360", "256x144"]), hostile_text))
        codecs = draw(st.sampled_from(["avc1.64001e,mp4a.40.2", "hvc1.1", "", "mp4a.40.34"]))
        lines += [
            f"#EXT-X-STREAM-INF:BANDWIDTH={draw(integers)},RESOLUTION={resolution},"
            f'CODECS="{codecs}"',
            draw(mostly(st.sampled_from(["a.m3u8", "b/b.m3u8"]), uris)),
        ]
    if draw(st.integers(0, 3)) == 0:
        lines += draw(junk)
    return "\n".join(lines) + "\n"


playlists = st.one_of(
    media_playlists(),
    master_playlists(),
    st.lists(st.one_of(tag_lines(), uris), max_size=40).map(
        lambda lines: "\n".join(["#EXTM3U", *lines]) + "\n"
    ),
)


def _parse(text: str) -> MasterPlaylist | MediaPlaylist | None:
    try:
        parsed = parse(text, URI)
    except PlaylistError as exc:
        assert str(exc)  # a reason that can be reported
        return None
    if isinstance(parsed, MasterPlaylist):
        assert len(rendition_names(parsed.variants)) == len(parsed.variants)
    else:
        assert all(0 <= s.duration < 3600 for s in parsed.segments)
        assert parsed.media_sequence >= 0
    return parsed


@FUZZ
@given(st.text(max_size=2000))
def test_any_text_parses_or_fails_cleanly(text: str) -> None:
    _parse(text)


@FUZZ
@given(playlists)
def test_structured_hostile_playlists_parse_or_fail_cleanly(text: str) -> None:
    _parse(text)


@FUZZ
@given(st.lists(playlists, min_size=1, max_size=8), st.lists(st.floats(0, 30), max_size=8))
def test_checks_never_crash_on_what_parses(texts: list[str], ticks: list[float]) -> None:
    ctx = context(expected_renditions=2)
    checks = build_checks(ctx)
    now = T0
    for i, text in enumerate(texts):
        parsed = _parse(text)
        now += ticks[i] if i < len(ticks) else 1.0
        for check in checks:
            if isinstance(parsed, MasterPlaylist):
                check.on_master(parsed, rendition_names(parsed.variants), now)
            elif parsed is not None:
                check.on_playlist("r", parsed, now)
            check.on_tick(now)
    ctx.publish_stopped_at = now
    for check in checks:
        check.on_end(now)


def test_oversized_playlist_is_refused_before_parsing() -> None:
    body = "#EXTM3U\n" + "#EXTINF:2,\nseg.ts\n" * (MAX_PLAYLIST_BYTES // 16)
    started = time.monotonic()
    try:
        parse(body, URI)
    except PlaylistError as exc:
        assert "larger than" in str(exc)
    else:
        raise AssertionError("an oversized playlist was parsed")
    assert time.monotonic() - started < 0.5


def test_huge_sequence_numbers_are_checked_like_small_ones() -> None:
    checks = {c.name: c for c in build_checks(context())}
    big = 10**300

    def playlist(first: int) -> str:
        return (
            f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n#EXTINF:2,\na.ts\n"
        )

    gap = checks["media_sequence_gap"]
    first, later = parse(playlist(big), URI), parse(playlist(big + 5), URI)
    assert isinstance(first, MediaPlaylist) and isinstance(later, MediaPlaylist)
    assert gap.on_playlist("r", first, T0) == []
    (failure,) = gap.on_playlist("r", later, T0 + 1)
    assert failure.detail.startswith("4 segment(s) never listed")


segment_tags = st.sampled_from(
    [
        "#EXT-X-DISCONTINUITY",
        '#EXT-X-MAP:URI="init-a.mp4"',
        '#EXT-X-MAP:URI="init-b.mp4"',
        "#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:00Z",
        "#EXT-X-UNKNOWN:1",
        "",
    ]
)


@FUZZ
@given(
    st.lists(st.tuples(st.lists(segment_tags, max_size=3), st.integers(0, 9)), max_size=40),
    st.lists(segment_tags, max_size=3),
    st.integers(1, 12),
)
def test_cutting_old_segments_keeps_the_newest_exactly(
    segments: list[tuple[list[str], int]], header: list[str], keep: int
) -> None:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:10", "#EXT-X-MEDIA-SEQUENCE:5", *header]
    for n, (tags, seconds) in enumerate(segments):
        lines += [*tags, f"#EXTINF:{seconds}.0,", f"s{n}.ts"]
    text = "\n".join(lines) + "\n"
    whole = parse(text, URI, max_segments=10**6)
    newest = parse(text, URI, max_segments=keep)
    assert isinstance(whole, MediaPlaylist) and isinstance(newest, MediaPlaylist)
    assert newest.segments == whole.segments[-keep:] if segments else newest.segments == ()
