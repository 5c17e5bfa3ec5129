"""LL-HLS output of the embedded origin: CMAF parts of about a third of a second, 2 s
segments, a preload hint, delta updates, beside the ladder's plain HLS.

Why by hand: FFmpeg's HLS muxer (what PyAV offers) writes whole segments and no parts. The
mp4 muxer writes fragmented MP4 (`empty_moov`, `default_base_moof`) and cuts a fragment at
each keyframe and every `frag_duration`: each fragment is one part, read back from the
bytes it writes (origin/cmaf.py). Segments are their parts, concatenated. The encoded
packets are the ladder's own, so both outputs carry the same pictures at no extra encoding.

Files per rendition (`<root>/<rendition>/`): `init.mp4`, `part_<n>.m4s` (numbered across
segments, so that the preload hint always names the next one, and from the clock in
milliseconds, so that a new session on the same key never reuses a name), `seg_<msn>.m4s`,
and
`index.m3u8` (plus `index_delta.m3u8`, the `_HLS_skip=YES` answer), every file written
aside and renamed into place. After each write, `on_update` hands the rendition's state to
the HTTP server, which holds blocking reloads until their part exists (origin/llhls_http.py).
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
from av.bitstream import BitStreamFilterContext
from av.codec.context import CodecContext
from av.container import OutputContainer
from av.packet import Packet
from av.stream import Stream

from streamer.origin.cmaf import BoxStream, Fragment

log = logging.getLogger("streamer.origin")

LL_DIR = "ll"  # inside a stream key's directory: <key>/ll/index.m3u8 is the LL-HLS master
PLAYLIST = "index.m3u8"
DELTA_PLAYLIST = "index_delta.m3u8"
INIT = "init.mp4"
SEGMENT_SECONDS = 2
PART_SECONDS = 1 / 3
PLAYLIST_SEGMENTS = 10
PART_SEGMENTS = 3  # segments whose parts are still listed (RFC 8216bis: >= 3 target durations)
KEEP_SEGMENTS = 4  # files kept after leaving the playlist, for viewers a little behind
HOLD_BACK_PARTS = 3  # PART-HOLD-BACK = 3 x PART-TARGET, as the spec recommends
SKIP_TARGETS = 6  # CAN-SKIP-UNTIL = 6 x target duration, the least the spec allows
_SPS, _PPS = 7, 8  # H.264 NAL unit types


@dataclass(frozen=True)
class LiveState:
    """What a blocking reload waits for: the newest part of a rendition."""

    msn: int  # the segment being built (its parts are listed)
    parts: int  # parts of it listed so far
    next_part: str  # the preload hint's file name
    target_duration: float
    ended: bool = False

    def has(self, msn: int, part: int | None) -> bool:
        """Whether the playlist lists segment `msn` complete, or its part `part`."""
        if self.ended or msn < self.msn:
            return True
        if msn > self.msn:
            return False
        return part is not None and part < self.parts


UpdateCallback = Callable[[Path, LiveState], None]
# The other renditions' (playlist URI relative to this one's, last msn, last part index).
ReportsCallback = Callable[["LlhlsRendition"], list[tuple[str, int, int]]]


@dataclass
class _Part:
    number: int
    duration: float
    independent: bool
    data: bytes

    @property
    def name(self) -> str:
        return f"part_{self.number}.m4s"


@dataclass
class _Segment:
    msn: int
    parts: list[_Part] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return sum(p.duration for p in self.parts)

    @property
    def name(self) -> str:
        return f"seg_{self.msn}.m4s"


def part_timing(fps: Fraction | float) -> tuple[float, int]:
    """(PART-TARGET in seconds, the muxer's frag_duration in microseconds) for a frame rate:
    a whole number of frames per part, about PART_SECONDS long."""
    rate = float(fps) if fps else 30.0
    frames = max(1, round(rate * PART_SECONDS))
    part = frames / rate
    # A millisecond short of the part: timestamps in milliseconds round frame times.
    frag = max(1000, round(part * 1_000_000) - 1000)
    return math.ceil(part * 1000 + 1) / 1000, frag


def atomic_write(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(data)
    os.replace(temp, path)


class LlhlsRendition:
    """One rendition's CMAF muxer, parts, segments and playlists."""

    def __init__(
        self,
        directory: Path,
        video_template: Stream,
        audio_template: Stream | None,
        fps: Fraction | float,
        start_number: int,
        on_update: UpdateCallback | None,
        reports: ReportsCallback | None = None,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.part_target, frag = part_timing(fps)
        self._on_update = on_update
        self._reports = reports
        self._boxes = BoxStream()
        self._out: OutputContainer = av.open(
            self._boxes,
            "w",
            format="mp4",
            options={
                "movflags": "frag_keyframe+empty_moov+default_base_moof",
                "frag_duration": str(frag),
                "flush_packets": "1",
            },
        )
        self._video_template = video_template
        self.video = self._out.add_stream_from_template(video_template)
        self.audio = self._out.add_stream_from_template(audio_template) if audio_template else None
        # AAC from MPEG-TS (an SRT publish) comes in ADTS frames, without the
        # AudioSpecificConfig MP4 needs in its init section: made from the stream's
        # parameters, and the ADTS headers taken off each packet.
        self._adts: BitStreamFilterContext | None = None
        if self.audio is not None and audio_template is not None:
            context = audio_template.codec_context
            if context.name == "aac" and not context.extradata:
                self.audio.codec_context.extradata = audio_specific_config(context)
                self._adts = BitStreamFilterContext("aac_adtstoasc", in_stream=audio_template)
        self.codecs: str | None = None
        self._segments: deque[_Segment] = deque()  # complete ones, oldest first
        self._current = _Segment(start_number)
        self._next_part = int(time.time() * 1000)
        self._removable: deque[str] = deque()
        self._started = False  # the header waits for the first video packet
        self.parts_written = 0

    def mux(self, packet: Packet[Stream], audio: bool) -> None:
        stream = self.audio if audio else self.video
        if stream is None or (audio and not self._started):
            return
        if not self._started:
            # The init section's avcC needs the parameter sets before the header: the
            # encoder has them once open (global header), else they are in band.
            extradata = self._video_template.codec_context.extradata
            self.video.codec_context.extradata = extradata or parameter_sets(bytes(packet))
            self._started = True
        copy: Packet[Stream] = av.Packet(bytes(packet))
        copy.pts, copy.dts, copy.duration = packet.pts, packet.dts, packet.duration
        copy.time_base = packet.time_base
        copy.is_keyframe = packet.is_keyframe
        for muxed in self._adts.filter(copy) if audio and self._adts is not None else [copy]:
            muxed.stream = stream
            self._out.mux(muxed)
        self._collect()

    def close(self) -> None:
        try:
            self._out.close()
        finally:
            self._collect()
            if self._current.parts:
                self._finish_segment()
            self._publish(ended=True)

    def _collect(self) -> None:
        if self._boxes.init is not None and self.codecs is None:
            atomic_write(self.directory / INIT, self._boxes.init)
            self.codecs = _codecs(self._boxes.init, self.audio is not None)
        fragments = self._boxes.take()
        for fragment in fragments:
            self._add(fragment)
        if fragments:
            self._publish()

    def _add(self, fragment: Fragment) -> None:
        timescale = self._boxes.timescale or 1000
        duration = fragment.duration / timescale
        current = self._current
        starts_segment = current.parts and (
            (fragment.independent and current.duration >= SEGMENT_SECONDS - self.part_target)
            or current.duration + duration > SEGMENT_SECONDS + self.part_target / 2
        )
        if starts_segment:
            self._finish_segment()
        part = _Part(self._next_part, duration, fragment.independent, fragment.data)
        self._next_part += 1
        atomic_write(self.directory / part.name, part.data)
        self._current.parts.append(part)
        self.parts_written += 1

    def _finish_segment(self) -> None:
        done = self._current
        atomic_write(self.directory / done.name, b"".join(p.data for p in done.parts))
        for part in done.parts:
            part.data = b""  # the segment file has them now
        self._segments.append(done)
        self._current = _Segment(done.msn + 1)
        while len(self._segments) > PLAYLIST_SEGMENTS:
            gone = self._segments.popleft()
            self._removable.extend([gone.name, *(p.name for p in gone.parts)])
        while len(self._removable) > KEEP_SEGMENTS * (1 + 2 * round(1 / PART_SECONDS)):
            (self.directory / self._removable.popleft()).unlink(missing_ok=True)

    def _publish(self, ended: bool = False) -> None:
        if self._boxes.init is None:
            return
        atomic_write(self.directory / DELTA_PLAYLIST, self._playlist(ended, delta=True))
        atomic_write(self.directory / PLAYLIST, self._playlist(ended, delta=False))
        if self._on_update is not None:
            state = LiveState(
                msn=self._current.msn,
                parts=len(self._current.parts),
                next_part=f"part_{self._next_part}.m4s",
                target_duration=SEGMENT_SECONDS,
                ended=ended,
            )
            self._on_update(self.directory, state)

    def _playlist(self, ended: bool, delta: bool) -> bytes:
        segments = list(self._segments)
        first = segments[0].msn if segments else self._current.msn
        skip_until = SKIP_TARGETS * SEGMENT_SECONDS
        skipped = 0
        if delta:
            # Segments older than CAN-SKIP-UNTIL from the live edge are left out.
            edge = self._current.duration
            for index in range(len(segments) - 1, -1, -1):
                edge += segments[index].duration
                if edge > skip_until:
                    skipped = index + 1
                    break
            skipped = min(skipped, max(0, len(segments) - PART_SEGMENTS))
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:9",
            f"#EXT-X-TARGETDURATION:{SEGMENT_SECONDS}",
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
            f"PART-HOLD-BACK={HOLD_BACK_PARTS * self.part_target:.3f},"
            f"CAN-SKIP-UNTIL={skip_until:.1f}",
            f"#EXT-X-PART-INF:PART-TARGET={self.part_target:.3f}",
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
        ]
        if skipped:
            lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}")
        lines.append(f'#EXT-X-MAP:URI="{INIT}"')
        with_parts = len(segments) - PART_SEGMENTS
        for index, segment in enumerate(segments[skipped:], start=skipped):
            if index >= with_parts:
                lines.extend(_part_line(p) for p in segment.parts)
            lines += [f"#EXTINF:{segment.duration:.5f},", segment.name]
        lines.extend(_part_line(p) for p in self._current.parts)
        if ended:
            lines.append("#EXT-X-ENDLIST")
        else:
            lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part_{self._next_part}.m4s"')
        for uri, msn, part in self._reports(self) if self._reports is not None else ():
            lines.append(f'#EXT-X-RENDITION-REPORT:URI="{uri}",LAST-MSN={msn},LAST-PART={part}')
        return ("\n".join(lines) + "\n").encode()

    @property
    def last_part(self) -> tuple[int, int] | None:
        """(msn, index) of the newest part, for the other renditions' reports."""
        if self._current.parts:
            return self._current.msn, len(self._current.parts) - 1
        if self._segments:
            newest = self._segments[-1]
            return newest.msn, len(newest.parts) - 1
        return None


