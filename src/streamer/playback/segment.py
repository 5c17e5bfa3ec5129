"""Segment analysis: demux and decode one downloaded segment, read its frames' timecodes.

Runs in a worker thread (decoding is CPU work). Segments come from the platform under
test and may be hostile: size is capped by the fetcher, and anything undecodable becomes a
SegmentDecodeError, never another exception. Nothing is kept: the bytes are dropped once
analysed.

Decode modes (`STREAMER_DECODE_MODE`, default `full`):

- `full`: every video frame is decoded and its timecode read.
- `keyframe`: only the segment's keyframes are decoded and read; every other frame is known
  from its packet's PTS alone (`timecodes` holds None there), and the session places it by
  its PTS distance from the keyframe. Several times cheaper; frame checks then see one
  readable frame per GOP, so drops show up as missing packets and a picture frozen for
  less than a GOP is not seen.

Bounds (a hostile segment must cost a bounded amount of work): only the containers HLS
allows are opened, each with its own demuxer named (`format=`), so that FFmpeg never probes
for another one (its HLS or concat demuxers would open what the bytes name); at most
`MAX_VIDEO_FRAMES` frames and `MAX_PACKETS` packets, frames of at most `MAX_FRAME_PIXELS`,
and `MAX_ANALYSIS_SECONDS` of work per segment. Beyond any of them the segment is a
SegmentDecodeError saying which bound it crossed.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import av
import numpy as np
import numpy.typing as npt

from streamer.testsignal import timecode

DecodeMode = Literal["full", "keyframe"]
DECODE_MODES: tuple[DecodeMode, ...] = ("full", "keyframe")
# Estimating the frame rate while opening decodes frames nobody uses (half the cost of
# opening a 2 s segment): the frame rate here comes from the frames' PTS instead. The rest
# of the probe stays, in both modes: without it FFmpeg's MPEG-TS demuxer hands over a PES
# of several AAC frames (what FFmpeg's own muxer writes) as one packet of one frame's
# duration, and the audio looks full of holes.
_OPEN_OPTIONS = {"fpsprobesize": "0"}

MAX_VIDEO_FRAMES = 3600  # 60 s at 60 fps
MAX_PACKETS = 50_000  # video and audio together
MAX_FRAME_PIXELS = 4096 * 2304  # 4K (UHD and DCI); an 8K picture is refused
MAX_ANALYSIS_SECONDS = 10.0

# The segment formats HLS allows (RFC 8216 section 3), as FFmpeg demuxer names.
_MP4_BOXES = frozenset({b"ftyp", b"styp", b"moov", b"moof", b"sidx", b"free", b"emsg", b"prft"})
_TS_PACKET = 188
_TS_SYNC = 0x47


def default_mode() -> DecodeMode:
    """The process's decode mode, from STREAMER_DECODE_MODE (`full` when unset or unknown)."""
    value = os.environ.get("STREAMER_DECODE_MODE", "").strip().lower()
    for mode in DECODE_MODES:
        if value == mode:
            return mode
    return "full"


class SegmentDecodeError(ValueError):
    """The segment could not be demuxed or decoded; the message is safe to show."""


def _skip_id3(data: bytes) -> bytes:
    """Packed audio starts with an ID3 tag (its timestamp); what follows is the audio."""
    if len(data) >= 10 and data[:3] == b"ID3":
        size = 0
        for byte in data[6:10]:
            size = (size << 7) | (byte & 0x7F)  # syncsafe integer
        return data[10 + size :]
    return data


def container_format(head: bytes) -> str:
    """The demuxer for a segment's first bytes (its init section's, with EXT-X-MAP):
    MPEG-TS, fragmented MP4 / CMAF, or packed audio (AAC in ADTS, MP3); anything else
    raises SegmentDecodeError."""
    if head[:1] == bytes([_TS_SYNC]) and (len(head) <= _TS_PACKET or head[_TS_PACKET] == _TS_SYNC):
        return "mpegts"
    if head[4:8] in _MP4_BOXES:
        return "mov"  # FFmpeg's demuxer for MP4, fMP4 and CMAF
    audio = _skip_id3(head)
    if len(audio) >= 2 and audio[0] == 0xFF:
        if audio[1] & 0xF6 == 0xF0:  # ADTS: sync word, layer 0
            return "aac"
        if audio[1] & 0xE0 == 0xE0:  # MPEG audio frame sync
            return "mp3"
    raise SegmentDecodeError(
        "not a segment format HLS allows (MPEG-TS, fragmented MP4/CMAF, packed AAC or MP3)"
    )


