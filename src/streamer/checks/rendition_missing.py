"""`rendition_missing`: fewer renditions than expected, or one that leaves the master.

Expected is `SessionContext.expected_renditions`, else the count in the first master seen.
Renditions are known by name (resolution): one whose URI changes keeps its name and is
followed there by the session, so it is not missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamer.checks.base import Failure, SessionContext
from streamer.checks.common import ConfiguredCheck
from streamer.checks.registry import register
from streamer.playback.playlist import MasterPlaylist, MediaPlaylist

KIND = "rendition_missing"


@register
class RenditionMissing(ConfiguredCheck):
    name = KIND
    kinds = (KIND,)

    def __init__(self, context: SessionContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self._expected: int | None = None
        self._known: set[str] = set()
        self._missing: set[str] = set()
        self._saw_master = False
        self._short = False  # a shortfall is reported once, until the count recovers

    def on_master(self, master: MasterPlaylist, names: list[str], at: float) -> list[Failure]:
        self._saw_master = True
        if self._expected is None:
            self._expected = self.context.expected_renditions or len(names)
        current = set(names)
        failures = [
            Failure(KIND, name, "rendition disappeared from the master playlist")
            for name in sorted(self._known - current - self._missing)
        ]
        self._missing = self._known - current  # one that comes back is re-armed
        self._known |= current
        # Renditions already reported by name are not counted again as a shortfall.
        short = len(current) + len(self._missing) < self._expected
        if short and not self._short:
            failures.append(
                Failure(
                    KIND,
                    None,
                    f"master playlist lists {len(current)} of {self._expected} expected renditions",
                )
            )
        self._short = short
        return failures

    def on_playlist(self, rendition: str, playlist: MediaPlaylist, at: float) -> list[Failure]:
        expected = self.context.expected_renditions
        if self._saw_master or self._short or expected is None or expected <= 1:
            return []
        self._short = True  # no master at all: the playback URL is one media playlist
        return [
            Failure(
                KIND,
                None,
                f"playback URL is a single media playlist, {expected} renditions expected",
            )
        ]
