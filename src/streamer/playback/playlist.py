"""HLS playlists: parsed with `m3u8` into the small, typed views the follower and checks use.

Playlists come from the platform under test and may be hostile: size is capped before
parsing, and anything malformed becomes a PlaylistError, never another exception.

Parsing costs about 16 us per segment in `m3u8`: a 1 MiB media playlist (50,000 segments)
would hold the interpreter for seconds, on every poll that changes it. Only what a live
viewer needs is parsed: the newest `MAX_PARSED_SEGMENTS` segments of a media playlist (the
rest is cut off by C-speed string search first, with the media sequence carried over), and
the first `MAX_PARSED_VARIANTS` variants of a master (the count of the rest is kept).
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
_EXTINF = "#EXTINF"
_STREAM_INF = "#EXT-X-STREAM-INF"
# Tags that belong to the segment after them: not carried over when older segments are cut.
_SEGMENT_TAGS = (
    "#EXT-X-DISCONTINUITY\n",
    "#EXT-X-PROGRAM-DATE-TIME",
    "#EXT-X-GAP",
    "#EXT-X-BYTERANGE",
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

    @property
    def last_sequence(self) -> int | None:
        return self.segments[-1].sequence if self.segments else None

    def segments_after(self, sequence: int) -> tuple[Segment, ...]:
        """The segments numbered above `sequence` (sequences are consecutive)."""
        start = max(0, sequence + 1 - self.media_sequence)
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
    segments = []
    for offset, seg in enumerate(playlist.segments):
        if not seg.uri:
            raise PlaylistError("segment without a URI")
        duration = float(seg.duration) if seg.duration is not None else -1.0
        if not 0 <= duration < 3600:
            raise PlaylistError("segment with a missing or absurd EXTINF duration")
        init = seg.init_section.absolute_uri if seg.init_section is not None else None
        segments.append(
            Segment(
                sequence=first + offset,
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
    return MediaPlaylist(
        media_sequence=first,
        target_duration=float(target),
        segments=tuple(segments),
        endlist=bool(playlist.is_endlist),
        can_block_reload=can_block,
        error=error,
        part_target=part_target,
    )


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
