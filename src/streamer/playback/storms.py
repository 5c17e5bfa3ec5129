"""Error storms: a run of failed requests reported as one ongoing error, not hundreds.

A platform answering 503 for half a minute is one outage. Its first failure is reported as
it is (detection time does not change); the failures that follow for the same rendition,
object and kind are only counted, until a request for that object succeeds or the session
ends; then one summary says how many and for how long ("HTTP 503 x 57 over 28.5 s").
Metrics count every failed request separately (`streamer_failed_requests_total`).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

_MAX_DETAILS = 4  # distinct answers named in a summary; the rest are "other"


@dataclass(frozen=True)
class StormSummary:
    rendition: str | None
    kind: str
    detail: str


@dataclass
class _Storm:
    first_at: float  # monotonic
    last_at: float
    count: int = 0
    details: Counter[str] = field(default_factory=Counter)

    def add(self, detail: str, at: float) -> None:
        self.count += 1
        self.last_at = at
        if detail in self.details or len(self.details) < _MAX_DETAILS:
            self.details[detail] += 1
        else:
            self.details["other"] += 1


class ErrorStorms:
    def __init__(self) -> None:
        self._storms: dict[tuple[str | None, str, str], _Storm] = {}

    def failed(self, rendition: str | None, source: str, kind: str, detail: str) -> bool:
        """Records one failed request; True when it starts a storm (report it as it is)."""
        now = time.monotonic()
        key = (rendition, source, kind)
        storm = self._storms.get(key)
        starts = storm is None
        if storm is None:
            storm = self._storms[key] = _Storm(now, now)
        storm.add(_without_source(detail, source), now)
        return starts

    def recovered(self, rendition: str | None, source: str) -> list[StormSummary]:
        """A request for `source` of `rendition` succeeded: the storms it ends."""
        ended = [key for key in self._storms if key[0] == rendition and key[1] == source]
        return [s for s in (self._summary(key, "then recovered") for key in ended) if s]

    def end(self) -> list[StormSummary]:
        """The session ends: every storm still going."""
        return [s for s in (self._summary(k, "until the end") for k in list(self._storms)) if s]

    def _summary(self, key: tuple[str | None, str, str], how: str) -> StormSummary | None:
        storm = self._storms.pop(key)
        if storm.count < 2:
            return None  # a single failure was reported as it happened
        rendition, source, kind = key
        span = storm.last_at - storm.first_at
        if len(storm.details) == 1:
            (answer,) = storm.details
            what = f"{answer} x {storm.count}"
        else:
            answers = ", ".join(f"{a} x {n}" for a, n in storm.details.most_common())
            what = f"{storm.count} failed requests ({answers})"
        return StormSummary(rendition, kind, f"{source}: {what} over {span:.1f} s, {how}")


def _without_source(detail: str, source: str) -> str:
    prefix = f"{source}: "
    return detail[len(prefix) :] if detail.startswith(prefix) else detail
