"""`part_late`: an LL-HLS rendition lists no new part for `factor` x PART-TARGET.

A player at the live edge holds back only PART-HOLD-BACK (about 3 parts): a part that comes
that much later than the one before is a stall it shows. Checked on every session tick,
once per stall, only while the session publishes and after the rendition's first part was
downloaded; renditions without parts are stale_playlist's business alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from streamer.checks.base import Failure, PartRecord, SessionContext
from streamer.checks.common import ConfiguredCheck
from streamer.checks.registry import register
from streamer.playback.playlist import MediaPlaylist

KIND = "part_late"


@dataclass
class _Rendition:
    newest: tuple[int, int]
    listed_at: float
    part_target: float
    started: bool = False
    reported: bool = False


@register
class PartLate(ConfiguredCheck):
    name = KIND
    kinds = (KIND,)
    defaults: ClassVar[Mapping[str, Any]] = {"factor": 3.0}

    def __init__(self, context: SessionContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self.factor = self.number("factor", minimum=1.0)
        self._renditions: dict[str, _Rendition] = {}

    def on_playlist(self, rendition: str, playlist: MediaPlaylist, at: float) -> list[Failure]:
        if not playlist.parts or not playlist.part_target:
            return []
        newest = playlist.parts[-1].key
        state = self._renditions.get(rendition)
        if state is None:
            self._renditions[rendition] = _Rendition(newest, at, playlist.part_target)
        elif newest > state.newest:
            state.newest, state.listed_at, state.reported = newest, at, False
            state.part_target = playlist.part_target
        return []

    def on_part(self, record: PartRecord) -> list[Failure]:
        state = self._renditions.get(record.rendition)
        if state is not None and record.downloaded_at is not None:
            state.started = True
        return []

    def on_tick(self, now: float) -> list[Failure]:
        if self.context.publish_stopped_at is not None:
            return []
        failures = []
        for name, state in self._renditions.items():
            if not state.started or state.reported or name in self.context.retired_renditions:
                continue
            limit = self.factor * state.part_target
            idle = now - state.listed_at
            if idle > limit:
                state.reported = True
                sequence, index = state.newest
                failures.append(
                    Failure(
                        KIND,
                        name,
                        f"no new part for {idle:.2f}s after part {sequence}.{index} "
                        f"(limit {limit:.2f}s = {self.factor:g} x PART-TARGET)",
                    )
                )
        return failures
