"""Which frames of which rendition are decoded: the process's decode policy.

Decoding every frame of every rendition is almost all of a monitor's CPU. A viewer sees
one rendition at a time, and a fault upstream of a transcoding ladder (ingest, the source
decoder, a stalled publish) shows in every rendition alike, so the policy decodes every
frame where it is cheapest and checks the other renditions at packet and keyframe level:

- `lowest` (the default): every frame of the rendition with the fewest pixels (then the
  lowest BANDWIDTH; kept while it is followed), keyframes only of the others
  (`keyframe` analysis: every packet's PTS, keyframe timecodes, every frame of a segment
  whose packets look like a still picture). One rendition: every frame.
- `full`: every frame of every rendition.
- `keyframe`: keyframes only, everywhere.

`STREAMER_DECODE_MODE` picks it (an unknown value: the default). What each catches is in
docs/checks.md ("Decode modes").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from streamer.playback.playlist import Variant
from streamer.playback.segment import DecodeMode

DecodePolicy = Literal["lowest", "full", "keyframe"]
DECODE_POLICIES: tuple[DecodePolicy, ...] = ("lowest", "full", "keyframe")
DEFAULT_POLICY: DecodePolicy = "lowest"


def policy_from_env() -> DecodePolicy:
    """The process's policy, from STREAMER_DECODE_MODE (`lowest` when unset or unknown)."""
    value = os.environ.get("STREAMER_DECODE_MODE", "").strip().lower()
    for policy in DECODE_POLICIES:
        if value == policy:
            return policy
    return DEFAULT_POLICY


@dataclass(frozen=True)
class RenditionDecoding:
    """How one rendition's segments are analysed."""

    every_frame: bool  # else keyframes (segment.py's `keyframe` analysis)

    @property
    def mode(self) -> DecodeMode:
        return "full" if self.every_frame else "keyframe"


EVERY_FRAME = RenditionDecoding(every_frame=True)
KEYFRAMES = RenditionDecoding(every_frame=False)


def _pixels(variant: Variant) -> int | None:
    if variant.resolution is None:
        return None
    width, _, height = variant.resolution.partition("x")
    try:
        return int(width) * int(height)
    except ValueError:
        return None


def cheapest(variants: Mapping[str, Variant]) -> str | None:
    """The rendition cheapest to decode: fewest pixels, then lowest BANDWIDTH, then the
    first listed. Renditions without a resolution (audio) only when there is nothing else."""
    if not variants:
        return None
    ranked = sorted(
        enumerate(variants.items()),
        key=lambda item: (
            _pixels(item[1][1]) is None,
            _pixels(item[1][1]) or 0,
            item[1][1].bandwidth if item[1][1].bandwidth is not None else float("inf"),
            item[0],
        ),
    )
    return ranked[0][1][0]


class DecodePlan:
    """Per followed rendition, its decoding under `policy`. The fully decoded rendition
    stays the same while it is followed: a viewer-side choice that flips with every master
    refresh would leave gaps in the frame walk of both."""

    def __init__(self, policy: DecodePolicy | None = None) -> None:
        self.policy = policy or policy_from_env()
        self._primary: str | None = None

    @property
    def primary(self) -> str | None:
        return self._primary

    def assign(self, followed: Mapping[str, Variant]) -> dict[str, RenditionDecoding]:
        """The decoding of every rendition in `followed` (name -> its variant)."""
        if self.policy == "full":
            return dict.fromkeys(followed, EVERY_FRAME)
        if self.policy == "keyframe":
            return dict.fromkeys(followed, KEYFRAMES)
        if self._primary not in followed:
            self._primary = cheapest(followed)
        return {name: EVERY_FRAME if name == self._primary else KEYFRAMES for name in followed}

    def single(self) -> RenditionDecoding:
        """A stream of one rendition (a media playlist): every frame, unless `keyframe`."""
        return self.assign({"": Variant(uri="", bandwidth=None, resolution=None, codecs=None)})[""]
