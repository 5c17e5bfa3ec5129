"""The test clip: generated once per parameter set, cached on disk, loaded as packets.

Encoding per stream is expensive; publishing a pre-encoded clip in copy mode costs almost
nothing. Frames are numbered 0..N-1 by their timecode; the publisher loops the clip and
rewrites timestamps so that they keep rising.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from streamer.testsignal import timecode

# Bump when the clip's content changes, so that stale cache entries are not reused.
CLIP_FORMAT_VERSION = 1

# Audio: a quiet 440 Hz bed, with a loud 1 kHz burst at the start of every second. The burst
# starts on frames that are multiples of the frame rate, which lets A/V sync be measured.
AUDIO_RATE = 48_000
BED_HZ = 440.0
BED_AMPLITUDE = 0.05
BURST_HZ = 1000.0
BURST_AMPLITUDE = 0.5
BURST_SECONDS = 0.1


@dataclass(frozen=True)
class ClipSpec:
    width: int = 640
    height: int = 360
    fps: int = 30
    gop_seconds: float = 2.0
    seconds: float = 60.0
    video_bitrate: int = 1_000_000
    audio_bitrate: int = 96_000

    def __post_init__(self) -> None:
        if self.width % 2 or self.height % 2 or self.width < 64 or self.height < 64:
            raise ValueError("clip width and height must be even and at least 64")
        if not 1 <= self.fps <= 120:
            raise ValueError("clip fps must be between 1 and 120")
        if self.gop_frames < 1 or self.frame_count % self.gop_frames:
            raise ValueError("clip length must be a whole number of GOPs")
        if self.frame_count > timecode.MAX_FRAME_NUMBER + 1:
            raise ValueError("clip too long for the timecode")

    @property
    def gop_frames(self) -> int:
        return round(self.gop_seconds * self.fps)

    @property
    def frame_count(self) -> int:
        return round(self.seconds * self.fps)

    def cache_key(self) -> str:
        text = json.dumps({"v": CLIP_FORMAT_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ClipPacket:
    """One encoded packet; `frame` is the video frame number, or None for audio."""

    is_video: bool
    pts: Fraction  # seconds from the clip's start
    dts: Fraction
    duration: Fraction
    is_keyframe: bool
    data: bytes
    frame: int | None


@dataclass(frozen=True)
class Clip:
    spec: ClipSpec
    path: Path
    packets: tuple[ClipPacket, ...]
    video_extradata: bytes  # AVCDecoderConfigurationRecord
    audio_extradata: bytes  # AAC AudioSpecificConfig

    @property
    def loop_seconds(self) -> Fraction:
        return Fraction(self.spec.frame_count, self.spec.fps)


def default_cache_dir() -> Path:
    configured = os.environ.get("STREAMER_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "streamer"


def load_clip(spec: ClipSpec, cache_dir: Path | None = None) -> Clip:
    """Returns the clip for `spec`, generating it into the cache first when missing."""
    directory = cache_dir or default_cache_dir()
    path = directory / f"clip-{spec.cache_key()}.mp4"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        # Write aside and rename: concurrent monitors never read a half-written clip.
        fd, tmp_name = tempfile.mkstemp(dir=directory, suffix=".mp4.tmp")
        os.close(fd)
        try:
            _encode(spec, Path(tmp_name))
            os.replace(tmp_name, path)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
    with av.open(str(path)) as container:
        video_extradata = container.streams.video[0].codec_context.extradata or b""
        audio_extradata = container.streams.audio[0].codec_context.extradata or b""
    return Clip(
        spec=spec,
        path=path,
        packets=tuple(_read_packets(path, spec)),
        video_extradata=bytes(video_extradata),
        audio_extradata=bytes(audio_extradata),
    )


def _video_frames(spec: ClipSpec) -> Iterator[npt.NDArray[np.uint8]]:
    """Yields yuv420p frames as (height * 3 / 2, width) arrays: moving picture + timecode."""
    w, h = spec.width, spec.height
    x = np.arange(w, dtype=np.float32)
    y = np.arange(h, dtype=np.float32)[:, None]
    box = max(8, h // 6)
    for n in range(spec.frame_count):
        phase = n / spec.fps
        luma = (96 + 64 * np.sin(x / 37.0 + phase * 2.0) * np.cos(y / 23.0 - phase)).astype(
            np.uint8
        )
        # A box that sweeps across the lower part of the picture gives the encoder motion.
        bx = int((w - box) * (0.5 + 0.5 * math.sin(phase * 1.3)))
        by = timecode.band_height(h) + int((h - timecode.band_height(h) - box) * (n % 90) / 90)
        luma[by : by + box, bx : bx + box] = 220
        timecode.draw(luma, n)
        chroma_u = np.full((h // 2, w // 2), 128 + int(40 * math.sin(phase)), dtype=np.uint8)
        chroma_v = np.full((h // 2, w // 2), 128 + int(40 * math.cos(phase)), dtype=np.uint8)
        # Neutral chroma under the timecode keeps its cells pure black and white.
        chroma_u[: timecode.band_height(h) // 2 + 1] = 128
        chroma_v[: timecode.band_height(h) // 2 + 1] = 128
        yield np.concatenate([luma, chroma_u.reshape(h // 4, w), chroma_v.reshape(h // 4, w)])


def audio_samples(spec: ClipSpec) -> npt.NDArray[np.float32]:
    """The whole clip's mono audio at AUDIO_RATE."""
    t = np.arange(round(spec.seconds * AUDIO_RATE), dtype=np.float64) / AUDIO_RATE
    signal = BED_AMPLITUDE * np.sin(2 * np.pi * BED_HZ * t)
    in_burst = (t % 1.0) < BURST_SECONDS
    signal = np.where(in_burst, BURST_AMPLITUDE * np.sin(2 * np.pi * BURST_HZ * t), signal)
    return signal.astype(np.float32)


