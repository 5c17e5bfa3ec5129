"""`frozen_video`: the same picture shown longer than the rendition's frame rate explains.

A frame number repeated beyond the rendition's step (a 60 fps rendition of the 30 fps clip
shows each frame twice: fine) by more than `max_repeats` frames, or the video going back to
an earlier frame, inside a segment or across consecutive segments. Reported once per
segment; a long freeze is reported once, when it starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from streamer.checks.base import Failure, SegmentRecord, SessionContext
from streamer.checks.common import ConfiguredCheck
from streamer.checks.frames import FrameWalker
from streamer.checks.registry import register

KIND = "frozen_video"


@register
class FrozenVideo(ConfiguredCheck):
    name = KIND
    kinds = (KIND,)
    defaults: ClassVar[Mapping[str, Any]] = {"max_repeats": 0}

    def __init__(self, context: SessionContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self.max_repeats = int(self.number("max_repeats"))
        self._walker = FrameWalker(
            context.fps, context.send_log.frames_per_loop, max_extra_run=self.max_repeats
        )

    def on_segment(self, record: SegmentRecord) -> list[Failure]:
        _, repeats = self._walker.walk(record)
        if not repeats:
            return []
        first = repeats[0]
        if first.shown:
            what = f"frame {first.frame} shown {first.shown} times"
        else:
            what = f"video went back from frame {first.previous} to frame {first.frame}"
        more = f" and {len(repeats) - 1} more" if len(repeats) > 1 else ""
        return [Failure(KIND, record.rendition, f"segment {record.segment.sequence}: {what}{more}")]