def _part_line(part: _Part) -> str:
    independent = ",INDEPENDENT=YES" if part.independent else ""
    return f'#EXT-X-PART:DURATION={part.duration:.5f},URI="{part.name}"{independent}'


_AAC_OBJECT_TYPES = {"Main": 1, "LC": 2, "SSR": 3, "LTP": 4, "HE-AAC": 5, "HE-AACv2": 29}
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)


def audio_specific_config(context: CodecContext) -> bytes:
    """The 2-byte AAC AudioSpecificConfig (ISO 14496-3 1.6.2.1) of a decoder's parameters:
    object type, sampling frequency index, channel configuration."""
    object_type = _AAC_OBJECT_TYPES.get(str(context.profile or "LC"), 2)
    rate = getattr(context, "sample_rate", 0) or 48000
    index = _AAC_RATES.index(rate) if rate in _AAC_RATES else 3
    layout = getattr(context, "layout", None)
    channels = layout.nb_channels if layout is not None else 2
    config = 7 if channels == 8 else min(max(channels, 1), 6)
    return ((object_type << 11) | (index << 7) | (config << 3)).to_bytes(2, "big")


def parameter_sets(annexb: bytes) -> bytes:
    """The H.264 SPS and PPS NAL units of an Annex B access unit, in Annex B."""
    found = []
    for chunk in re.split(b"\x00\x00\x01", annexb)[1:]:
        unit = chunk.rstrip(b"\x00")  # the next start code's leading zero
        if unit and unit[0] & 0x1F in (_SPS, _PPS):
            found.append(b"\x00\x00\x00\x01" + unit)
    return b"".join(found)


