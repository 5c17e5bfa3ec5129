"""Synthetic, self-consistent observations for unit-testing checks without a stream.

`SyntheticRendition.segment(n)` is segment n of a healthy rendition of the 30 fps clip:
2 s segments listed every 2 s, PTS continuous, every frame's timecode readable, a tone
burst exactly on every frame that is a multiple of the frame rate. Tests break one thing
at a time with `dataclasses.replace` or the keyword arguments.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import av

from streamer.checks.base import Check, Failure, Observation, SegmentRecord, SessionContext
from streamer.playback.playlist import MasterPlaylist, MediaPlaylist, Segment, Variant
from streamer.playback.segment import AudioInfo, SegmentAnalysis
from streamer.publish.sendlog import SendLog
from streamer.testsignal.clip import ClipSpec, load_clip

FPS = 30
LOOP = 1800  # frames per clip loop
SEGMENT_SECONDS = 2.0
T0 = 1_000_000.0  # wall clock of the session's start


def context(expected_renditions: int | None = None, publishing: bool = True) -> SessionContext:
    ctx = SessionContext(SendLog(LOOP, FPS), FPS, 60, expected_renditions, publish_started_at=T0)
    if not publishing:
        ctx.publish_stopped_at = T0 + 60
    return ctx


@dataclass
class SyntheticRendition:
    name: str = "source"
    step: int = 1  # clip frames per rendition frame (2: a 15 fps rendition)
    pts_origin: float = 10.0  # PTS of clip frame 0
    listed_delay: float = 0.1  # listed this long after its last frame was due
    audio_offset: float = 0.0  # audio late by this much (negative: early)
    width: int = 640
    height: int = 360

    def frames(self, sequence: int) -> list[int]:
        per_segment = round(SEGMENT_SECONDS * FPS)
        return list(range(sequence * per_segment, (sequence + 1) * per_segment, self.step))

    def segment(
        self,
        sequence: int,
        *,
        frames: Sequence[int] | None = None,
        codes: Sequence[int | None] | None = None,
        extinf: float = SEGMENT_SECONDS,
        discontinuity: bool | None = None,
        listed_at: float | None = None,
        pts_shift: float = 0.0,
        audio: AudioInfo | bool | None = True,
    ) -> SegmentRecord:
        """Segment `sequence`; `frames` are absolute frame numbers shown (default: all of
        its slot at the rendition's step); `codes` overrides what each frame's timecode
        reads (None: unreadable)."""
        shown = list(frames) if frames is not None else self.frames(sequence)
        readings = list(codes) if codes is not None else [f % LOOP for f in shown]
        pts = [self.pts_origin + pts_shift + f / FPS for f in shown]
        start = sequence * SEGMENT_SECONDS
        if audio is True:
            audio = self.audio(sequence, pts_shift)
        analysis = SegmentAnalysis(
            video_codec="h264",
            width=self.width,
            height=self.height,
            first_pts=pts[0],
            last_pts=pts[-1],
            frame_duration=self.step / FPS,
            frame_count=len(shown),
            timecodes=tuple(readings),
            audio=audio or None,
            frame_pts=tuple(pts),
        )
        if discontinuity is None:
            discontinuity = sequence == 0
        end = start + SEGMENT_SECONDS
        return SegmentRecord(
            rendition=self.name,
            segment=Segment(
                sequence, f"http://o/{self.name}-{sequence}.ts", extinf, discontinuity, None
            ),
            listed_at=listed_at if listed_at is not None else T0 + end + self.listed_delay,
            downloaded_at=(listed_at or T0 + end + self.listed_delay) + 0.05,
            analysis=analysis,
            first_frame=shown[0],
            newest_frame=shown[-1],
            newest_frame_sent_at=T0 + shown[-1] / FPS,
        )

    def audio(self, sequence: int, pts_shift: float = 0.0) -> AudioInfo:
        start = sequence * SEGMENT_SECONDS
        base = self.pts_origin + pts_shift
        onsets = tuple(
            base + second + self.audio_offset
            for second in range(int(start), int(start + SEGMENT_SECONDS))
        )
        return AudioInfo(
            codec="aac",
            first_pts=base + start,
            duration=SEGMENT_SECONDS,
            gap_seconds=0.0,
            end_pts=base + start + 2.0,
            burst_onsets=onsets,
        )

    def playlist(
        self, first: int, last: int, target: float = SEGMENT_SECONDS, endlist: bool = False
    ) -> MediaPlaylist:
        segments = tuple(
            Segment(n, f"http://o/{self.name}-{n}.ts", SEGMENT_SECONDS, n == 0, None)
            for n in range(first, last + 1)
        )
        return MediaPlaylist(first, target, segments, endlist, False, None)

    def listed(self, sequence: int) -> float:
        """When segment `sequence` is listed by default."""
        return T0 + (sequence + 1) * SEGMENT_SECONDS + self.listed_delay


def master(*variants: tuple[str, str | None]) -> tuple[MasterPlaylist, list[str]]:
    """A master of (resolution, codecs) variants, and the names the session gives them."""
    built = tuple(
        Variant(f"http://o/{resolution}.m3u8", 1_000_000 // (i + 1), resolution, codecs)
        for i, (resolution, codecs) in enumerate(variants)
    )
    return MasterPlaylist(built, None), [resolution for resolution, _ in variants]


def feed(check: Check, records: Sequence[SegmentRecord]) -> list[Failure]:
    """The failures `check` finds in `records` (observations: see `observed`)."""
    return [f for f in findings(check, records) if isinstance(f, Failure)]


def findings(check: Check, records: Sequence[SegmentRecord]) -> list[Failure | Observation]:
    found: list[Failure | Observation] = []
    for record in records:
        found += check.on_segment(record)
    return found


def observed(check: Check, records: Sequence[SegmentRecord]) -> dict[str, int]:
    """What `check` counts in `records`, without failing: total count by kind."""
    totals: dict[str, int] = {}
    for finding in findings(check, records):
        if isinstance(finding, Observation):
            totals[finding.kind] = totals.get(finding.kind, 0) + finding.count
    return totals


def replace_analysis(record: SegmentRecord, **changes: object) -> SegmentRecord:
    return dataclasses.replace(record, analysis=dataclasses.replace(record.analysis, **changes))  # type: ignore[arg-type]


@cache
def real_segment(seconds: float = 1.0) -> bytes:
    """The clip's first `seconds` as an MPEG-TS segment, as a packager would cut it."""
    clip = load_clip(ClipSpec())
    out_buffer = io.BytesIO()
    with av.open(str(clip.path)) as src, av.open(out_buffer, "w", format="mpegts") as out:
        video, audio = src.streams.video[0], src.streams.audio[0]
        video_out = out.add_stream_from_template(video)
        audio_out = out.add_stream_from_template(audio)
        for packet in src.demux(video, audio):
            if packet.dts is None or packet.pts is None or packet.time_base is None:
                continue
            if packet.pts * packet.time_base >= seconds:
                continue
            packet.stream = video_out if packet.stream.index == video.index else audio_out
            out.mux(packet)
    return out_buffer.getvalue()
