"""HLS playlists: parsed with `m3u8` into the small, typed views the follower and checks use.

Playlists come from the platform under test and may be hostile: size is capped before
parsing, and anything malformed becomes a PlaylistError, never another exception.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from urllib.parse import urljoin

import m3u8

MAX_PLAYLIST_BYTES = 1 << 20
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
    for line in text.splitlines():
        if line.startswith("#EXT-X-ERROR"):
            return line.partition(":")[2].strip()[:200] or "EXT-X-ERROR"
    return None


def parse(text: str, uri: str) -> MasterPlaylist | MediaPlaylist:
    """Parses either kind of playlist; raises PlaylistError."""
    if len(text) > MAX_PLAYLIST_BYTES:
        raise PlaylistError(f"playlist larger than {MAX_PLAYLIST_BYTES} bytes")
    if not text.lstrip("\ufeff").startswith("#EXTM3U"):
        raise PlaylistError("not an HLS playlist (no #EXTM3U header)")
    try:
        playlist = m3u8.loads(text, uri=uri)
    except Exception as exc:  # m3u8 raises many types on bad input
        raise PlaylistError(f"malformed playlist: {exc.__class__.__name__}") from None
    error = _error_tag(text)
    try:
        if playlist.is_variant:
            return _master(playlist, uri, error)
        return _media(playlist, uri, error)
    except PlaylistError:
        raise
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise PlaylistError(f"malformed playlist: {exc.__class__.__name__}") from None


def _master(playlist: m3u8.M3U8, uri: str, error: str | None) -> MasterPlaylist:
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
    return MasterPlaylist(variants=tuple(variants), error=error)


def _media(playlist: m3u8.M3U8, uri: str, error: str | None) -> MediaPlaylist:
    first = int(playlist.media_sequence or 0)
    if first < 0:
        raise PlaylistError("negative media sequence")
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