class _Budget:
    """Counts what a segment costs; raises SegmentDecodeError past a bound."""

    def __init__(self) -> None:
        self._deadline = time.monotonic() + MAX_ANALYSIS_SECONDS
        self.packets = 0
        self.frames = 0

    def packet(self) -> None:
        self.packets += 1
        if self.packets > MAX_PACKETS:
            raise SegmentDecodeError(f"more than {MAX_PACKETS} packets in one segment")
        if self.packets % 64 == 0:
            self.check_time()

    def frame(self, width: int, height: int) -> None:
        self.frames += 1
        if self.frames > MAX_VIDEO_FRAMES:
            raise SegmentDecodeError(f"more than {MAX_VIDEO_FRAMES} video frames in one segment")
        check_size(width, height)
        self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self._deadline:
            raise SegmentDecodeError(
                f"analysis took longer than {MAX_ANALYSIS_SECONDS:g}s (segment too costly)"
            )


def check_size(width: int, height: int) -> None:
    if width * height > MAX_FRAME_PIXELS:
        raise SegmentDecodeError(f"video of {width}x{height} is larger than 4K")


@dataclass(kw_only=True, frozen=True)
class AudioInfo:
    codec: str
    first_pts: float
    duration: float  # seconds of audio samples in the segment
    gap_seconds: float  # largest hole between consecutive audio packets
    end_pts: float | None = None  # end of the last audio packet
    burst_onsets: tuple[float, ...] = ()  # PTS of each tone burst's start (see _burst_onsets)
    # A burst too close to the segment's start to tell from inside it (segments cut at the
    # second a burst starts): its first loud window, with only quiet before it here. It is
    # an onset if the previous segment ended quiet (see joined_onset).
    leading_loud: float | None = None
    quiet_end_seconds: float = 0.0  # quiet after the last loud window, to the audio's end


def joined_onset(previous: AudioInfo, audio: AudioInfo) -> float | None:
    """The burst onset `audio` starts with, when `previous` is the audio right before it
    on the same timeline and, together, they have enough quiet before the burst."""
    if audio.leading_loud is None or previous.end_pts is None:
        return None
    if abs(audio.first_pts - previous.end_pts) > 2 * _WINDOW_SECONDS:
        return None  # a hole or an overlap: what came right before is unknown
    quiet = previous.quiet_end_seconds + (audio.leading_loud - audio.first_pts)
    return audio.leading_loud if quiet >= _QUIET_SECONDS else None


@dataclass(kw_only=True, frozen=True)
class SegmentAnalysis:
    video_codec: str
    width: int
    height: int
    first_pts: float  # seconds, the container's clock (not comparable across platforms)
    last_pts: float
    frame_duration: float
    frame_count: int
    timecodes: tuple[int | None, ...]  # per decoded frame, presentation order
    audio: AudioInfo | None
    frame_pts: tuple[float, ...] = ()  # per decoded frame, presentation order

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def media_duration(self) -> float:
        return self.last_pts - self.first_pts + self.frame_duration

    @property
    def first_timecode(self) -> tuple[int, int] | None:
        """(index in segment, clip frame) of the first readable timecode."""
        for i, code in enumerate(self.timecodes):
            if code is not None:
                return i, code
        return None

    @property
    def last_timecode(self) -> tuple[int, int] | None:
        """(index in segment, clip frame) of the last readable timecode."""
        for i in range(len(self.timecodes) - 1, -1, -1):
            code = self.timecodes[i]
            if code is not None:
                return i, code
        return None


def _luma(frame: av.VideoFrame) -> npt.NDArray[np.uint8]:
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(-1, plane.line_size)
    return rows[: frame.height, : frame.width]


# A/V sync: the clip's audio is a quiet bed with a loud burst at the start of every second.
# A burst starts where a 1 ms window gets loud (half the segment's peak) after at least
# _QUIET_SECONDS of quiet: the bed never gets there, and a burst lasts only 0.1 s.
_WINDOW_SECONDS = 0.001
_QUIET_SECONDS = 0.05
_MIN_PEAK = 0.02  # quieter than this is silence: no bursts
_MAX_AUDIO_WINDOWS = 120_000  # 2 minutes of envelope: bounds the memory a segment can cost
_MAX_ONSETS = 256
# Keyframe mode decodes the audio this close to a keyframe only: the A/V check's pairing
# window (0.45 s) plus the quiet that must precede a burst (_QUIET_SECONDS).
_AUDIO_AROUND_MARKER_SECONDS = 0.5
# Keyframe mode decodes a segment in full when this many packets in a row are no larger
# than a picture whose every macroblock is skipped (about a bit per macroblock, and the
# NAL and slice headers): what many encoders emit for a frozen picture.
_STILL_PACKETS = 2
_STILL_PACKET_BYTES = 64

