"""Shared fixtures: the test clip (generated once per run, cached on disk)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamer.publish.flv import FlvClip
from streamer.testsignal.clip import Clip, ClipSpec, load_clip
from streamer.wiring import flv_clip

CACHE_DIR = Path(
    os.environ.setdefault("STREAMER_CACHE_DIR", str(Path.home() / ".cache" / "streamer"))
)


@pytest.fixture(scope="session")
def clip() -> Clip:
    return load_clip(ClipSpec())


@pytest.fixture(scope="session")
def flv(clip: Clip) -> FlvClip:
    return flv_clip(clip.spec)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """A skipped test is a failure: a check that did not run because a dependency (a
    Debian package, a browser) is missing has not passed."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped, which counts as a failure: {report.longrepr}"
    return None
