"""Decoded WebRTC frames in, units the checks read out (the same SegmentAnalysis as HLS).

A WebRTC viewer gets frames one by one, not segments. They are gathered into short units
(`BATCH_SECONDS`, numbered in order) so that placement and every frame and audio check
work unchanged: frame numbers walk across units as across consecutive segments.

The timeline: each track's RTP timestamps (video 90 kHz, audio 48 kHz) are exact but start
at random values. Each is put on the wall clock by the smallest (arrival - timestamp) seen
so far, the frame that met the least delay. Audio and video then share one timeline, on
which the tone bursts are paired with their frames (A/V sync as received, before any lip
sync a player might add) and holes in the audio are real holes, not scheduling jitter.
The first frames often arrive in a burst (a server sends what it buffered while starting),
so the mapping improves as frames come: a unit whose mapping moved by more than
`_CLOCK_STEP_SECONDS` starts a new timeline (a discontinuity), as a segment would.

Audio and video come through separate receivers (and decoder threads), so on a busy host
the audio of a moment can arrive after its video. A unit therefore waits, up to
`AUDIO_WAIT_SECONDS`, until the audio has reached its video's end on the timeline: a unit
cut before its audio arrived would read as silence that no listener heard. Audio later
than that is missing for a listener too, and the unit goes without it.
"""

from __future__ import annotations

import itertools
import statistics
from collections import deque
from dataclasses import dataclass, field

import av

from streamer.playback.follower import SegmentFetch
from streamer.playback.playlist import Segment
from streamer.playback.segment import (
    AudioInfo,
    SegmentAnalysis,
    _burst_onsets,
    _Bursts,
    _Envelope,
    _envelope,
    _luma,
    check_size,
)
from streamer.testsignal import timecode

BATCH_SECONDS = 0.5
AUDIO_WAIT_SECONDS = 1.0  # how long a unit waits for audio late behind its video
_AUDIO_SLACK_SECONDS = 0.05  # audio this close to the video's end has caught up
UNIT_URI = "webrtc:frames"
_MAX_BATCH_FRAMES = 600  # a runaway sender cannot grow a unit without bound
_CLOCK_STEP_SECONDS = 0.01
_GAP_FACTOR = 1.5  # a step this much longer than the usual frame step: frames were lost


@dataclass
class _Clock:
    """Maps one track's timestamps (seconds) to the wall clock."""

    offset: float | None = None
    flushed: float | None = None  # the offset the previous unit was mapped with

    def moved(self) -> bool:
        """Whether the mapping moved since the previous unit (and remembers it now)."""
        moved = (
            self.flushed is not None
            and self.offset is not None
            and abs(self.offset - self.flushed) > _CLOCK_STEP_SECONDS
        )
        self.flushed = self.offset
        return moved

    def observe(self, pts: float, arrived: float) -> None:
        delay = arrived - pts
        if self.offset is None or delay < self.offset:
            self.offset = delay

    def wall(self, pts: float) -> float:
        return pts + (self.offset or 0.0)


@dataclass(frozen=True)
class _Frame:
    pts: float
    code: int | None
    arrived: float


@dataclass(frozen=True)
class _Audio:
    pts: float
    duration: float
    envelope: _Envelope  # (start PTS, window length, levels), as segment analysis reads it


