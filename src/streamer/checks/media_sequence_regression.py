"""`media_sequence_regression`: a media playlist goes back in time.

Its media sequence (first segment) or its last segment is lower than already seen: a
player would replay segments or stall. Typical of edges that serve an older cached copy.
Reported once per episode, until the playlist is back at or past its newest state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamer.checks.base import Failure, SessionContext
from streamer.checks.common import ConfiguredCheck
from streamer.checks.registry import register
from streamer.playback.playlist import MediaPlaylist

KIND = "media_sequence_regression"


@dataclass
class _Rendition:
    first: int  # highest media sequence seen
    last: int  # highest last segment seen
    regressed: bool = False


@register
class MediaSequenceRegression(ConfiguredCheck):
    name = KIND
    kinds = (KIND,)

    def __init__(self, context: SessionContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self._renditions: dict[str, _Rendition] = {}

    def on_playlist(self, rendition: str, playlist: MediaPlaylist, at: float) -> list[Failure]:
        last = playlist.last_sequence
        if last is None:
            return []  # an empty playlist says nothing about the sequence
        first = playlist.media_sequence
        state = self._renditions.get(rendition)
        if state is None:
            self._renditions[rendition] = _Rendition(first, last)
            return []
        back = first < state.first or last < state.last
        failures = []
        if back and not state.regressed:
            failures.append(
                Failure(
                    KIND,
                    rendition,
                    f"playlist went back to segments {first}..{last} after listing "
                    f"{state.first}..{state.last}",
                )
            )
        state.regressed = back
        state.first, state.last = max(state.first, first), max(state.last, last)
        return failures
