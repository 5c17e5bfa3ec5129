"""The transcoding ladder: one published stream in, HLS renditions and a master playlist out.

Decodes the published video once, scales it per rendition and re-encodes with libx264
(ultrafast, zerolatency); audio is copied into every rendition. One FFmpeg `hls` muxer
writes all renditions (`var_stream_map`) and the master playlist with RESOLUTION,
BANDWIDTH and CODECS, every playlist and segment through a temp file and a rename. The same
encoded packets also go to the LL-HLS output (origin/llhls.py), under `ll/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.packet import Packet
from av.stream import Stream
from av.video.frame import PictureType, VideoFrame
from av.video.reformatter import Interpolation, VideoReformatter
from av.video.stream import VideoStream

from streamer.origin.llhls import LL_DIR, LlhlsOutput, UpdateCallback

MASTER_PLAYLIST = "index.m3u8"
MEDIA_PLAYLIST = "index.m3u8"  # inside each rendition's directory
SEGMENT_SECONDS = 2
PLAYLIST_SEGMENTS = 10
# (target height, video bitrate); a rendition is never taller than the source.
LADDER: tuple[tuple[int, int], ...] = ((360, 800_000), (144, 200_000))
MIN_BITRATE = 100_000
DEFAULT_FPS = 30
MAX_GOP_SECONDS = 10  # x264's own keyframe interval, a bound for inputs without keyframes
_TIME_BASE = Fraction(1, 1000)  # FLV's, so that timestamps pass through without rounding


@dataclass(frozen=True)
class Rendition:
    name: str
    width: int
    height: int
    video_bitrate: int


def plan_ladder(source_width: int, source_height: int) -> list[Rendition]:
    """The renditions for a source size: same aspect ratio, even sizes, no upscaling."""
    renditions: list[Rendition] = []
    for target, bitrate in LADDER:
        height = _even(min(target, source_height))
        width = _even(source_width * height / source_height)
        name = f"{height}p"
        if all(r.name != name for r in renditions):
            # A source below the target height needs fewer bits: scale by pixel count.
            scaled = round(bitrate * min(1.0, (height / target) ** 2))
            renditions.append(Rendition(name, width, height, max(MIN_BITRATE, scaled)))
    return renditions


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))


def hls_options(out_dir: Path, names: list[str], with_audio: bool) -> dict[str, str]:
    variants = [
        f"v:{i},a:{i},name:{name}" if with_audio else f"v:{i},name:{name}"
        for i, name in enumerate(names)
    ]
    return {
        "hls_time": str(SEGMENT_SECONDS),
        "hls_list_size": str(PLAYLIST_SEGMENTS),
        # temp_file: playlists and segments are written aside and renamed, so that a
        # viewer never reads half a file.
        "hls_flags": "delete_segments+independent_segments+temp_file",
        # Media sequence numbers from the clock: a new session's segments always number
        # above the last session's, so a viewer that saw the old playlist takes them as new.
        "hls_start_number_source": "epoch",
        "hls_segment_filename": str(out_dir / "%v" / "seg_%05d.ts"),
        "master_pl_name": MASTER_PLAYLIST,
        "var_stream_map": " ".join(variants),
    }


class HlsLadder:
    """Feed it the source's packets in order; `close()` flushes and ends the playlists."""

    def __init__(
        self, source: InputContainer, out_dir: Path, on_ll_update: UpdateCallback | None = None
    ) -> None:
        video_in = source.streams.video[0]
        self._video_in = video_in
        self._audio_in: AudioStream | None = (
            source.streams.audio[0] if source.streams.audio else None
        )
        decoder = video_in.codec_context
        decoder.thread_count = 1  # 360p decodes in ~1 ms; threads would only add delay
        self.renditions = plan_ladder(decoder.width, decoder.height)
        fps = video_in.average_rate or video_in.guessed_rate or Fraction(DEFAULT_FPS)
        options = hls_options(
            out_dir, [r.name for r in self.renditions], self._audio_in is not None
        )
        self._out: OutputContainer = av.open(
            str(out_dir / "%v" / MEDIA_PLAYLIST), "w", format="hls", options=options
        )
        # var_stream_map counts streams per type: add every video stream, then audio.
        self._encoders = [self._add_encoder(r, fps) for r in self.renditions]
        # One scaler per rendition: a reused one keeps its swscale context (5x cheaper).
        self._scalers = [VideoReformatter() for _ in self.renditions]
        self._audio_out: list[AudioStream] = []
        if self._audio_in is not None:
            self._audio_out = [
                self._out.add_stream_from_template(self._audio_in) for _ in self.renditions
            ]
        self._ll = LlhlsOutput(
            out_dir / LL_DIR,
            [
                (r.name, r.width, r.height, r.video_bitrate, s)
                for r, s in zip(self.renditions, self._encoders, strict=True)
            ],
            self._audio_in,
            fps,
            on_ll_update,
        )
        self._last_video_pts: int | None = None
        self._last_audio_dts: int | None = None
        self.frames = 0
        self.decode_errors = 0

    def _add_encoder(self, rendition: Rendition, fps: Fraction) -> VideoStream:
        stream = self._out.add_stream("libx264", rate=fps)
        stream.width, stream.height = rendition.width, rendition.height
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = rendition.video_bitrate
        ctx = stream.codec_context
        ctx.time_base = _TIME_BASE
        ctx.thread_count = 1  # ultrafast at these sizes needs no threads; keeps CPU flat
        kbps = rendition.video_bitrate // 1000
        max_gop = round(fps * MAX_GOP_SECONDS)
        stream.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            # Keyframes exactly where the source has them (forced below), none elsewhere:
            # segments then match the publisher's GOP, like a transcoding platform's.
            "forced-idr": "1",
            "x264-params": (
                f"keyint={max_gop}:min-keyint=1:scenecut=0:"
                f"vbv-maxrate={kbps}:vbv-bufsize={2 * kbps}"
            ),
        }
        return stream

    def push(self, packet: Packet[Stream]) -> None:
        if packet.stream is self._video_in:
            self._push_video(packet)
        elif self._audio_in is not None and packet.stream is self._audio_in:
            self._push_audio(packet)

    def _push_video(self, packet: Packet[Stream]) -> None:
        try:
            frames = self._video_in.codec_context.decode(packet)
        except av.error.InvalidDataError:
            self.decode_errors += 1
            return
        for frame in frames:
            if frame.pts is None or (
                self._last_video_pts is not None and frame.pts <= self._last_video_pts
            ):
                continue  # the encoder and the muxer need rising timestamps
            self._last_video_pts = frame.pts
            self.frames += 1
            self._encode(frame)

    def _encode(self, frame: VideoFrame) -> None:
        keyframe = frame.key_frame
        for index, (stream, scaler) in enumerate(zip(self._encoders, self._scalers, strict=True)):
            # Area averaging keeps the timecode's black/white cells crisp when shrunk.
            scaled = scaler.reformat(
                frame,
                width=stream.width,
                height=stream.height,
                format="yuv420p",
                interpolation=Interpolation.AREA,
            )
            scaled.pts, scaled.time_base = frame.pts, frame.time_base
            scaled.pict_type = PictureType.I if keyframe else PictureType.NONE
            self._mux_video(index, stream.encode(scaled))

    def _mux_video(self, index: int, packets: list[Packet[Stream]]) -> None:
        for packet in packets:
            self._ll.video(index, packet)  # copies it: muxing below takes the packet's data
        self._out.mux(packets)

    def _push_audio(self, packet: Packet[Stream]) -> None:
        if packet.dts is None or packet.size == 0:
            return
        if self._last_audio_dts is not None and packet.dts <= self._last_audio_dts:
            return
        self._last_audio_dts = packet.dts
        self._ll.audio(packet)
        for stream in self._audio_out:
            # Muxing takes the packet's data; each rendition needs its own copy.
            copy: Packet[Stream] = av.Packet(bytes(packet))
            copy.pts, copy.dts, copy.duration = packet.pts, packet.dts, packet.duration
            copy.time_base = packet.time_base
            copy.stream = stream
            self._out.mux(copy)

    def close(self) -> None:
        """Flushes the encoders and writes the trailer (EXT-X-ENDLIST)."""
        try:
            for index, stream in enumerate(self._encoders):
                self._mux_video(index, stream.encode(None))
        finally:
            try:
                self._out.close()
            finally:
                self._ll.close()
