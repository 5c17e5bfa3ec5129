"""`codec_mismatch`: a rendition's media is not what the master playlist declares.

Compares the decoded video codec, audio codec and resolution with the variant's CODECS
and RESOLUTION, only for what the master declared (and codecs this check can name). A
player picks variants by these attributes: a wrong one fails playback or switching.
Reported once per rendition and mismatch, again only if the actual value changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamer.checks.base import Failure, SegmentRecord, SessionContext
from streamer.checks.common import ConfiguredCheck
from streamer.checks.registry import register
from streamer.playback.playlist import MasterPlaylist, Variant

KIND = "codec_mismatch"

# RFC 6381 sample entry -> (track type, FFmpeg codec name)
_SAMPLE_ENTRIES = {
    "avc1": ("video", "h264"),
    "avc3": ("video", "h264"),
    "hvc1": ("video", "hevc"),
    "hev1": ("video", "hevc"),
    "av01": ("video", "av1"),
    "vp09": ("video", "vp9"),
    "vp08": ("video", "vp8"),
    "mp4a": ("audio", "aac"),
    "ac-3": ("audio", "ac3"),
    "ec-3": ("audio", "eac3"),
    "opus": ("audio", "opus"),
    "flac": ("audio", "flac"),
}
_MP3_OBJECT_TYPES = {"mp4a.40.34", "mp4a.69", "mp4a.6b"}
# Decoder names FFmpeg may report, by the codec they decode.
_DECODERS = {"libdav1d": "av1", "libaom-av1": "av1", "mp3float": "mp3", "aac_fixed": "aac"}


def declared_codecs(codecs: str) -> dict[str, set[str]]:
    """{"video": {...}, "audio": {...}} from a CODECS attribute; unknown entries ignored."""
    found: dict[str, set[str]] = {}
    for raw in codecs.lower().split(","):
        entry = raw.strip()
        if entry in _MP3_OBJECT_TYPES:
            found.setdefault("audio", set()).add("mp3")
            continue
        known = _SAMPLE_ENTRIES.get(entry.split(".")[0])
        if known is not None:
            found.setdefault(known[0], set()).add(known[1])
    return found


def _codec(name: str) -> str:
    return _DECODERS.get(name, name)


@register
class CodecMismatch(ConfiguredCheck):
    name = KIND
    kinds = (KIND,)

    def __init__(self, context: SessionContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self._variants: dict[str, Variant] = {}
        self._reported: dict[tuple[str, str], str] = {}  # (rendition, attribute) -> actual

    def on_master(self, master: MasterPlaylist, names: list[str], at: float) -> list[Failure]:
        self._variants.update(zip(names, master.variants, strict=True))
        return []

    def on_segment(self, record: SegmentRecord) -> list[Failure]:
        variant = self._variants.get(record.rendition)
        if variant is None:
            return []
        analysis = record.analysis
        found: list[tuple[str, str, str]] = []  # (attribute, declared, actual)
        if variant.resolution and variant.resolution != analysis.resolution:
            found.append(("RESOLUTION", variant.resolution, analysis.resolution))
        declared = declared_codecs(variant.codecs or "")
        video = _codec(analysis.video_codec)
        if "video" in declared and video not in declared["video"]:
            found.append(("video codec", "/".join(sorted(declared["video"])), video))
        if "audio" in declared and analysis.audio is not None:
            audio = _codec(analysis.audio.codec)
            if audio not in declared["audio"]:
                found.append(("audio codec", "/".join(sorted(declared["audio"])), audio))
        failures = []
        for attribute, expected, actual in found:
            key = (record.rendition, attribute)
            if self._reported.get(key) == actual:
                continue
            self._reported[key] = actual
            failures.append(
                Failure(
                    KIND,
                    record.rendition,
                    f"master declares {attribute} {expected}, segment "
                    f"{record.segment.sequence} has {actual}",
                )
            )
        return failures
