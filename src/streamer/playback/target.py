"""The target duration the monitor works with, when the platform's cannot be trusted.

EXT-X-TARGETDURATION sets how often a rendition is polled and how long it may list nothing
new before `stale_playlist` speaks. A packager that writes milliseconds (2000) or an absurd
value (3600) would make the monitor blind that long: a 2-minute session would end after one
poll, "successful". The declared target is used as it is unless it is far above what the
stream shows:

- the reference is the longest segment seen so far: decoded media durations once segments
  have been analysed (EXTINF is declared by the same packager), EXTINF before that, and
  never less than one GOP of the session's own clip;
- "far above" is more than 4 x the reference and more than 10 s above it, or above 30 s
  (Apple recommends 6 s segments; a live packager with 30 s ones leaves nothing to monitor
  in a session of minutes). Real packagers declare the longest segment rounded up;
- then the target is the reference rounded up, and the platform's value is reported once
  per rendition as a `playlist_error`: players schedule their reloads on it too.
"""

from __future__ import annotations

import dataclasses
import math

from streamer.playback.playlist import MediaPlaylist

FAR_FACTOR = 4.0
FAR_SLACK_SECONDS = 10.0
MAX_TARGET_SECONDS = 30.0
_RECENT_SEGMENTS = 16  # EXTINF of the newest segments is what the reference looks at


class TargetSanity:
    """Keeps one rendition's working target duration plausible."""

    def __init__(self, gop_seconds: float | None = None) -> None:
        self._floor = gop_seconds if gop_seconds and gop_seconds > 0 else 0.0
        self._longest_extinf = 0.0
        self._longest_media = 0.0
        self._reported = False

    def measured(self, media_seconds: float) -> None:
        """A decoded segment's media duration."""
        if 0 < media_seconds <= MAX_TARGET_SECONDS * 10:
            self._longest_media = max(self._longest_media, media_seconds)

    @property
    def reference(self) -> float:
        longest = self._longest_media or self._longest_extinf
        return max(self._floor, longest)

    def limit(self) -> float:
        """Declared targets above this are implausible."""
        reference = self.reference
        if reference <= 0:
            return MAX_TARGET_SECONDS
        return min(MAX_TARGET_SECONDS, max(FAR_FACTOR * reference, reference + FAR_SLACK_SECONDS))

    def apply(self, playlist: MediaPlaylist) -> tuple[MediaPlaylist, str | None]:
        """The playlist with the target to work with, and, the first time a declared target
        is replaced, why (to report)."""
        for segment in playlist.segments[-_RECENT_SEGMENTS:]:
            self._longest_extinf = max(self._longest_extinf, segment.duration)
        declared = playlist.target_duration
        limit = self.limit()
        if declared <= limit:
            return playlist, None
        reference = self.reference
        working = float(min(MAX_TARGET_SECONDS, math.ceil(reference))) if reference > 0 else limit
        replaced = dataclasses.replace(
            playlist, target_duration=working, declared_target_duration=declared
        )
        if self._reported:
            return replaced, None
        self._reported = True
        return replaced, (
            f"EXT-X-TARGETDURATION {declared:g}s is far above the segments' {reference:.1f}s "
            f"(seconds written as milliseconds?): polling and stall detection use {working:g}s"
        )