def _encode(spec: ClipSpec, path: Path) -> None:
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=spec.fps)
        video.width, video.height, video.pix_fmt = spec.width, spec.height, "yuv420p"
        video.bit_rate = spec.video_bitrate
        kbps = spec.video_bitrate // 1000
        g = spec.gop_frames
        # Fixed GOP, no B-frames (as live ingest expects), VBV-capped like a live encoder.
        video.options = {
            "preset": "veryfast",
            "x264-params": (
                f"keyint={g}:min-keyint={g}:scenecut=0:bframes=0:"
                f"vbv-maxrate={kbps}:vbv-bufsize={2 * kbps}"
            ),
        }
        audio = out.add_stream("aac", rate=AUDIO_RATE)
        audio.layout = "stereo"
        audio.bit_rate = spec.audio_bitrate

        samples = audio_samples(spec)
        audio_chunk = 1024
        audio_pos = 0
        for n, yuv in enumerate(_video_frames(spec)):
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = n
            frame.time_base = Fraction(1, spec.fps)
            out.mux(video.encode(frame))
            # Keep audio encoded up to the video's time, so that the muxer interleaves well.
            while audio_pos < min(len(samples), (n + 1) * AUDIO_RATE // spec.fps):
                chunk = samples[audio_pos : audio_pos + audio_chunk]
                stereo = np.ascontiguousarray(np.vstack([chunk, chunk]))
                aframe = av.AudioFrame.from_ndarray(stereo, format="fltp", layout="stereo")
                aframe.sample_rate = AUDIO_RATE
                aframe.pts = audio_pos
                aframe.time_base = Fraction(1, AUDIO_RATE)
                out.mux(audio.encode(aframe))
                audio_pos += audio_chunk
        out.mux(video.encode(None))
        out.mux(audio.encode(None))


def _read_packets(path: Path, spec: ClipSpec) -> Iterator[ClipPacket]:
    with av.open(str(path)) as container:
        video_index = container.streams.video[0].index
        for packet in container.demux():
            if packet.size == 0 or packet.pts is None or packet.dts is None:
                continue
            tb = packet.time_base
            assert tb is not None
            is_video = packet.stream.index == video_index
            pts = packet.pts * tb
            yield ClipPacket(
                is_video=is_video,
                pts=pts,
                dts=packet.dts * tb,
                duration=(packet.duration or 0) * tb,
                is_keyframe=packet.is_keyframe,
                data=bytes(packet),
                frame=round(pts * spec.fps) if is_video else None,
            )
