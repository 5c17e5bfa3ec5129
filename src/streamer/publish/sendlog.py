"""The send log: wall-clock send time of every frame the publisher sent."""

from __future__ import annotations

import math


class SendLog:
    """Maps (loop, clip frame) to the wall-clock time the frame was handed to the ingest.

    Written by the publisher thread, read by the event loop: appends and indexed reads of a
    list are atomic under the GIL, so no lock is needed.
    """

    def __init__(self, frames_per_loop: int, fps: float) -> None:
        self.frames_per_loop = frames_per_loop
        self.fps = fps
        self._times: list[float] = []  # index = absolute frame number; NaN = never sent
        self.first_packet_at: float | None = None

    def record(self, absolute_frame: int, sent_at: float) -> None:
        while len(self._times) < absolute_frame:
            self._times.append(math.nan)
        if len(self._times) == absolute_frame:
            self._times.append(sent_at)

    @property
    def frames_sent(self) -> int:
        return len(self._times)

    def sent_at(self, absolute_frame: int) -> float | None:
        if 0 <= absolute_frame < len(self._times):
            t = self._times[absolute_frame]
            return None if math.isnan(t) else t
        return None

    def resolve(self, clip_frame: int, observed_at: float) -> int | None:
        """The absolute frame behind `clip_frame`: its latest send at or before `observed_at`.

        A clip frame recurs once per loop; a viewer can only have seen a copy already sent.
        None when no copy was sent before `observed_at` (a frame from an earlier session).
        """
        if not 0 <= clip_frame < self.frames_per_loop:
            return None
        n = self.frames_per_loop
        last = len(self._times) - 1
        if last < clip_frame:
            return None
        candidate = clip_frame + ((last - clip_frame) // n) * n
        while candidate >= 0:
            t = self._times[candidate]
            if not math.isnan(t) and t <= observed_at:
                return candidate
            candidate -= n
        return None
