"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.embedded_origin import Origin, running_origin


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[Origin]:
    """`streamer origin` for the test (a module may define its own `origin` instead)."""
    with running_origin(tmp_path / "origin.log") as running:
        yield running