# (start PTS, window length, peak level of each window) of one channel.
_Envelope = tuple[float, float, npt.NDArray[np.float32]]
# (start PTS, sample rate, |level| of each sample) of one channel.
_Chunk = tuple[float, int, npt.NDArray[np.float32]]
# Every video frame's PTS (seconds) and timecode (None: not read), in decode order.
_Frames = tuple[list[float], list[int | None]]


def _envelope(frame: av.AudioFrame) -> _Envelope | None:
    """(start PTS, window length, peak level of each window) of the first channel."""
    if frame.pts is None or frame.time_base is None or not frame.sample_rate:
        return None
    try:
        samples = frame.to_ndarray()
    except ValueError:  # a sample format numpy cannot hold: no bursts, not a broken segment
        return None
    if not frame.format.is_planar:  # interleaved: one row, channels alternate
        samples = samples.reshape(-1, max(1, len(frame.layout.channels))).T
    channel = samples[0]
    if np.issubdtype(channel.dtype, np.integer):
        level = np.abs(channel.astype(np.float32)) / float(np.iinfo(channel.dtype).max)
    else:
        level = np.abs(channel.astype(np.float32))
    size = max(1, round(frame.sample_rate * _WINDOW_SECONDS))
    count = len(level) // size
    windows = level[: count * size].reshape(count, size).max(axis=1)
    return float(frame.pts * frame.time_base), size / frame.sample_rate, windows


def _first_channel(frame: av.AudioFrame) -> _Chunk | None:
    """(start PTS, sample rate, |level| of the first channel); float planar without a copy."""
    if frame.pts is None or frame.time_base is None or not frame.sample_rate:
        return None
    start = frame.pts * float(frame.time_base)
    if frame.format.name == "fltp":
        samples = np.frombuffer(memoryview(frame.planes[0]), dtype=np.float32, count=frame.samples)
        return start, frame.sample_rate, np.abs(samples)
    envelope = _envelope(frame)  # other formats: the general path, window by window
    if envelope is None:
        return None
    return start, round(1 / envelope[1]), envelope[2]


def _merged_envelopes(chunks: list[_Chunk]) -> list[_Envelope]:
    """Envelopes of runs of back-to-back audio frames, one numpy pass per run (what
    `_envelope` gives frame by frame, for a fraction of the calls)."""
    envelopes: list[_Envelope] = []
    run: list[npt.NDArray[np.float32]] = []
    run_start = run_end = 0.0
    rate = 0
    for start, chunk_rate, level in [*chunks, (math.inf, 0, np.empty(0, np.float32))]:
        contiguous = run and chunk_rate == rate and abs(start - run_end) <= 2 / rate
        if run and not contiguous:
            size = max(1, round(rate * _WINDOW_SECONDS))
            levels = np.concatenate(run)
            count = len(levels) // size
            windows = levels[: count * size].reshape(count, size).max(axis=1)
            envelopes.append((run_start, size / rate, windows))
            run = []
        if not run:
            run_start, rate = start, chunk_rate
            run_end = start
        run.append(level)
        if chunk_rate:
            run_end += len(level) / chunk_rate
    return envelopes


@dataclass(frozen=True)
class _Bursts:
    onsets: list[float]
    leading_loud: float | None = None
    quiet_end_seconds: float = 0.0


