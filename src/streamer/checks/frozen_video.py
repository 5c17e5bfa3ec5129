"""`frozen_video`: a picture that stands still, or goes back, long enough for a viewer to see.

A freeze is judged as WebRTC judges one (W3C webrtc-stats, RTCInboundRtpStreamStats
freezeCount): no new picture for at least max(`min_freeze_frames` x the average picture
duration, the average picture duration + `min_freeze_ms`); with the defaults (3, 150 ms)
that is 183 ms at 30 fps, 217 ms at 15 fps. Below it, people do not see a stall: packagers
repeat single frames as a matter of course (FFmpeg's constant-frame-rate output repeats the
first frame of every stream, frame rate conversion repeats one now and then).

- A still picture: the same frame number for that long (beyond what the rendition's frame
  rate explains: a 60 fps rendition of the 30 fps clip shows each picture twice), inside a
  segment or across consecutive segments. Reported once per freeze, in the segment where it
  reaches the threshold.
- A step back: an earlier picture shown again, by that much video or more (a replayed
  segment). A transcoder's one-frame step back is not noticed: it is counted.

Every frame that shows an earlier picture again, noticed or not, is counted in
`streamer_repeated_frames_total`. (`max_repeats`, a count of frames, is replaced by the
two settings above: a count means a different time at every frame rate.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from streamer.checks.base import Failure, Finding, Observation, SegmentRecord, SessionContext
from streamer.checks.common import ConfiguredCheck
from streamer.checks.frames import W3C_FREEZE_FRAMES, W3C_FREEZE_MS, FrameWalker, FreezeRule
from streamer.checks.registry import register

KIND = "frozen_video"


@register
class FrozenVideo(ConfiguredCheck):
    name = KIND
    kinds = (KIND,)
    defaults: ClassVar[Mapping[str, Any]] = {
        "min_freeze_ms": W3C_FREEZE_MS,
        "min_freeze_frames": W3C_FREEZE_FRAMES,
    }
    replaced: ClassVar[Mapping[str, str]] = {
        "max_repeats": "min_freeze_ms and min_freeze_frames (a freeze is a duration: "
        "max(min_freeze_frames x frame duration, frame duration + min_freeze_ms))"
    }

    def __init__(self, context: SessionContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        rule = FreezeRule(self.number("min_freeze_frames"), self.number("min_freeze_ms"))
        self._walker = FrameWalker(context.fps, context.send_log.frames_per_loop, rule)

    def on_segment(self, record: SegmentRecord) -> list[Finding]:
        walk = self._walker.walk(record)
        sequence = record.segment.sequence
        noticed: list[str] = []
        for freeze in walk.freezes:
            so_far = " so far" if freeze.ongoing else ""
            if freeze.until is not None:
                noticed.append(
                    f"the picture stood still for at least {freeze.seconds * 1000:.0f} ms "
                    f"between frames {freeze.frame} and {freeze.until}"
                )
                continue
            noticed.append(
                f"frame {freeze.frame} frozen for {freeze.seconds * 1000:.0f} ms{so_far}"
            )
        for back in walk.steps_back:
            if back.noticed:
                noticed.append(
                    f"video went back from frame {back.before} to frame {back.after} "
                    f"({back.pictures} frames)"
                )
        findings: list[Finding] = []
        if noticed:
            more = f" and {len(noticed) - 1} more" if len(noticed) > 1 else ""
            findings.append(
                Failure(KIND, record.rendition, f"segment {sequence}: {noticed[0]}{more}")
            )
        if walk.repeated:
            findings.append(
                Observation(
                    "repeated_frames",
                    record.rendition,
                    walk.repeated,
                    f"segment {sequence}: {walk.repeated} frame(s) showed an earlier picture again",
                )
            )
        return findings
