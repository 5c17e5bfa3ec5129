"""Healthy origins never fail a session: the false-failure matrix.

A monitor that cries wolf gets muted. Each healthy origin a user may put in front of the
monitor runs several back-to-back sessions with every check at its default, and every one
must end `success` with no CheckFailed event at all:

- nginx-rtmp copying the publish (one media playlist, keyframe-cut 2 s segments);
- nginx-rtmp with its `exec ffmpeg` transcode ladder (two renditions and a master);
- FFmpeg's own HLS muxer (`ffmpeg -listen 1 ... -f hls`, libx264): MPEG-TS with one media
  playlist, and fMP4 (CMAF) with 1 s segments, two renditions and a master playlist from
  `-var_stream_map`;
- the embedded origin (`streamer origin`, what `make run` monitors with nothing configured),
  as plain HLS and as LL-HLS (CMAF parts, blocking reloads, preload hints).

Sessions of one origin reuse one stream key and playback URL, as the monitor does with a
fixed ingest URL. FFmpeg serves one publish per process, so each of its sessions gets a
fresh process writing into the same directory, like a user's `while true; do ffmpeg ...;
done`: each session starts with the previous one's ended playlist still in place, and a
numbering that starts again at 0. What a healthy packager does that no viewer sees (FFmpeg
shows the first frame of a stream twice) is at most counted, never a failure.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streamer.events import CheckFailed, CheckObserved, StreamLabels
from streamer.origin.embedded import EmbeddedOrigin
from streamer.publish.flv import FlvClip
from streamer.session import SessionSettings
from streamer.testsignal.clip import Clip
from tests.support.ffmpeg_origin import LADDER, FfmpegHlsOrigin
from tests.support.nginx import NginxOrigin
from tests.support.session_run import Recorder, run_session

pytestmark = pytest.mark.e2e

LABELS = StreamLabels("e2e-healthy", "local", "local")
SESSIONS = 3
SESSION_SECONDS = 12.0

# One session's (ingest URL, playback URL), held for the session's publish.
Endpoint = Callable[[], AbstractContextManager[tuple[str, str]]]


@dataclass
class Session:
    recorder: Recorder
    report: dict[str, Any]

    def failures(self) -> list[tuple[str, str | None, str]]:
        return [(f.kind, f.rendition, f.detail) for f in self.recorder.of(CheckFailed)]

    def counted(self, kind: str) -> dict[str | None, int]:
        totals: dict[str | None, int] = {}
        for event in self.recorder.of(CheckObserved):
            if event.kind == kind:
                totals[event.rendition] = totals.get(event.rendition, 0) + event.count
        return totals


async def _sessions(endpoint: Endpoint, flv: FlvClip, clip: Clip) -> list[Session]:
    sessions = []
    for _ in range(SESSIONS):
        with endpoint() as (ingest, playback):
            settings = SessionSettings(
                labels=LABELS,
                ingest_url=ingest,
                playback_url=playback,
                duration_seconds=SESSION_SECONDS,
            )
            recorder, report = await run_session(settings, flv, clip.spec)
        sessions.append(Session(recorder, report))
    return sessions


def _assert_healthy(sessions: list[Session], renditions: set[str], min_segments: int) -> None:
    assert len(sessions) == SESSIONS
    for number, session in enumerate(sessions, 1):
        assert session.failures() == [], (number, session.failures())
        assert session.report["outcome"] == "success", (number, session.report["errors"])
        # The session really played every rendition, segment after segment.
        counts = {r["name"]: r["segments"] for r in session.report["renditions"]}
        assert set(counts) == renditions, (number, counts)
        assert min(counts.values()) >= min_segments, (number, counts)


def _key() -> str:
    return "healthy" + uuid.uuid4().hex[:12]


def _fixed(ingest: str, playback: str) -> Endpoint:
    return lambda: contextlib.nullcontext((ingest, playback))


def _ffmpeg(origin: FfmpegHlsOrigin) -> Endpoint:
    key = _key()

    @contextlib.contextmanager
    def endpoint() -> Iterator[tuple[str, str]]:
        with origin.listen(key) as ingest:  # a new FFmpeg, the same key and directory
            yield ingest, origin.playback_url(key)

    return endpoint


async def test_nginx_copy(tmp_path: Path, clip: Clip, flv: FlvClip) -> None:
    key = _key()
    with NginxOrigin(tmp_path) as origin:
        sessions = await _sessions(
            _fixed(origin.ingest_url(key), origin.playback_url(key)), flv, clip
        )
    _assert_healthy(sessions, {"source"}, min_segments=5)


async def test_nginx_transcode_ladder(tmp_path: Path, clip: Clip, flv: FlvClip) -> None:
    key = _key()
    with NginxOrigin(tmp_path, ladder=True) as origin:
        sessions = await _sessions(
            _fixed(origin.ingest_url(key), origin.playback_url(key)), flv, clip
        )
    _assert_healthy(sessions, {"640x360", "256x144"}, min_segments=4)


async def test_ffmpeg_hls_mpegts(tmp_path: Path, clip: Clip, flv: FlvClip) -> None:
    with FfmpegHlsOrigin(tmp_path, renditions=LADDER[:1], segment_seconds=2) as origin:
        sessions = await _sessions(_ffmpeg(origin), flv, clip)
    _assert_healthy(sessions, {"source"}, min_segments=5)
    # FFmpeg's constant-frame-rate output shows the first frame twice: counted, not failed.
    assert all(s.counted("repeated_frames").get("source", 0) >= 1 for s in sessions)


async def test_ffmpeg_hls_fmp4_master(tmp_path: Path, clip: Clip, flv: FlvClip) -> None:
    with FfmpegHlsOrigin(tmp_path, fmp4=True, renditions=LADDER, segment_seconds=1) as origin:
        sessions = await _sessions(_ffmpeg(origin), flv, clip)
    _assert_healthy(sessions, {"640x360", "256x144"}, min_segments=9)


async def test_embedded_origin(clip: Clip, flv: FlvClip) -> None:
    origin = EmbeddedOrigin()
    await origin.start()
    try:
        key = _key()
        sessions = await _sessions(
            _fixed(origin.ingest_url(key), origin.playback_url(key)), flv, clip
        )
    finally:
        await origin.stop()
    _assert_healthy(sessions, {"640x360", "256x144"}, min_segments=4)


async def test_embedded_origin_ll_hls(clip: Clip, flv: FlvClip) -> None:
    origin = EmbeddedOrigin()
    await origin.start()
    try:
        key = _key()
        sessions = await _sessions(
            _fixed(origin.ingest_url(key), origin.ll_playback_url(key)), flv, clip
        )
    finally:
        await origin.stop()
    _assert_healthy(sessions, {"640x360", "256x144"}, min_segments=4)
    for session in sessions:  # followed part by part, every rendition
        parts = {r["name"]: r.get("parts", 0) for r in session.report["renditions"]}
        assert min(parts.values()) >= 4 * 6, parts