def _burst_onsets(envelopes: list[_Envelope]) -> _Bursts:
    if not envelopes:
        return _Bursts([])
    peak = max((float(w.max()) for _, _, w in envelopes if len(w)), default=0.0)
    if peak < _MIN_PEAK:
        return _Bursts([])
    onsets: list[float] = []
    first_start = min(start for start, _, _ in envelopes)
    leading: float | None = None
    seen_loud = False
    last_loud: float | None = None
    loud_end = first_start  # where the quiet (or the unknown, after a hole) began
    expected_start: float | None = None
    for start, step, windows in sorted(envelopes, key=lambda e: e[0]):
        if expected_start is None or abs(start - expected_start) > 2 * step:
            last_loud = loud_end = start  # a hole in the audio: quiet before it is unknown
        expected_start = start + len(windows) * step
        for index in np.flatnonzero(windows >= peak / 2):
            at = start + float(index) * step
            if last_loud is not None and at - last_loud >= _QUIET_SECONDS:
                onsets.append(at)
            elif not seen_loud and last_loud == first_start:
                leading = at  # only quiet since the audio's start: the previous segment decides
            seen_loud = True
            last_loud, loud_end = at, at + step
    quiet_end = (expected_start if expected_start is not None else loud_end) - loud_end
    return _Bursts(onsets[:_MAX_ONSETS], leading, max(0.0, quiet_end))


def analyse(
    data: bytes, init: bytes | None = None, mode: DecodeMode | None = None
) -> SegmentAnalysis:
    """Demuxes and decodes a segment (TS, or fMP4 with its init section)."""
    if not data:
        raise SegmentDecodeError("empty segment")
    demuxer = container_format(init or data)
    video: _VideoTrack = (
        _KeyframeVideo() if (mode or default_mode()) == "keyframe" else _FullVideo()
    )
    try:
        codec, audio = _demux(io.BytesIO((init or b"") + data), demuxer, video)
    except SegmentDecodeError:
        raise
    except (av.FFmpegError, ValueError, OSError, IndexError, MemoryError) as exc:
        raise SegmentDecodeError(f"undecodable segment: {exc.__class__.__name__}") from None
    frames = video.frames()
    if frames is None or video.looks_still:
        # Keyframe mode decoded no keyframe, or packets look like a picture standing
        # still between keyframes: every frame decides.
        return analyse(data, init, "full")
    return _summary(codec, video, frames, audio)


def analyse_part(data: bytes, init: bytes | None = None) -> SegmentAnalysis:
    """Demuxes an LL-HLS part: its keyframes decoded and read, like `keyframe` mode; a part
    without one (most parts start mid-GOP, undecodable alone) has its frames known by PTS
    only (`timecodes` all None), to be placed from an earlier part's timecode."""
    if not data:
        raise SegmentDecodeError("empty part")
    video = _KeyframeVideo()
    try:
        codec, audio = _demux(
            io.BytesIO((init or b"") + data), container_format(init or data), video
        )
    except SegmentDecodeError:
        raise
    except (av.FFmpegError, ValueError, OSError, IndexError, MemoryError) as exc:
        raise SegmentDecodeError(f"undecodable part: {exc.__class__.__name__}") from None
    return _summary(codec, video, video.frames() or video.packet_frames(), audio)


def _demux(source: io.BytesIO, demuxer: str, video: _VideoTrack) -> tuple[str, AudioInfo | None]:
    """Hands each packet to its track, within the budget; (video codec, audio found)."""
    budget = _Budget()
    with av.open(source, "r", format=demuxer, options=video.open_options) as container:
        if not container.streams.video:
            raise SegmentDecodeError("segment has no video stream")
        vstream = container.streams.video[0]
        check_size(vstream.codec_context.width or 0, vstream.codec_context.height or 0)
        video.prepare(vstream)
        audio = None
        if container.streams.audio:
            audio = _AudioTrack(container.streams.audio[0], windowed=video.audio_windowed)
        streams = [vstream] + ([audio.stream] if audio is not None else [])
        for packet in container.demux(streams):
            budget.packet()
            if packet.stream.type != "audio":
                video.add(packet, budget)
            elif audio is not None:
                audio.add(packet)
        if audio is None:
            return vstream.codec_context.name, None
        return vstream.codec_context.name, audio.info(video.audio_windows())


def _summary(
    codec: str, video: _VideoTrack, frames: _Frames, audio: AudioInfo | None
) -> SegmentAnalysis:
    pts, codes = frames
    if not pts:
        raise SegmentDecodeError("segment has no decodable video frame")
    order = sorted(range(len(pts)), key=pts.__getitem__)  # presentation order
    ordered_pts = [pts[i] for i in order]
    steps = [b - a for a, b in itertools.pairwise(ordered_pts) if b > a]
    return SegmentAnalysis(
        video_codec=codec,
        width=video.width,
        height=video.height,
        first_pts=ordered_pts[0],
        last_pts=ordered_pts[-1],
        frame_duration=float(np.median(steps)) if steps else 0.0,
        frame_count=len(pts),
        timecodes=tuple(codes[i] for i in order),
        audio=audio,
        frame_pts=tuple(ordered_pts),
    )


