"""`frame_drop`: frames missing, inside a segment or across consecutive segments, leaving a
hole a viewer sees.

The rendition's frame step (clip rate / rendition rate) is allowed: 30 -> 15 fps skips every
other frame by design. Frames missing beyond it leave a hole: the time from the picture
before them to the picture after them, had the player kept the timing (it holds the last
picture), or that much video skipped (it does not). A hole is noticed as WebRTC judges a
freeze (W3C webrtc-stats freezeCount): at least max(`min_gap_frames` x the average picture
duration, the average picture duration + `min_gap_ms`); with the defaults (3, 150 ms) 5
frames missing at 30 fps fail, 4 do not. Fewer are what frame rate conversion does as a
matter of course (29.97 fps from a 30 fps source drops one frame every 33 s). Reported once
per segment (with the number of noticed holes in it).

Every missing frame, noticed or not, is counted in `streamer_dropped_frames_total`.
(`max_missing`, a count of frames, is replaced by the two settings above.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from streamer.checks.base import Failure, Finding, Observation, SegmentRecord, SessionContext
from streamer.checks.common import ConfiguredCheck
from streamer.checks.frames import W3C_FREEZE_FRAMES, W3C_FREEZE_MS, FrameWalker, FreezeRule
from streamer.checks.registry import register

KIND = "frame_drop"


@register
class FrameDrop(ConfiguredCheck):
    name = KIND
    kinds = (KIND,)
    defaults: ClassVar[Mapping[str, Any]] = {
        "min_gap_ms": W3C_FREEZE_MS,
        "min_gap_frames": W3C_FREEZE_FRAMES,
    }
    replaced: ClassVar[Mapping[str, str]] = {
        "max_missing": "min_gap_ms and min_gap_frames (a hole is a duration: "
        "max(min_gap_frames x frame duration, frame duration + min_gap_ms))"
    }

    def __init__(self, context: SessionContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        rule = FreezeRule(self.number("min_gap_frames"), self.number("min_gap_ms"))
        self._walker = FrameWalker(context.fps, context.send_log.frames_per_loop, rule)

    def on_segment(self, record: SegmentRecord) -> list[Finding]:
        walk = self._walker.walk(record)
        sequence = record.segment.sequence
        findings: list[Finding] = []
        noticed = [jump for jump in walk.jumps if jump.noticed]
        if noticed:
            first = noticed[0]
            more = f" and {len(noticed) - 1} more hole(s)" if len(noticed) > 1 else ""
            findings.append(
                Failure(
                    KIND,
                    record.rendition,
                    f"segment {sequence}: {first.missing} frame(s) missing between frames "
                    f"{first.before} and {first.after} ({first.gap_seconds * 1000:.0f} ms "
                    f"without a new picture){more}",
                )
            )
        if walk.dropped:
            findings.append(
                Observation(
                    "dropped_frames",
                    record.rendition,
                    walk.dropped,
                    f"segment {sequence}: {walk.dropped} frame(s) missing",
                )
            )
        return findings
