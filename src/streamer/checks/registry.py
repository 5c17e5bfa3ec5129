"""All checks by name, and building the enabled ones with per-stream settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamer.checks.base import Check, SessionContext

REGISTRY: dict[str, type[Check]] = {}


def register(check: type[Check]) -> type[Check]:
    REGISTRY[check.name] = check
    return check


def build_checks(
    context: SessionContext, settings: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Check]:
    """Instantiates every registered check not disabled with `enabled: false`."""
    settings = settings or {}
    unknown = set(settings) - set(REGISTRY)
    if unknown:
        raise ValueError(f"unknown check(s): {', '.join(sorted(unknown))}")
    checks = []
    for name, cls in sorted(REGISTRY.items()):
        own = dict(settings.get(name, {}))
        enabled = own.pop("enabled", True)
        if not isinstance(enabled, bool):  # "enabled: nope" must not mean enabled
            raise ValueError(f"check {name}: enabled must be true or false")
        if not enabled:
            continue
        checks.append(cls(context, own))
    return checks