class _VideoTrack(ABC):
    """What one decode mode does with the video packets, and which audio levels it reads."""

    open_options: dict[str, str]

    def __init__(self) -> None:
        self.width = self.height = 0

    @abstractmethod
    def prepare(self, stream: av.VideoStream) -> None: ...

    @abstractmethod
    def add(self, packet: av.Packet[av.stream.Stream], budget: _Budget) -> None: ...

    @abstractmethod
    def frames(self) -> _Frames | None:
        """The frames seen; None when this mode could read no timecode at all."""

    # Whether only some audio is decoded: what `audio_windows` names, once the video is in.
    audio_windowed = False
    # Whether the packets suggest a still picture that this mode cannot see.
    looks_still = False

    def audio_windows(self) -> list[tuple[float, float]] | None:
        """PTS ranges (seconds) whose audio the A/V check can use; None: all of it."""
        return None

    def _read(self, frame: av.VideoFrame, budget: _Budget) -> int | None:
        budget.frame(frame.width, frame.height)
        self.width, self.height = frame.width, frame.height
        return timecode.read(_luma(frame))


class _FullVideo(_VideoTrack):
    """`full` mode: every frame decoded and its timecode read."""

    open_options = _OPEN_OPTIONS

    def __init__(self) -> None:
        super().__init__()
        self._pts: list[float] = []
        self._codes: list[int | None] = []

    def prepare(self, stream: av.VideoStream) -> None:
        # One thread: segments are decoded side by side on the analysis pool already, and
        # a decoder's own threads cost more to start and feed than they save at these sizes.
        stream.thread_count = 1

    def add(self, packet: av.Packet[av.stream.Stream], budget: _Budget) -> None:
        for frame in packet.decode():
            if not isinstance(frame, av.VideoFrame) or frame.pts is None or frame.time_base is None:
                continue
            code = self._read(frame, budget)
            self._pts.append(float(frame.pts * frame.time_base))
            self._codes.append(code)

    def frames(self) -> _Frames:
        return self._pts, self._codes


