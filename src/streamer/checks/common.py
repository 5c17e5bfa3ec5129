"""Helpers shared by the checks: validated numeric settings, per-rendition memory, PTS math."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from streamer.checks.base import Check, SessionContext

# MPEG-TS timestamps are 33 bits at 90 kHz: they wrap every ~26.5 h, and every segment is
# demuxed on its own, so a wrap shows up as a jump of this size between two segments.
PTS_WRAP_SECONDS = (1 << 33) / 90_000


def pts_delta(later: float, earlier: float) -> float:
    """`later - earlier`, with an MPEG-TS timestamp wrap between them undone."""
    delta = later - earlier
    return (delta + PTS_WRAP_SECONDS / 2) % PTS_WRAP_SECONDS - PTS_WRAP_SECONDS / 2


class ConfiguredCheck(Check):
    """A check whose settings are numbers with defaults: unknown keys and bad values fail at
    build time (a typo in a threshold must not silently fall back to the default)."""

    # Settings an earlier version took: refused, naming what replaced them.
    replaced: ClassVar[Mapping[str, str]] = {}

    def __init__(self, context: SessionContext, settings: Mapping[str, Any]) -> None:
        for old in sorted(set(settings) & set(self.replaced)):
            raise ValueError(
                f"check {self.name}: {old} is no longer supported; use {self.replaced[old]}"
            )
        unknown = sorted(set(settings) - set(self.defaults))
        if unknown:
            raise ValueError(f"check {self.name}: unknown setting(s) {', '.join(unknown)}")
        super().__init__(context, settings)

    def number(self, key: str, minimum: float = 0.0) -> float:
        value = self.settings[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < minimum
        ):
            raise ValueError(f"check {self.name}: {key} must be a number >= {minimum:g}")
        return float(value)
