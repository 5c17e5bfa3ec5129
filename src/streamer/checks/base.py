"""The interface every check implements, and what a session tells checks.

A check sees the session's observations (master and media playlists, analysed segments,
the passing of time) and answers with findings: failures (what a viewer notices: the
session fails) and observations (what stays below that, e.g. one repeated frame: counted
in a metric, never failing). It never raises: the session runs every hook inside a guard,
and a check that crashes is reported, not fatal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from streamer.events import ObservationKind
from streamer.playback.playlist import MasterPlaylist, MediaPlaylist, Part, Segment
from streamer.playback.segment import SegmentAnalysis
from streamer.publish.sendlog import SendLog


@dataclass(frozen=True)
class Failure:
    kind: str
    rendition: str | None
    detail: str


@dataclass(frozen=True)
class Observation:
    """Counted, not failing: `count` of `kind` seen (e.g. 1 repeated frame), below what a
    viewer notices. Sinks count it in a metric; it never fails the session."""

    kind: ObservationKind
    rendition: str | None
    count: int
    detail: str


Finding = Failure | Observation


@dataclass(frozen=True, kw_only=True)
class SegmentRecord:
    """A downloaded, analysed segment of this session, with its frames placed in time."""

    rendition: str
    segment: Segment
    listed_at: float
    downloaded_at: float
    analysis: SegmentAnalysis
    first_frame: int | None  # absolute frame number (loop * frames_per_loop + clip frame)
    newest_frame: int | None
    newest_frame_sent_at: float | None


@dataclass(frozen=True, kw_only=True)
class PartRecord:
    """A downloaded LL-HLS part of this session (a GAP part has no download)."""

    rendition: str
    part: Part
    listed_at: float
    downloaded_at: float | None
    hinted: bool
    newest_frame_sent_at: float | None


@dataclass
class SessionContext:
    """What checks may read about the running session."""

    send_log: SendLog
    fps: float
    gop_frames: int
    expected_renditions: int | None
    publish_started_at: float | None = None
    publish_stopped_at: float | None = None  # set once the session stops publishing
    # Renditions gone from the master whose followers the session stopped: their playlists
    # are no longer read, so silence from them says nothing.
    retired_renditions: set[str] = field(default_factory=set)


class Check:
    """Base class: override the hooks you need; each returns what it found (failures, and
    observations for what is only counted)."""

    name: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]]
    defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, context: SessionContext, settings: Mapping[str, Any]) -> None:
        self.context = context
        self.settings = {**self.defaults, **settings}

    def on_master(self, master: MasterPlaylist, names: list[str], at: float) -> Sequence[Finding]:
        return []

    def on_playlist(self, rendition: str, playlist: MediaPlaylist, at: float) -> Sequence[Finding]:
        return []

    def on_segment(self, record: SegmentRecord) -> Sequence[Finding]:
        return []

    def on_part(self, record: PartRecord) -> Sequence[Finding]:
        return []

    def on_tick(self, now: float) -> Sequence[Finding]:
        return []

    def on_end(self, now: float) -> Sequence[Finding]:
        return []