class _KeyframeVideo(_VideoTrack):
    """`keyframe` mode: keyframes decoded and read; every other frame known by its PTS."""

    open_options = _OPEN_OPTIONS

    def __init__(self) -> None:
        super().__init__()
        self._packet_pts: list[int] = []  # every video packet's
        self._key_codes: dict[int, int | None] = {}  # PTS -> timecode read
        self._time_base: Fraction | None = None
        self._still_bytes = _STILL_PACKET_BYTES
        self._small_run = 0  # packets in a row no larger than that

    def prepare(self, stream: av.VideoStream) -> None:
        stream.thread_count = 1  # one frame: starting decoder threads costs more
        self._time_base = stream.time_base
        self.width = stream.codec_context.width or 0  # a part may have no frame to decode
        self.height = stream.codec_context.height or 0
        self._still_bytes = max(_STILL_PACKET_BYTES, self.width * self.height // 256 // 8)
        self._small_run = 0

    def add(self, packet: av.Packet[av.stream.Stream], budget: _Budget) -> None:
        if packet.pts is None or self._time_base is None:
            return
        self._packet_pts.append(packet.pts)
        if not packet.is_keyframe:
            # An encoder fed the same picture again codes its macroblocks as skipped: a
            # packet of a few bytes. The test picture moves all over, every frame.
            self._small_run = self._small_run + 1 if packet.size <= self._still_bytes else 0
            if self._small_run >= _STILL_PACKETS:
                self.looks_still = True
            return  # never decoded: known by its PTS only
        for frame in packet.decode():
            if isinstance(frame, av.VideoFrame) and frame.pts is not None:
                self._key_codes[frame.pts] = self._read(frame, budget)

    def packet_frames(self) -> _Frames:
        """Every frame by its packet's PTS, a timecode where a keyframe was read."""
        time_base = self._time_base or Fraction(1, 90_000)
        return (
            [float(p * time_base) for p in self._packet_pts],
            [self._key_codes.get(p) for p in self._packet_pts],
        )

    def frames(self) -> _Frames | None:
        if not self._key_codes or self._time_base is None:
            return None
        time_base = self._time_base
        return (
            [float(p * time_base) for p in self._packet_pts],
            [self._key_codes.get(p) for p in self._packet_pts],
        )

    audio_windowed = True

    def audio_windows(self) -> list[tuple[float, float]] | None:
        """Around each keyframe, and the segment's tail (around the next one): the only
        markers the A/V check has here are keyframes, and it pairs a burst with a marker
        only within PAIRING_WINDOW_SECONDS (0.45 s), after _QUIET_SECONDS of quiet."""
        if self._time_base is None or not self._packet_pts:
            return None
        time_base = self._time_base
        keys = [float(p * time_base) for p in self._key_codes]
        end = float(max(self._packet_pts) * time_base)
        around = _AUDIO_AROUND_MARKER_SECONDS
        return [(key - around, key + around) for key in keys] + [(end - around, math.inf)]


class _MergedEnvelopes:
    """The first channel's samples, one envelope per run of back-to-back frames (one numpy
    pass per run, not per frame)."""

    @property
    def limit(self) -> int:
        """Samples kept at most: _MAX_AUDIO_WINDOWS at 48 kHz."""
        return _MAX_AUDIO_WINDOWS * 48

    def __init__(self) -> None:
        self._chunks: list[_Chunk] = []

    def add(self, frame: av.AudioFrame) -> int:
        chunk = _first_channel(frame)
        if chunk is None:
            return 0
        self._chunks.append(chunk)
        return len(chunk[2])

    def envelopes(self) -> list[_Envelope]:
        return _merged_envelopes(self._chunks)


class _AudioTrack:
    """The audio packets' timing, and the loudness of as much audio as the A/V check uses:
    all of it, or (`windowed`) only packets in the windows `info` is given, once the video
    says where its markers are."""

    def __init__(self, stream: av.AudioStream, *, windowed: bool = False) -> None:
        self.stream = stream
        # A float time base: Fraction arithmetic per packet costs more than the rest of the
        # packet's handling.
        self._seconds = float(stream.time_base) if stream.time_base is not None else None
        self._levels = _MergedEnvelopes()
        self._level_count = 0
        self._first: float | None = None
        self._end: float | None = None
        self._total = 0.0
        self._gap = 0.0
        # Windowed: (start, end, packet) of every packet, decoded in `info`.
        self._held: list[tuple[float, float, av.Packet[av.stream.Stream]]] | None = (
            [] if windowed else None
        )

    def add(self, packet: av.Packet[av.stream.Stream]) -> None:
        if packet.pts is None or self._seconds is None:
            return
        start = packet.pts * self._seconds
        length = (packet.duration or 0) * self._seconds
        if self._first is None:
            self._first = start
        elif self._end is not None:
            self._gap = max(self._gap, start - self._end)
        self._end = start + length
        self._total += length
        if self._held is not None:
            self._held.append((start, start + length, packet))
        else:
            self._decode(packet)

    def _decode(self, packet: av.Packet[av.stream.Stream], keep: bool = True) -> None:
        if self._level_count >= self._levels.limit:
            return
        for frame in packet.decode():
            if keep and isinstance(frame, av.AudioFrame):
                self._level_count += self._levels.add(frame)

    def _decode_windows(self, windows: list[tuple[float, float]]) -> bool:
        """Decodes the held packets that overlap a window; whether the first was one."""
        assert self._held is not None
        previous = -2
        for index, (start, end, packet) in enumerate(self._held):
            if not any(start < high and end > low for low, high in windows):
                continue
            if index > 0 and index != previous + 1:
                # After a skip the decoder's overlap is stale: the packet before primes it.
                self._decode(self._held[index - 1][2], keep=False)
            self._decode(packet)
            previous = index
        return bool(self._held) and any(
            self._held[0][0] < high and self._held[0][1] > low for low, high in windows
        )

    def info(self, windows: list[tuple[float, float]] | None = None) -> AudioInfo | None:
        if self._first is None:
            return None
        starts_decoded = True
        if self._held is not None:
            if windows is None:
                for _, _, packet in self._held:
                    self._decode(packet)
            else:
                starts_decoded = self._decode_windows(windows)
            self._held = None
        bursts = _burst_onsets(self._levels.envelopes())
        return AudioInfo(
            codec=self.stream.codec_context.name,
            first_pts=self._first,
            duration=self._total,
            gap_seconds=self._gap,
            end_pts=self._end,
            burst_onsets=tuple(bursts.onsets),
            # A burst at the start counts only when the audio was decoded from its start.
            leading_loud=bursts.leading_loud if starts_decoded else None,
            quiet_end_seconds=bursts.quiet_end_seconds,
        )
