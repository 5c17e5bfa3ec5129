"""HLS playlists: parsed with `m3u8` into the small, typed views the follower and checks use.

Playlists come from the platform under test and may be hostile: size is capped before
parsing, and anything malformed becomes a PlaylistError, never another exception.

Parsing costs about 16 us per segment in `m3u8`: a 1 MiB media playlist (50,000 segments)
would hold the interpreter for seconds, on every poll that changes it. Only what a live
viewer needs is parsed: the newest `MAX_PARSED_SEGMENTS` segments of a media playlist (the
rest is cut off by C-speed string search first, with the media sequence carried over), and
the first `MAX_PARSED_VARIANTS` variants of a master (the count of the rest is kept).

LL-HLS (RFC 8216bis): the parts (EXT-X-PART) of the newest segments and of the one being
built, the preload hint, the server's controls, rendition reports and a delta update's
EXT-X-SKIP are read too; a playlist without them parses exactly as before.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from urllib.parse import urljoin

import m3u8

from streamer.untrusted import quote_untrusted

MAX_PLAYLIST_BYTES = 1 << 20
MAX_PARSED_SEGMENTS = 256  # a live viewer needs the newest ones only (8 min of 2 s ones)
MAX_PARSED_VARIANTS = 64  # no stream follows more renditions (max_renditions)
MAX_PARSED_PARTS = 64  # parts of the newest segments: a viewer at the live edge needs those
MAX_RENDITION_REPORTS = MAX_PARSED_VARIANTS
_EXTINF = "#EXTINF"
_STREAM_INF = "#EXT-X-STREAM-INF"
# Tags that belong to the segment after them: not carried over when older segments are cut.
_SEGMENT_TAGS = (
    "#EXT-X-DISCONTINUITY\n",
    "#EXT-X-PROGRAM-DATE-TIME",
    "#EXT-X-GAP",
    "#EXT-X-BYTERANGE",
    "#EXT-X-PART:",  # a cut segment's parts (not EXT-X-PART-INF, a playlist tag)
)
# No display is wider or taller: a larger RESOLUTION is junk, not a rendition's name.
_MAX_DIMENSION = 16384
_AUDIO_CODECS = ("mp4a", "ac-3", "ec-3", "opus", "flac", "mp3", ".mp3")


class PlaylistError(ValueError):
    """The platform served a playlist we cannot use; the message is safe to show."""


@dataclass(frozen=True)
class Variant:
    uri: str  # absolute
    bandwidth: int | None
    resolution: str | None  # "WxH"
    codecs: str | None


@dataclass(frozen=True)
class MasterPlaylist:
    variants: tuple[Variant, ...]
    error: str | None  # text of #EXT-X-ERROR, if any
    omitted_variants: int = 0  # listed after the first MAX_PARSED_VARIANTS: not parsed

    @property
    def listed_variants(self) -> int:
        return len(self.variants) + self.omitted_variants


@dataclass(frozen=True)
class Segment:
    sequence: int
    uri: str  # absolute
    duration: float  # EXTINF
    discontinuity: bool
    init_uri: str | None  # EXT-X-MAP, absolute


@dataclass(frozen=True)
class Part:
    """One LL-HLS part (EXT-X-PART) of segment `sequence`, the `index`-th from 0."""

    sequence: int
    index: int
    uri: str  # absolute
    duration: float
    independent: bool
    gap: bool
    byterange: tuple[int, int] | None  # (offset, length): fetched by range
    init_uri: str | None  # the EXT-X-MAP in force, absolute

    @property
    def key(self) -> tuple[int, int]:
        return self.sequence, self.index


@dataclass(frozen=True)
class PreloadHint:
    """EXT-X-PRELOAD-HINT of TYPE=PART: the next part, before it is listed."""

    uri: str  # absolute
    byterange: tuple[int, int | None] | None  # (offset, length or None: to the end)


@dataclass(frozen=True)
class RenditionReport:
    uri: str  # absolute
    last_msn: int | None
    last_part: int | None


@dataclass(frozen=True)
class MediaPlaylist:
    media_sequence: int
    # The target duration polling and the checks work with: EXT-X-TARGETDURATION as
    # declared, unless the follower found it implausible (see playback/target.py).
    target_duration: float
    segments: tuple[Segment, ...]
    endlist: bool
    can_block_reload: bool
    error: str | None
    part_target: float | None = None  # EXT-X-PART-INF PART-TARGET (LL-HLS)
    declared_target_duration: float | None = None  # set when target_duration replaced it
    # LL-HLS, all empty without it: the newest parts (of listed segments and of the one
    # being built, oldest first), EXT-X-SERVER-CONTROL, the preload hint, EXT-X-SKIP.
    parts: tuple[Part, ...] = ()
    part_inf_declared: bool = False  # EXT-X-PART-INF present (PART-TARGET may be absurd)
    part_hold_back: float | None = None
    hold_back: float | None = None
    can_skip_until: float | None = None
    preload_hint: PreloadHint | None = None
    rendition_reports: tuple[RenditionReport, ...] = ()
    skipped_segments: int = 0  # EXT-X-SKIP: older segments left out of a delta update

    @property
    def low_latency(self) -> bool:
        """Whether the playlist lists parts (or hints at one): a player plays those."""
        return bool(self.parts) or self.preload_hint is not None

    @property
    def last_sequence(self) -> int | None:
        return self.segments[-1].sequence if self.segments else None

    def segments_after(self, sequence: int) -> tuple[Segment, ...]:
        """The segments numbered above `sequence` (sequences are consecutive)."""
        base = self.segments[0].sequence if self.segments else self.media_sequence
        start = max(0, sequence + 1 - base)
        return self.segments[start:]


def _error_tag(text: str) -> str | None:
    at = text.find("#EXT-X-ERROR")
    while at > 0 and text[at - 1] != "\n":  # only a tag at the start of a line
        at = text.find("#EXT-X-ERROR", at + 1)
    if at < 0:
        return None
    end = text.find("\n", at)
    line = text[at : end if end >= 0 else len(text)]
    return quote_untrusted(line.partition(":")[2].strip()) or "EXT-X-ERROR"


def _line_start(text: str, at: int) -> int:
    return text.rfind("\n", 0, at) + 1


def _media_tail(text: str, keep: int) -> tuple[str, int]:
    """The playlist with only its newest `keep` segments, and how many were cut."""
    total = text.count(_EXTINF)
    if total <= keep:
        return text, 0
    first = _line_start(text, text.find(_EXTINF))
    at = len(text)
    for _ in range(keep):
        at = text.rfind(_EXTINF, 0, at)
    # Back over the tags that lead this segment, to the line after the previous one's URI.
    cut = _line_start(text, at)
    while cut > first:
        previous = _line_start(text, cut - 1)
        line = text[previous:cut].strip()
        if line and not line.startswith("#"):
            break
        cut = previous
    header = "".join(
        line
        for line in text[:first].splitlines(keepends=True)
        if not line.startswith(_SEGMENT_TAGS) and line.strip() != "#EXT-X-DISCONTINUITY"
    )
    if not header.endswith("\n"):
        header += "\n"
    carried = ""
    map_at = text.rfind("#EXT-X-MAP", first, cut)  # the init section still in force
    if map_at >= 0:
        end = text.find("\n", map_at)
        carried = text[map_at:end] + "\n"
    return header + carried + text[cut:], total - keep


def _master_head(text: str, keep: int) -> tuple[str, int]:
    """The master with only its first `keep` variants, and how many were left out."""
    total = text.count(_STREAM_INF)
    if total <= keep:
        return text, 0
    at = -1
    for _ in range(keep + 1):
        at = text.find(_STREAM_INF, at + 1)
    return text[: _line_start(text, at)], total - keep


def parse(
    text: str, uri: str, max_segments: int = MAX_PARSED_SEGMENTS
) -> MasterPlaylist | MediaPlaylist:
    """Parses either kind of playlist (a media playlist's newest `max_segments` segments);
    raises PlaylistError."""
    if len(text) > MAX_PLAYLIST_BYTES:
        raise PlaylistError(f"playlist larger than {MAX_PLAYLIST_BYTES} bytes")
    if not text.lstrip("\ufeff").startswith("#EXTM3U"):
        raise PlaylistError("not an HLS playlist (no #EXTM3U header)")
    error = _error_tag(text)
    omitted = skipped = 0
    if _STREAM_INF in text:
        text, omitted = _master_head(text, MAX_PARSED_VARIANTS)
    else:
        text, skipped = _media_tail(text, max_segments)
    try:
        playlist = m3u8.loads(text, uri=uri)
    except Exception as exc:  # m3u8 raises many types on bad input
        raise PlaylistError(f"malformed playlist: {exc.__class__.__name__}") from None
    try:
        if playlist.is_variant:
            return _master(playlist, uri, error, omitted)
        return _media(playlist, uri, error, skipped)
    except PlaylistError:
        raise
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise PlaylistError(f"malformed playlist: {exc.__class__.__name__}") from None


def _master(playlist: m3u8.M3U8, uri: str, error: str | None, omitted: int) -> MasterPlaylist:
    variants = []
    for item in playlist.playlists:
        info = item.stream_info
        resolution = None
        if info.resolution:
            width, height = (int(n) for n in info.resolution)
            if 0 < width <= _MAX_DIMENSION and 0 < height <= _MAX_DIMENSION:
                resolution = f"{width}x{height}"
        if not item.uri:
            raise PlaylistError("variant without a URI")
        variants.append(
            Variant(
                uri=urljoin(uri, item.uri),
                bandwidth=int(info.bandwidth) if info.bandwidth else None,
                resolution=resolution,
                codecs=info.codecs or None,
            )
        )
    if not variants and error is None:
        raise PlaylistError("master playlist lists no variants")
    return MasterPlaylist(variants=tuple(variants), error=error, omitted_variants=omitted)


def _media(playlist: m3u8.M3U8, uri: str, error: str | None, skipped: int) -> MediaPlaylist:
    first = int(playlist.media_sequence or 0)
    if first < 0:
        raise PlaylistError("negative media sequence")
    first += skipped  # the older segments cut off before parsing
    # m3u8 gives a Skip, or an empty dict without EXT-X-SKIP.
    skipped_segments = int(getattr(playlist.skip, "skipped_segments", None) or 0)
    if skipped_segments < 0:
        raise PlaylistError("negative EXT-X-SKIP SKIPPED-SEGMENTS")
    # A delta update lists its segments after the skipped ones; its media sequence stays the
    # playlist's (a full reload after a delta must not look like going back).
    numbered_from = first + skipped_segments
    segments = []
    listed = list(playlist.segments)
    # m3u8 lists the parts of the segment being built as a last segment without a URI.
    building = listed.pop() if listed and not listed[-1].uri and listed[-1].parts else None
    for offset, seg in enumerate(listed):
        if not seg.uri:
            raise PlaylistError("segment without a URI")
        duration = float(seg.duration) if seg.duration is not None else -1.0
        if not 0 <= duration < 3600:
            raise PlaylistError("segment with a missing or absurd EXTINF duration")
        init = seg.init_section.absolute_uri if seg.init_section is not None else None
        segments.append(
            Segment(
                sequence=numbered_from + offset,
                uri=urljoin(uri, seg.uri),
                duration=duration,
                discontinuity=bool(seg.discontinuity),
                init_uri=init,
            )
        )
    target = playlist.target_duration
    if target is None:
        if segments:
            raise PlaylistError("media playlist without #EXT-X-TARGETDURATION")
        target = 0
    server_control = playlist.server_control
    can_block = bool(server_control and server_control.can_block_reload == "YES")
    # m3u8 gives a PartInformation, or an empty dict without EXT-X-PART-INF.
    part_target = None
    declared_part = getattr(playlist.part_inf, "part_target", None)
    if declared_part is not None:
        part_target = float(declared_part)
        if not 0 < part_target < 3600:
            raise PlaylistError("absurd EXT-X-PART-INF PART-TARGET")
    # m3u8 attaches no EXT-X-MAP to the parts of the segment being built: the last one
    # in the playlist is theirs.
    maps = playlist.segment_map
    init = maps[-1].absolute_uri if maps else None
    parts = _parts(listed, building, numbered_from, uri, init)
    return MediaPlaylist(
        media_sequence=first,
        target_duration=float(target),
        segments=tuple(segments),
        endlist=bool(playlist.is_endlist),
        can_block_reload=can_block,
        error=error,
        part_target=part_target,
        parts=parts,
        part_inf_declared=declared_part_inf(playlist),
        part_hold_back=_seconds(server_control, "part_hold_back"),
        hold_back=_seconds(server_control, "hold_back"),
        can_skip_until=_seconds(server_control, "can_skip_until"),
        preload_hint=_preload_hint(playlist, uri),
        rendition_reports=_rendition_reports(playlist, uri),
        skipped_segments=skipped_segments,
    )


def declared_part_inf(playlist: m3u8.M3U8) -> bool:
    return getattr(playlist.part_inf, "part_target", None) is not None


def _seconds(server_control: object, name: str) -> float | None:
    value = getattr(server_control, name, None) if server_control else None
    if value is None:
        return None
    seconds = float(value)
    if not 0 <= seconds < 3600:
        raise PlaylistError(f"absurd EXT-X-SERVER-CONTROL {name.upper().replace('_', '-')}")
    return seconds


def _byterange(text: str, previous_end: int) -> tuple[int, int]:
    """`length[@offset]` as (offset, length); without an offset, right after the previous
    range of the same resource."""
    length, _, offset = text.partition("@")
    start, size = (int(offset) if offset else previous_end), int(length)
    if start < 0 or not 0 < size <= 1 << 32:
        raise PlaylistError("absurd BYTERANGE")
    return start, size


def _parts(
    listed: list[m3u8.Segment],
    building: m3u8.Segment | None,
    first: int,
    uri: str,
    building_init: str | None,
) -> tuple[Part, ...]:
    """The newest MAX_PARSED_PARTS parts, oldest first."""
    owners: list[tuple[int, m3u8.Segment, str | None]] = []
    for offset, seg in enumerate(listed):
        if seg.parts:
            init = seg.init_section.absolute_uri if seg.init_section is not None else None
            owners.append((first + offset, seg, init))
    if building is not None:
        owners.append((first + len(listed), building, building_init))
    parts: list[Part] = []
    range_ends: dict[str, int] = {}
    for sequence, seg, init in owners:
        for index, part in enumerate(seg.parts):
            if not part.uri:
                raise PlaylistError("part without a URI")
            duration = float(part.duration) if part.duration is not None else -1.0
            if not 0 <= duration < 3600:
                raise PlaylistError("part with a missing or absurd DURATION")
            absolute = urljoin(uri, part.uri)
            byterange = None
            if part.byterange:
                byterange = _byterange(str(part.byterange), range_ends.get(absolute, 0))
                range_ends[absolute] = byterange[0] + byterange[1]
            parts.append(
                Part(
                    sequence=sequence,
                    index=index,
                    uri=absolute,
                    duration=duration,
                    independent=part.independent == "YES",
                    gap=part.gap == "YES",
                    byterange=byterange,
                    init_uri=init,
                )
            )
    return tuple(parts[-MAX_PARSED_PARTS:])


def _preload_hint(playlist: m3u8.M3U8, uri: str) -> PreloadHint | None:
    hint = playlist.preload_hint
    if hint is None or str(hint.hint_type).upper() != "PART" or not hint.uri:
        return None  # TYPE=MAP hints name an init section: fetched when a part needs it
    byterange = None
    if hint.byterange_start is not None or hint.byterange_length is not None:
        start = int(hint.byterange_start or 0)
        length = int(hint.byterange_length) if hint.byterange_length is not None else None
        if start < 0 or (length is not None and not 0 < length <= 1 << 32):
            raise PlaylistError("absurd EXT-X-PRELOAD-HINT byte range")
        byterange = (start, length)
    return PreloadHint(uri=urljoin(uri, hint.uri), byterange=byterange)


def _rendition_reports(playlist: m3u8.M3U8, uri: str) -> tuple[RenditionReport, ...]:
    reports = []
    for report in playlist.rendition_reports[:MAX_RENDITION_REPORTS]:
        if not report.uri:
            continue
        msn = int(report.last_msn) if report.last_msn is not None else None
        part = int(report.last_part) if report.last_part is not None else None
        reports.append(RenditionReport(urljoin(uri, report.uri), msn, part))
    return tuple(reports)


def _base_name(variant: Variant) -> str:
    if variant.resolution:
        return variant.resolution
    codecs = [c.strip().lower() for c in (variant.codecs or "").split(",") if c.strip()]
    if codecs and all(c.startswith(_AUDIO_CODECS) for c in codecs):
        return "audio"
    return "variant"


def rendition_names(variants: tuple[Variant, ...]) -> list[str]:
    """Short names that stay put while a stream runs: the resolution ("audio" or "variant"
    without one); a repeated one gets its rank among its namesakes in master order ("-2",
    "-3"). Never the bandwidth: it may change from one master refresh to the next, and a
    renamed rendition would look like a new one. Linear in the number of variants."""
    seen: Counter[str] = Counter()
    names = []
    for variant in variants:
        base = _base_name(variant)
        seen[base] += 1
        names.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return names