def _codecs(init: bytes, with_audio: bool) -> str:
    """The CODECS attribute from the init section's avcC (profile, compatibility, level)."""
    at = init.find(b"avcC")
    video = "avc1.42c01e"
    if at >= 0 and len(init) >= at + 8:
        video = "avc1." + init[at + 5 : at + 8].hex()
    return f"{video},mp4a.40.2" if with_audio else video


class LlhlsOutput:
    """Every rendition's LL-HLS output and the master playlist naming them."""

    def __init__(
        self,
        root: Path,
        renditions: list[tuple[str, int, int, int, Stream]],  # name, width, height, bps, video
        audio_template: Stream | None,
        fps: Fraction | float,
        on_update: UpdateCallback | None = None,
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        # Media sequence numbers from the clock, as the plain HLS output's: a new session
        # numbers above the last one.
        start = int(time.time())
        self._meta = [(name, width, height, bps) for name, width, height, bps, _ in renditions]
        self.renditions = [
            LlhlsRendition(root / name, video, audio_template, fps, start, on_update, self._reports)
            for name, _w, _h, _b, video in renditions
        ]
        self._master_written = False
        self._failed: set[LlhlsRendition] = set()

    def _reports(self, asking: LlhlsRendition) -> list[tuple[str, int, int]]:
        """EXT-X-RENDITION-REPORT of every other rendition (players switch with them)."""
        reports = []
        for rendition in self.renditions:
            newest = rendition.last_part
            if rendition is not asking and newest is not None:
                reports.append((f"../{rendition.directory.name}/{PLAYLIST}", *newest))
        return reports

    def video(self, index: int, packet: Packet[Stream]) -> None:
        self._mux(self.renditions[index], packet, audio=False)
        self._write_master()

    def audio(self, packet: Packet[Stream]) -> None:
        for rendition in self.renditions:
            self._mux(rendition, packet, audio=True)

    def _mux(self, rendition: LlhlsRendition, packet: Packet[Stream], audio: bool) -> None:
        """A failing LL-HLS output stops (its playlist then lists nothing new); the plain
        HLS beside it goes on."""
        if rendition in self._failed:
            return
        try:
            rendition.mux(packet, audio)
        except (av.FFmpegError, OSError, ValueError) as exc:
            self._failed.add(rendition)
            log.warning("LL-HLS output of %s stopped: %s", rendition.directory.name, _describe(exc))

    def close(self) -> None:
        for rendition in self.renditions:
            try:
                rendition.close()
            except (av.FFmpegError, OSError, ValueError) as exc:
                log.warning("finishing the LL-HLS output failed: %s", exc.__class__.__name__)

    def _write_master(self) -> None:
        if self._master_written or any(r.codecs is None for r in self.renditions):
            return
        lines = ["#EXTM3U", "#EXT-X-VERSION:9"]
        for (name, width, height, bps), rendition in zip(self._meta, self.renditions, strict=True):
            lines += [
                f"#EXT-X-STREAM-INF:BANDWIDTH={bps},RESOLUTION={width}x{height},"
                f'CODECS="{rendition.codecs}"',
                f"{name}/{PLAYLIST}",
            ]
        atomic_write(self.root / PLAYLIST, ("\n".join(lines) + "\n").encode())
        self._master_written = True


def _describe(exc: BaseException) -> str:
    # Never str() of an FFmpeg error: it may name a path, and paths hold the stream key.
    strerror = getattr(exc, "strerror", None)
    return str(strerror) if strerror else exc.__class__.__name__
