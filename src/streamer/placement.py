"""Frame placement: which sent frames a viewer got in one observed unit, and when they left.

Every frame of the test signal carries its clip frame number (the clip loops, so a number
recurs once per loop). A unit of playback (an HLS segment today; a part or a batch of
WebRTC frames later) is placed against the publisher's send log:

- its newest readable timecode is resolved to the latest copy of that clip frame sent
  before the unit was seen (a viewer can only have seen what was already sent);
- the frames around that one are placed by their PTS distance from it, in clip frames, so
  that placement stays right when a rendition drops frames or halves the frame rate;
- without PTS per frame, one decoded frame counts as one clip frame.

A pure function of its inputs: every playback protocol ends here, and so does every check
that needs to know which frames a viewer saw.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from streamer.playback.segment import SegmentAnalysis
from streamer.publish.sendlog import SendLog


class Unplaced(enum.Enum):
    UNREADABLE = "no frame carries a readable timecode"
    FOREIGN = "its frames were never sent before it was seen (an earlier session's)"


@dataclass(kw_only=True, frozen=True)
class Placement:
    first_frame: int  # absolute frame numbers: loop x frames per loop + clip frame
    newest_frame: int
    newest_sent_at: float | None  # when the newest frame left the publisher (wall clock)


def clip_frames_between(analysis: SegmentAnalysis, start: int, end: int, fps: float) -> int:
    """Clip frames from decoded frame `start` to decoded frame `end` (-1: the last)."""
    pts = analysis.frame_pts
    if not pts:
        return (analysis.frame_count - 1 if end == -1 else end) - start
    return round((pts[end] - pts[start]) * fps)


def place(
    analysis: SegmentAnalysis, send_log: SendLog, seen_at: float, fps: float
) -> Placement | Unplaced:
    """Places `analysis`'s frames against `send_log`; `seen_at` is when the unit was first
    seen by the viewer (listed, for HLS)."""
    last = analysis.last_timecode
    if last is None:
        return Unplaced.UNREADABLE
    index, clip_frame = last
    resolved = send_log.resolve(clip_frame, seen_at)
    if resolved is None:
        return Unplaced.FOREIGN
    newest = resolved + clip_frames_between(analysis, index, -1, fps)
    first = resolved - clip_frames_between(analysis, 0, index, fps)
    sent_at = send_log.sent_at(newest)
    return Placement(
        first_frame=first,
        newest_frame=newest,
        newest_sent_at=sent_at if sent_at is not None else send_log.sent_at(resolved),
    )


def frame_latencies(
    analysis: SegmentAnalysis, frame_times: tuple[float, ...], send_log: SendLog
) -> tuple[float, ...]:
    """Glass-to-glass latency of every readable frame of a unit whose frames were seen one
    by one (WebRTC): when it was seen (`frame_times`, wall clock) - when it was sent."""
    latencies = []
    for code, seen_at in zip(analysis.timecodes, frame_times, strict=False):
        if code is None:
            continue
        resolved = send_log.resolve(code, seen_at)
        sent_at = send_log.sent_at(resolved) if resolved is not None else None
        if sent_at is not None:
            latencies.append(seen_at - sent_at)
    return tuple(latencies)


# A part placed from its anchor further than this (in clip frames) is on another timeline
# (a restart, a wrap): not placed rather than placed wrong.
_MAX_ANCHOR_DISTANCE_SECONDS = 60.0


class PartPlacer:
    """Places LL-HLS parts of one session. A part whose keyframe carries a readable timecode
    is placed like a segment and becomes its rendition's anchor; a part without one (most
    start mid-GOP: undecodable alone) is placed by the PTS distance of its frames from that
    anchor, in clip frames."""

    def __init__(self, send_log: SendLog, fps: float) -> None:
        self._send_log = send_log
        self._fps = fps
        self._anchors: dict[str, tuple[float, int]] = {}  # rendition -> (PTS, absolute frame)

    def forget(self, rendition: str) -> None:
        self._anchors.pop(rendition, None)

    def place(
        self, rendition: str, analysis: SegmentAnalysis, seen_at: float
    ) -> Placement | Unplaced:
        if analysis.last_timecode is not None:
            placed = place(analysis, self._send_log, seen_at, self._fps)
            if isinstance(placed, Placement):
                self._anchors[rendition] = (analysis.last_pts, placed.newest_frame)
            return placed
        anchor = self._anchors.get(rendition)
        if anchor is None:
            return Unplaced.UNREADABLE
        pts, frame = anchor
        ahead = analysis.last_pts - pts
        if not 0 <= ahead <= _MAX_ANCHOR_DISTANCE_SECONDS:
            self._anchors.pop(rendition)
            return Unplaced.UNREADABLE
        newest = frame + round(ahead * self._fps)
        first = frame + round((analysis.first_pts - pts) * self._fps)
        return Placement(
            first_frame=first, newest_frame=newest, newest_sent_at=self._send_log.sent_at(newest)
        )