@dataclass
class FrameBatcher:
    """Collects one track pair's frames; `flush()` hands out the unit gathered so far."""

    rendition: str
    video_codec: str = "h264"
    audio_codec: str = "opus"
    batch_seconds: float = BATCH_SECONDS
    width: int = 0
    height: int = 0
    _sequence: int = 0
    _video_clock: _Clock = field(default_factory=_Clock)
    _audio_clock: _Clock = field(default_factory=_Clock)
    _frames: list[_Frame] = field(default_factory=list)
    _audio: list[_Audio] = field(default_factory=list)
    frames_received: int = 0
    frames_not_shown: int = 0  # late, or decoded without their references
    _last_pts: float | None = None
    _steps: deque[float] = field(default_factory=lambda: deque(maxlen=30))
    _awaiting_keyframe: bool = False
    _audio_peak: float = 0.0  # the loudest audio window heard (a tone burst's)
    _audio_end: float | None = None  # where the newest audio received ends (its PTS)
    _audio_waiting_since: float | None = None  # arrival clock: a unit waits for its audio
    _audio_given_up: bool = False  # the audio is AUDIO_WAIT_SECONDS late: not waited for

    def add_video(self, frame: av.VideoFrame, arrived: float) -> None:
        if frame.pts is None or frame.time_base is None:
            return
        pts = float(frame.pts * frame.time_base)
        if not self._shown(frame, pts):
            return
        check_size(frame.width, frame.height)
        self.width, self.height = frame.width, frame.height
        self._video_clock.observe(pts, arrived)
        self._frames.append(_Frame(pts, timecode.read(_luma(frame)), arrived))
        self.frames_received += 1

    def _shown(self, frame: av.VideoFrame, pts: float) -> bool:
        """Whether a browser would show this decoded frame. aiortc hands on what a
        browser's receiver drops: frames late behind a newer one (retransmissions), and
        frames decoded after a loss without their references, up to the next keyframe."""
        last = self._last_pts
        if last is not None and pts <= last:
            self.frames_not_shown += 1
            return False
        step = pts - last if last is not None else None
        if step is not None and self._steps and step > _GAP_FACTOR * min(self._steps):
            self._awaiting_keyframe = True  # frames went missing: references with them
        if step is not None:
            self._steps.append(step)
        self._last_pts = pts
        if frame.is_corrupt or (self._awaiting_keyframe and not frame.key_frame):
            self._awaiting_keyframe = True
            self.frames_not_shown += 1
            return False
        self._awaiting_keyframe = False
        return True

    def add_audio(self, frame: av.AudioFrame, arrived: float) -> None:
        if frame.pts is None or frame.time_base is None or not frame.sample_rate:
            return
        envelope = _envelope(frame)
        if envelope is None:
            return
        pts = float(frame.pts * frame.time_base)
        duration = frame.samples / frame.sample_rate
        self._audio_clock.observe(pts, arrived)
        self._audio.append(_Audio(pts, duration, envelope))
        end = pts + duration
        self._audio_end = end if self._audio_end is None else max(self._audio_end, end)

    @property
    def pending(self) -> int:
        return len(self._frames)

    def due(self, now: float | None = None) -> bool:
        """Whether a unit should go now: the very first frame (startup is timed by it), a
        unit's worth of frames once their audio is in (see `audio_ready`), or the bound.
        `now`: the arrival clock (wall); default, the newest frame's arrival."""
        if not self._frames:
            return False
        if self._sequence == 0 or len(self._frames) >= _MAX_BATCH_FRAMES:
            return True
        if self._frames[-1].pts - self._frames[0].pts < self.batch_seconds:
            return False
        return self.audio_ready(self._frames[-1].arrived if now is None else now)

    def audio_ready(self, now: float) -> bool:
        """Whether the audio has reached the pending frames' end on the timeline, or will
        not: no audio ever came, or it is AUDIO_WAIT_SECONDS late (`now`: arrival clock)."""
        if not self._frames or self._audio_end is None:
            return True
        video_end = self._video_clock.wall(self._frames[-1].pts)
        if self._audio_clock.wall(self._audio_end) >= video_end - _AUDIO_SLACK_SECONDS:
            self._audio_waiting_since = None
            self._audio_given_up = False
            return True
        if self._audio_given_up:  # waited once already: units go on without it meanwhile
            return True
        if self._audio_waiting_since is None:
            self._audio_waiting_since = now
        self._audio_given_up = now - self._audio_waiting_since >= AUDIO_WAIT_SECONDS
        return self._audio_given_up

    def flush(self) -> SegmentFetch | None:
        """The unit of the frames (and audio) received since the last flush, or None."""
        if not self._frames:
            return None
        frames, self._frames = self._frames, []
        audio, self._audio = self._audio, []
        self._audio_waiting_since = None
        pts = [self._video_clock.wall(f.pts) for f in frames]
        steps = [b - a for a, b in itertools.pairwise(pts) if b > a]
        analysis = SegmentAnalysis(
            video_codec=self.video_codec,
            width=self.width,
            height=self.height,
            first_pts=pts[0],
            last_pts=pts[-1],
            frame_duration=statistics.median(steps) if steps else 0.0,
            frame_count=len(frames),
            timecodes=tuple(f.code for f in frames),
            audio=self._audio_info(audio),
            frame_pts=tuple(pts),
        )
        sequence, self._sequence = self._sequence, self._sequence + 1
        arrived = frames[-1].arrived
        moved = [self._video_clock.moved(), self._audio_clock.moved()]
        return SegmentFetch(
            rendition=self.rendition,
            segment=Segment(sequence, UNIT_URI, analysis.media_duration, any(moved), None),
            listed_at=arrived,
            first_listing=False,
            downloaded_at=arrived,
            size_bytes=0,
            analysis=analysis,
            error_kind=None,
            error_detail=None,
            frame_times=tuple(f.arrived for f in frames),
        )

    def _audio_info(self, audio: list[_Audio]) -> AudioInfo | None:
        if not audio:
            return None
        clock = self._audio_clock
        envelopes = [(clock.wall(start), step, levels) for start, step, levels in _envelopes(audio)]
        gap = 0.0
        for before, after in itertools.pairwise(audio):
            gap = max(gap, after.pts - (before.pts + before.duration))
        peak = max((float(levels.max()) for _, _, levels in envelopes if len(levels)), default=0)
        self._audio_peak = max(self._audio_peak, peak)
        if peak < self._audio_peak / 2:
            # Burst detection reads "loud" as half a unit's own peak; a short unit without a
            # burst would take its quiet bed for loud. Half the loudest heard so far is the
            # fixed measure: below it, this unit is all quiet.
            end = audio[-1].pts + audio[-1].duration
            bursts = _Bursts([], None, end - audio[0].pts)
        else:
            bursts = _burst_onsets(envelopes)
        return AudioInfo(
            codec=self.audio_codec,
            first_pts=clock.wall(audio[0].pts),
            duration=sum(a.duration for a in audio),
            gap_seconds=gap,
            end_pts=clock.wall(audio[-1].pts + audio[-1].duration),
            burst_onsets=tuple(bursts.onsets),
            leading_loud=bursts.leading_loud,
            quiet_end_seconds=bursts.quiet_end_seconds,
        )


def _envelopes(audio: list[_Audio]) -> list[_Envelope]:
    return [a.envelope for a in audio]
