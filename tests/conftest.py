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
