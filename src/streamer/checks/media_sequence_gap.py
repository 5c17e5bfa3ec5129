"""`media_sequence_gap`: segments that were never listed to us.

A playlist whose first segment lies beyond the newest segment seen + 1 skipped segments: a
viewer following it could never play them (the origin dropped them, or the playlist moved
on faster than we could poll it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamer.checks.base import Failure, SessionContext
from streamer.checks.common import ConfiguredCheck
from streamer.checks.registry import register
from streamer.playback.playlist import MediaPlaylist

KIND = "media_sequence_gap"


@register
class MediaSequenceGap(ConfiguredCheck):
    name = KIND
    kinds = (KIND,)

    def __init__(self, context: SessionContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self._newest: dict[str, int] = {}

    def on_playlist(self, rendition: str, playlist: MediaPlaylist, at: float) -> list[Failure]:
        last = playlist.last_sequence
        if last is None:
            return []
        newest = self._newest.get(rendition)
        self._newest[rendition] = last if newest is None else max(newest, last)
        first = playlist.media_sequence
        if newest is None or first <= newest + 1:
            return []
        skipped = first - newest - 1
        return [
            Failure(
                KIND,
                rendition,
                f"{skipped} segment(s) never listed: sequence jumped from {newest} to {first}",
            )
        ]
