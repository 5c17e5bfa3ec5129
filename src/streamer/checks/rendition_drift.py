"""`rendition_drift`: one rendition lists the same moment much later than another.

Every frame carries its number, so the same absolute frame can be found in each rendition:
a frame is available in a rendition when the first segment whose newest frame is at or past
it is listed. A rendition listing a frame more than `factor` x the target duration after
another rendition did is behind: a viewer switching to it jumps back in time (or stalls).
Only the later rendition is reported, once per episode. Segments in a rendition's first
playlist are skipped: when they were listed is unknown.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from streamer.checks.base import Failure, SegmentRecord, SessionContext
from streamer.checks.common import ConfiguredCheck
from streamer.checks.registry import register
from streamer.playback.playlist import MediaPlaylist

KIND = "rendition_drift"
_HISTORY = 32  # segments remembered per rendition: enough for minutes of drift


@dataclass
class _Rendition:
    first_listing: set[int]
    target: float
    listed: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=_HISTORY))
    drifting: bool = False


@register
class RenditionDrift(ConfiguredCheck):
    name = KIND
    kinds = (KIND,)
    defaults: ClassVar[Mapping[str, Any]] = {"factor": 1.0}

    def __init__(self, context: SessionContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self.factor = self.number("factor")
        self._renditions: dict[str, _Rendition] = {}

    def on_playlist(self, rendition: str, playlist: MediaPlaylist, at: float) -> list[Failure]:
        state = self._renditions.get(rendition)
        if state is None:
            first = {s.sequence for s in playlist.segments}
            self._renditions[rendition] = _Rendition(first, playlist.target_duration)
        elif playlist.target_duration > 0:
            state.target = playlist.target_duration
        return []

    def on_segment(self, record: SegmentRecord) -> list[Failure]:
        state = self._renditions.get(record.rendition)
        frame = record.newest_frame
        if state is None or frame is None or record.segment.sequence in state.first_listing:
            return []
        state.listed.append((frame, record.listed_at))
        worst: tuple[float, str] | None = None
        for name, other in self._renditions.items():
            if name == record.rendition:
                continue
            available = next((t for f, t in other.listed if f >= frame), None)
            if available is None:
                continue  # the other rendition is not there yet: it is the later one
            drift = record.listed_at - available
            limit = self.factor * max(state.target, other.target)
            if drift > limit and (worst is None or drift > worst[0]):
                worst = (drift, name)
        was_drifting, state.drifting = state.drifting, worst is not None
        if worst is None or was_drifting:
            return []
        drift, name = worst
        return [
            Failure(
                KIND,
                record.rendition,
                f"frame {frame} listed {drift:.1f}s after rendition {name} listed it",
            )
        ]
