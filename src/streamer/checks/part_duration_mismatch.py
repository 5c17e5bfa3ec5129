"""`part_duration_mismatch`: an LL-HLS part longer than PART-TARGET, or a segment whose
parts do not add up to its EXTINF.

A player sizes its hold back and its reload timing on PART-TARGET: a longer part stalls it
at the live edge; parts that do not add up to their segment make players that switch
between parts and segments jump. Each part and segment is judged once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar

from streamer.checks.base import Failure, SessionContext
from streamer.checks.common import ConfiguredCheck
from streamer.checks.registry import register
from streamer.playback.playlist import MediaPlaylist, Part

KIND = "part_duration_mismatch"
_REMEMBERED = 256  # parts and segments judged, per rendition: they are listed many times


@register
class PartDurationMismatch(ConfiguredCheck):
    name = KIND
    kinds = (KIND,)
    defaults: ClassVar[Mapping[str, Any]] = {
        "part_tolerance_seconds": 0.02,  # over PART-TARGET: more than rounding
        "segment_tolerance_seconds": 0.1,  # parts summed vs EXTINF
    }

    def __init__(self, context: SessionContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self.part_tolerance = self.number("part_tolerance_seconds")
        self.segment_tolerance = self.number("segment_tolerance_seconds")
        self._judged: dict[str, deque[tuple[int, int]]] = {}

    def _first_time(self, rendition: str, key: tuple[int, int]) -> bool:
        judged = self._judged.setdefault(rendition, deque(maxlen=_REMEMBERED))
        if key in judged:
            return False
        judged.append(key)
        return True

    def on_playlist(self, rendition: str, playlist: MediaPlaylist, at: float) -> list[Failure]:
        if not playlist.parts:
            return []
        failures = []
        target = playlist.part_target
        by_segment: dict[int, list[Part]] = {}
        for part in playlist.parts:
            by_segment.setdefault(part.sequence, []).append(part)
            too_long = bool(target) and part.duration > (target or 0) + self.part_tolerance
            if too_long and self._first_time(rendition, part.key):
                failures.append(
                    Failure(
                        KIND,
                        rendition,
                        f"part {part.sequence}.{part.index} lasts {part.duration:.3f}s, "
                        f"over PART-TARGET {target:.3f}s",
                    )
                )
        for segment in playlist.segments:
            parts = by_segment.get(segment.sequence)
            if not parts or parts[0].index != 0:
                continue  # its first parts are no longer listed: cannot add up
            total = sum(p.duration for p in parts)
            if abs(total - segment.duration) > self.segment_tolerance and self._first_time(
                rendition, (segment.sequence, -1)
            ):
                failures.append(
                    Failure(
                        KIND,
                        rendition,
                        f"segment {segment.sequence}: its parts add up to {total:.3f}s, "
                        f"EXTINF says {segment.duration:.3f}s",
                    )
                )
        return failures
