"""The catalogue of injected faults: each scenario is one real session against a real origin.

The publisher feeds a real nginx-rtmp origin (copy path or transcoded ladder), the follower
watches it through the chaos proxy, and faults are injected at the proxy (HTTP, playlists,
segment bytes) or at the publisher (frames, A/V). `EXPECTED` lists what each fault must be
reported as. The e2e fault tests assert it; the benchmarks count it ("faults caught").
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from typing import Any

import av
import numpy as np

from streamer.events import CheckFailed, StreamLabels
from streamer.playback.fetch import FetchPolicy
from streamer.publish.flv import FlvClip
from streamer.publish.publisher import FaultInjection
from streamer.session import SessionSettings
from streamer.testsignal.clip import ClipSpec
from tests.support.chaos import (
    ChaosProxy,
    Corrupt,
    Delay,
    DropVariant,
    Fault,
    Freeze,
    InsertTag,
    Lag,
    ReplaceBody,
    Replay,
    Rewind,
    SetExtinf,
    SetVariantAttributes,
    ShiftTimestamps,
    Skip,
    Status,
    StripAudio,
)
from tests.support.nginx import NginxOrigin
from tests.support.ports import free_port
from tests.support.session_run import Recorder, run_session

LABELS = StreamLabels("e2e-faults", "local", "local")
FETCH = FetchPolicy(timeout_seconds=1.5, connect_timeout_seconds=1.0)
NOT_A_MEDIA_PLAYLIST = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nother.m3u8\n"
STALL_LIMIT = 1.5 * 2.0  # stale_playlist's default factor x nginx's 2 s target duration
TICK = 0.25  # the session's check tick: the "one poll interval" of detection


@cache
def slate_segment() -> bytes:
    """A foreign 2 s MPEG-TS segment without timecodes (a platform's slate picture)."""
    out_buffer = io.BytesIO()
    with av.open(out_buffer, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        gray = np.full((540, 640), 128, dtype=np.uint8)
        for n in range(60):
            frame = av.VideoFrame.from_ndarray(gray, format="yuv420p")
            frame.pts, frame.time_base = n, Fraction(1, 30)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return out_buffer.getvalue()


@dataclass(frozen=True)
class Scenario:
    ladder: bool = False
    duration: float = 12.0
    faults: Callable[[str], list[Fault]] = lambda key: []
    publisher: FaultInjection | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    closed_ingest: bool = False
    # Kinds the run may report: what is injected, and what the injection also causes.
    allowed: frozenset[str] = frozenset()


SCENARIOS: dict[str, Scenario] = {
    "healthy_copy": Scenario(),
    "healthy_ladder": Scenario(ladder=True, duration=14.0),
    "publish_failed": Scenario(
        closed_ingest=True, duration=8.0, allowed=frozenset({"publish_failed"})
    ),
    "startup": Scenario(
        duration=8.0,
        faults=lambda key: [Status(f"{key}.m3u8", code=404)],
        settings={"startup_timeout_seconds": 4.0},
        allowed=frozenset({"startup_timeout", "http_error"}),
    ),
    "segments": Scenario(
        duration=14.0,
        faults=lambda key: [
            Delay(f"{key}.m3u8", on="segment", from_sequence=1, until_sequence=1, seconds=10),
            Status(f"{key}.m3u8", on="segment", from_sequence=2, until_sequence=2, code=500),
            Corrupt(f"{key}.m3u8", from_sequence=3, until_sequence=3),
            StripAudio(f"{key}.m3u8", from_sequence=4, until_sequence=4),
            ReplaceBody(
                f"{key}.m3u8", on="segment", from_sequence=5, until_sequence=5, body=slate_segment()
            ),
        ],
        # The slate has its own timestamps.
        allowed=frozenset(
            {
                "timeout",
                "http_error",
                "segment_decode_error",
                "audio_missing",
                "timecode_unreadable",
                "timestamp_gap",
            }
        ),
    ),
    "playlist": Scenario(
        duration=14.0,
        faults=lambda key: [
            SetExtinf(f"{key}.m3u8", from_sequence=1, sequence=1, seconds=3.0),
            InsertTag(f"{key}.m3u8", from_sequence=2, before=2),
            ShiftTimestamps(f"{key}.m3u8", from_sequence=3, until_sequence=3, seconds=0.5),
            ReplaceBody(f"{key}.m3u8", from_sequence=4, responses=1, body=NOT_A_MEDIA_PLAYLIST),
        ],
        # Shifted timestamps leave the same hole in the audio's timeline.
        allowed=frozenset(
            {
                "duration_mismatch",
                "discontinuity",
                "timestamp_gap",
                "audio_missing",
                "playlist_error",
            }
        ),
    ),
    "sequence": Scenario(
        duration=14.0,
        faults=lambda key: [
            InsertTag(f"{key}.m3u8", from_sequence=1, responses=1, tag="#EXT-X-ERROR:chaos"),
            Rewind(f"{key}.m3u8", from_sequence=2, responses=1, by=2),
            Skip(f"{key}.m3u8", from_sequence=3, sequence=3),
            ReplaceBody(f"{key}.m3u8", from_sequence=5, responses=1, body=b"<html>502</html>"),
        ],
        # Segment 3 never listed: 4 s without a new segment.
        allowed=frozenset(
            {"playlist_error", "media_sequence_regression", "media_sequence_gap", "stale_playlist"}
        ),
    ),
    "stale": Scenario(
        faults=lambda key: [Freeze(f"{key}.m3u8", from_sequence=2)],
        allowed=frozenset({"stale_playlist"}),
    ),
    "publisher": Scenario(
        publisher=FaultInjection(skip_frames=frozenset(range(70, 80)), audio_shift_seconds=0.3),
        allowed=frozenset({"frame_drop", "av_desync"}),
    ),
    "replay": Scenario(
        faults=lambda key: [Replay(f"{key}.m3u8", from_sequence=3, until_sequence=3, back=2)],
        # Segment 1 again at segment 3: its timestamps (video and audio) go back, and the
        # pictures of segment 3 are never shown.
        allowed=frozenset({"frozen_video", "timestamp_gap", "audio_missing", "frame_drop"}),
    ),
    "ladder": Scenario(
        ladder=True,
        duration=14.0,
        settings={"expected_renditions": 3},
        faults=lambda key: [
            DropVariant(f"{key}.m3u8", from_sequence=1, uri_contains="_144p"),
            SetVariantAttributes(
                f"{key}.m3u8", uri_contains="_360p", attributes='CODECS="hvc1.1.6.L93.B0,mp4a.40.2"'
            ),
            Lag(f"{key}_144p.m3u8", seconds=3.0),
        ],
        allowed=frozenset({"rendition_missing", "codec_mismatch", "rendition_drift"}),
    ),
}


@dataclass
class Run:
    recorder: Recorder
    report: dict[str, Any]

    @property
    def failures(self) -> list[CheckFailed]:
        return self.recorder.of(CheckFailed)

    @property
    def kinds(self) -> set[str]:
        return {f.kind for f in self.failures}

    def summary(self) -> list[tuple[str, str | None, str]]:
        return [(f.kind, f.rendition, f.detail) for f in self.failures]


async def run_scenario(
    scenario: Scenario, origin: NginxOrigin, flv: FlvClip, spec: ClipSpec
) -> Run:
    key = "chaos" + uuid.uuid4().hex[:12]
    ingest = origin.ingest_url(key)
    if scenario.closed_ingest:
        ingest = f"rtmp://127.0.0.1:{free_port()}/live/{key}"
    async with ChaosProxy(f"http://127.0.0.1:{origin.http_port}", scenario.faults(key)) as proxy:
        settings = SessionSettings(
            labels=LABELS,
            ingest_url=ingest,
            playback_url=proxy.url(f"/hls/{key}.m3u8"),
            duration_seconds=scenario.duration,
            drain_timeout_seconds=3.0,
            fetch=FETCH,
            faults=scenario.publisher,
            **{"startup_timeout_seconds": 15.0, **scenario.settings},
        )
        recorder, report = await run_session(settings, flv, spec)
    return Run(recorder, report)


async def run_all(origins: dict[bool, NginxOrigin], flv: FlvClip, spec: ClipSpec) -> dict[str, Run]:
    slate_segment()  # encoded before the clock matters
    names = list(SCENARIOS)
    runs = await asyncio.gather(
        *(
            run_scenario(SCENARIOS[name], origins[SCENARIOS[name].ladder], flv, spec)
            for name in names
        )
    )
    return dict(zip(names, runs, strict=True))


# (kind, scenario, rendition, a fragment of the detail)
EXPECTED = [
    ("publish_failed", "publish_failed", None, "refused"),
    ("startup_timeout", "startup", None, "no playable segment"),
    ("timeout", "segments", "source", "segment: no complete answer within 1.5s"),
    ("http_error", "segments", "source", "segment: HTTP 500"),
    ("segment_decode_error", "segments", "source", "segment 3"),
    ("audio_missing", "segments", "source", "segment 4 has no audio"),
    ("timecode_unreadable", "segments", "source", "segment 5"),
    ("duration_mismatch", "playlist", "source", "segment 1: EXTINF 3.000s"),
    ("discontinuity", "playlist", "source", "segment 2 carries EXT-X-DISCONTINUITY"),
    ("timestamp_gap", "playlist", "source", "segment 3: 0.500s hole"),
    ("playlist_error", "playlist", "source", "master playlist where a media playlist belongs"),
    ("playlist_error", "sequence", "source", "EXT-X-ERROR: chaos"),
    ("media_sequence_regression", "sequence", "source", "playlist went back"),
    ("media_sequence_gap", "sequence", "source", "sequence jumped from 2 to 4"),
    ("playlist_error", "sequence", "source", "not an HLS playlist"),
    ("stale_playlist", "stale", "source", "after segment 2"),
    ("frame_drop", "publisher", "source", "missing between frames 69 and"),
    ("av_desync", "publisher", "source", "ms late against video"),
    ("frozen_video", "replay", "source", "segment 3: video went back"),
    ("rendition_missing", "ladder", None, "lists 2 of 3 expected renditions"),
    ("rendition_missing", "ladder", "256x144", "disappeared from the master playlist"),
    ("codec_mismatch", "ladder", "640x360", "master declares video codec hevc"),
    ("rendition_drift", "ladder", "256x144", "after rendition 640x360 listed it"),
]


def reported(run: Run, kind: str, rendition: str | None, fragment: str) -> bool:
    """Whether `run` reported `kind` for `rendition` with `fragment` in its detail."""
    return any(
        fragment in f.detail for f in run.failures if f.kind == kind and f.rendition == rendition
    )
