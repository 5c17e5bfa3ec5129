"""Why a publish ended early: a typed error the session reports as `publish_failed`."""

from __future__ import annotations


class PublishError(Exception):
    """A publish failure. `reason` is short and safe to show: it never carries a stream key."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
