"""HLS of a WHIP publish: its frames through the origin's own HLS ladder, as RTMP's and SRT's.

The ladder reads an FFmpeg input, so a feeder thread muxes the frames the WHIP ingest
forwards into MPEG-TS: the H.264 as it arrived (the ladder transcodes the renditions from
it, as from any publish), the Opus decoded and encoded to AAC once (the ladder copies the
audio into every rendition, and HLS players take no Opus in TS segments). The publish's
worker thread demuxes that TS from a pipe, as the SRT worker demuxes what SRT received.

Neither side can hold the event loop or grow without bound: the loop hands packets on
without waiting (a feeder that falls behind loses packets, counted), and a worker that
stops reading stops the feeder after READ_TIMEOUT_S.
"""

from __future__ import annotations

import contextlib
import fractions
import logging
import queue
import threading

import av

from streamer.origin.worker import READ_TIMEOUT_S
from streamer.webrtc.media import MediaPacket

log = logging.getLogger("streamer.origin")

OPUS_RATE = 48_000
_VIDEO_TIME_BASE = fractions.Fraction(1, 90_000)
_AUDIO_TIME_BASE = fractions.Fraction(1, OPUS_RATE)
_MAX_PACKETS = 2048  # about 20 s of video and audio packets waiting for the feeder
_MAX_CHUNKS = 1024  # TS writes (a few KB each) waiting for the worker


class TsPipe:
    """Bytes from the feeder thread (`write`) to the worker thread (`read`, file-like)."""

    def __init__(self) -> None:
        self._chunks: queue.Queue[bytes] = queue.Queue(_MAX_CHUNKS)
        self._pending = b""
        self._ended = False

    def write(self, data: bytes | memoryview) -> int:
        # Blocks while the worker is behind; a worker that stopped reading ends the feed.
        self._chunks.put(bytes(data), timeout=READ_TIMEOUT_S)
        return len(data)

    def end(self) -> None:
        with contextlib.suppress(queue.Full):
            self._chunks.put(b"", timeout=READ_TIMEOUT_S)

    def read(self, size: int = -1) -> bytes:
        if not self._pending:
            if self._ended:
                return b""
            try:
                chunk = self._chunks.get(timeout=READ_TIMEOUT_S)
            except queue.Empty:
                return b""  # nothing for READ_TIMEOUT_S: the publish is gone
            if not chunk:
                self._ended = True
                return b""
            self._pending = chunk
        if size < 0 or size >= len(self._pending):
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:size], self._pending[size:]
        return data


class WhipHlsFeed(threading.Thread):
    """Muxes a WHIP publish's packets into MPEG-TS for its HLS worker (feeder thread)."""

    def __init__(self, pipe: TsPipe) -> None:
        super().__init__(name="origin-whip-hls-feed", daemon=True)
        self._pipe = pipe
        self._packets: queue.Queue[MediaPacket | None] = queue.Queue(_MAX_PACKETS)
        self._video_started = False
        self.dropped = 0

    def push(self, packet: MediaPacket) -> None:
        """From the event loop: never waits."""
        try:
            self._packets.put_nowait(packet)
        except queue.Full:
            self.dropped += 1

    def end(self) -> None:
        """From the event loop: the publish ended (the TS ends once what is queued is out)."""
        try:
            self._packets.put_nowait(None)
        except queue.Full:  # a stuck feeder: make room for the end
            with contextlib.suppress(queue.Empty):
                self._packets.get_nowait()
            with contextlib.suppress(queue.Full):
                self._packets.put_nowait(None)

    def run(self) -> None:
        try:
            self._mux()
        except (av.FFmpegError, OSError, ValueError, queue.Full) as exc:
            log.warning("HLS of a WHIP publish stopped: %s", type(exc).__name__)
        finally:
            self._pipe.end()

    def _mux(self) -> None:
        out = av.open(self._pipe, "w", format="mpegts")
        try:
            video = out.add_stream("h264")
            video.width, video.height = 640, 360  # placeholders: TS carries no picture size
            aac = out.add_stream("aac", rate=OPUS_RATE)
            aac.layout = "stereo"
            audio = _OpusToAac(aac)
            while (packet := self._packets.get()) is not None:
                if packet.kind == "video":
                    self._video(out, video, packet)
                elif self._video_started:  # the TS starts at a picture
                    for encoded in audio.convert(packet):
                        out.mux(encoded)
        finally:
            out.close()

    def _video(
        self, out: av.container.OutputContainer, stream: av.VideoStream, packet: MediaPacket
    ) -> None:
        if not self._video_started:
            if not packet.keyframe:
                return  # the ladder's decoder starts at an IDR picture
            self._video_started = True
        encoded = av.Packet(packet.data)
        encoded.stream = stream
        encoded.pts = encoded.dts = packet.pts
        encoded.time_base = _VIDEO_TIME_BASE
        encoded.is_keyframe = packet.keyframe
        out.mux(encoded)


class _OpusToAac:
    def __init__(self, aac: av.AudioStream) -> None:
        self._aac = aac
        self._opus = av.CodecContext.create("opus", "r")
        self._resampler = av.AudioResampler(format="fltp", layout="stereo", rate=OPUS_RATE)
        self._fifo = av.AudioFifo()
        self._start: int | None = None  # the first Opus packet's timestamp (48 kHz)
        self._samples = 0  # AAC samples encoded so far: their timestamps

    def convert(self, packet: MediaPacket) -> list[av.Packet[av.stream.Stream]]:
        if self._start is None:
            self._start = packet.pts
        opus = av.Packet(packet.data)
        opus.pts, opus.time_base = packet.pts, _AUDIO_TIME_BASE
        for frame in self._opus.decode(opus):
            for resampled in self._resampler.resample(frame):
                resampled.pts = None  # the samples are the clock
                self._fifo.write(resampled)
        packets: list[av.Packet[av.stream.Stream]] = []
        size = self._aac.codec_context.frame_size or 1024
        while self._fifo.samples >= size:
            chunk = self._fifo.read(size)
            if chunk is None:
                break
            chunk.pts = self._start + self._samples
            chunk.time_base = _AUDIO_TIME_BASE
            self._samples += size
            packets.extend(self._aac.encode(chunk))
        return packets
