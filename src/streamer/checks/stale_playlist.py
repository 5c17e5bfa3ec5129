"""`stale_playlist`: a rendition's playlist lists no new segment for too long.

"Too long" is `factor` x the target duration since the playlist that first listed the
newest segment. Checked on every session tick (0.25 s), so a stall is reported within that
limit plus one tick of the last segment's listing. Reported once per stall, only while the
session publishes, and only after the rendition delivered its first segment of this session
(a stream that has not started is startup_timeout's business).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from streamer.checks.base import Failure, SegmentRecord, SessionContext
from streamer.checks.common import ConfiguredCheck
from streamer.checks.registry import register
from streamer.playback.playlist import MediaPlaylist

KIND = "stale_playlist"


@dataclass
class _Rendition:
    last_sequence: int
    last_new_at: float  # when the newest segment was first listed
    target: float
    started: bool = False
    reported: bool = False


@register
class StalePlaylist(ConfiguredCheck):
    name = KIND
    kinds = (KIND,)
    defaults: ClassVar[Mapping[str, Any]] = {"factor": 1.5}

    def __init__(self, context: SessionContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self.factor = self.number("factor", minimum=0.5)
        self._renditions: dict[str, _Rendition] = {}

    def on_playlist(self, rendition: str, playlist: MediaPlaylist, at: float) -> list[Failure]:
        last = playlist.last_sequence
        if last is None:
            return []
        state = self._renditions.get(rendition)
        if state is None:
            self._renditions[rendition] = _Rendition(last, at, playlist.target_duration)
            return []
        if playlist.target_duration > 0:
            state.target = playlist.target_duration
        if last > state.last_sequence:
            state.last_sequence, state.last_new_at, state.reported = last, at, False
        return []

    def on_segment(self, record: SegmentRecord) -> list[Failure]:
        state = self._renditions.get(record.rendition)
        if state is not None:
            state.started = True
        return []

    def on_tick(self, now: float) -> list[Failure]:
        if self.context.publish_stopped_at is not None:
            return []
        failures = []
        for name, state in self._renditions.items():
            limit = self.factor * state.target
            if not state.started or state.reported or limit <= 0:
                continue
            if name in self.context.retired_renditions:
                continue
            idle = now - state.last_new_at
            if idle > limit:
                state.reported = True
                failures.append(
                    Failure(
                        KIND,
                        name,
                        f"no new segment for {idle:.1f}s after segment {state.last_sequence} "
                        f"(limit {limit:g}s = {self.factor:g} x target duration)",
                    )
                )
        return failures
