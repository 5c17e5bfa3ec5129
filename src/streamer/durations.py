"""Durations as people write them: `2m`, `90s`, `1h`, `1m30s`, `500ms`, or plain seconds."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(value: str | float | int) -> float:
    """Seconds; raises ValueError with a message fit for a config error."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 2m, 90s, 1h or seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            parts = _PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
                raise ValueError(
                    f"{value!r} is not a duration (use e.g. 2m, 90s, 1h or seconds)"
                ) from None
            factor = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
            seconds = sum(float(n) * factor[u] for n, u in parts)
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def format_duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"
