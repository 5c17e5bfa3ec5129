"""WHIP as an ingest protocol: the test signal published over WebRTC, without re-encoding.

`whip+https://host/path/STREAM_KEY` (or `whip+http://` on a trusted network) names a WHIP
endpoint: the offer is POSTed to the https:// URL, the answer's `Location` is DELETEd when
the publish ends. The clip's H.264 (no B-frames, as Livepeer's WebRTC path requires) is
sent as it was encoded, rewritten from MP4 length prefixes to Annex B; its AAC audio is
transcoded to Opus once per process and cached (WebRTC has no AAC). Frames are paced in
real time on the shared pacing clock and looped with rising timestamps; the send log
records when each frame was handed to the sender. A publish stops right before a keyframe,
as the RTMP publisher does.

Failures are PublishError with the reason: the HTTP status of the offer, ICE or DTLS
that did not complete, the connection lost mid-publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import av
import av.bitstream
from aiortc import (
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCRtpSender,
    RTCSessionDescription,
)
from yarl import URL

from streamer.http_body import BodyTooLargeError, read_capped
from streamer.publish.errors import PublishError
from streamer.publish.flv import FlvClip
from streamer.publish.ingest import Ingest, IngestOptions
from streamer.publish.pacing import pacing_clock
from streamer.publish.sendlog import SendLog
from streamer.testsignal.clip import ClipSpec, load_clip
from streamer.urls import InvalidURLError, mask_ingest
from streamer.webrtc.ice import configuration, is_loopback_url, loopback_only
from streamer.webrtc.media import MediaPacket, PacketTrack

log = logging.getLogger(__name__)

SCHEMES = ("whip+https", "whip+http")
OPUS_RATE = 48_000
OPUS_FRAME = 960  # 20 ms
MAX_ANSWER_BYTES = 64 << 10


@dataclass(frozen=True)
class _Frame:
    pts: float  # seconds from the clip's start
    data: bytes  # Annex B
    keyframe: bool


@dataclass(frozen=True)
class _Media:
    """The clip as WebRTC carries it: one loop of video frames and of Opus packets."""

    video: tuple[_Frame, ...]
    audio: tuple[bytes, ...]  # 20 ms each, back to back from the clip's start
    loop_seconds: float


@functools.cache
def _media(path: Path) -> _Media:
    """Reads the cached clip once per process: video to Annex B, audio encoded to Opus."""
    frames: list[_Frame] = []
    opus_packets: list[bytes] = []
    with av.open(str(path)) as container:
        vstream = container.streams.video[0]
        astream = container.streams.audio[0]
        annexb = av.bitstream.BitStreamFilterContext("h264_mp4toannexb", in_stream=vstream)
        opus = av.CodecContext.create("libopus", "w")
        assert isinstance(opus, av.AudioCodecContext)
        opus.sample_rate, opus.layout, opus.format = OPUS_RATE, "stereo", "s16"
        opus.bit_rate = 96_000
        opus.open()
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=OPUS_RATE)
        fifo = av.AudioFifo()
        duration = float(container.duration or 0) / av.time_base
        for packet in container.demux(vstream, astream):
            if packet.stream is vstream:
                for out in annexb.filter(packet):
                    if out.pts is not None and out.time_base is not None:
                        frames.append(
                            _Frame(float(out.pts * out.time_base), bytes(out), out.is_keyframe)
                        )
                continue
            for frame in astream.codec_context.decode(packet):
                for resampled in resampler.resample(frame):
                    resampled.pts = None
                    fifo.write(resampled)
            while fifo.samples >= OPUS_FRAME:
                chunk = fifo.read(OPUS_FRAME)
                if chunk is not None:
                    opus_packets.extend(bytes(p) for p in opus.encode(chunk))
    frames.sort(key=lambda f: f.pts)
    return _Media(tuple(frames), tuple(opus_packets), duration)


def http_url(url: str) -> str:
    """The WHIP endpoint's http(s) URL."""
    return url.strip().removeprefix("whip+")


class WhipIngest:
    name = "whip"
    schemes: tuple[str, ...] = SCHEMES

    def validate(self, url: str) -> None:
        try:
            parts = urlsplit(url.strip())
            parts.port  # noqa: B018 (raises ValueError on a bad port)
        except ValueError:
            raise InvalidURLError("malformed WHIP URL") from None
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise InvalidURLError("WHIP URL must be whip+https://host/... or whip+http://host/...")
        if not parts.path.strip("/"):
            raise InvalidURLError("WHIP URL needs a path (the endpoint)")

    def secrets(self, url: str) -> tuple[str, ...]:
        key = urlsplit(url.strip()).path.rstrip("/").rpartition("/")[2]
        return (key,) if key else ()

    def mask(self, url: str) -> str:
        return mask_ingest(url)

    def open(self, url: str, flv: FlvClip, clip: ClipSpec, options: IngestOptions) -> Ingest:
        self.validate(url)
        return WhipPublish(http_url(url), clip, options)


class WhipPublish:
    """One WHIP publish of the test signal; `run` until `stop`."""

    def __init__(self, url: str, clip: ClipSpec, options: IngestOptions) -> None:
        self._url = url
        self._clip = clip
        self._options = options
        self._send_log = SendLog(clip.frame_count, clip.fps)
        self._stopping = False
        self._resource: str | None = None

    @property
    def send_log(self) -> SendLog:
        return self._send_log

    def stop(self) -> None:
        self._stopping = True

    async def run(self, on_connected: Callable[[float], None] | None = None) -> None:
        media = await asyncio.to_thread(_media, load_clip(self._clip).path)
        pc = RTCPeerConnection(configuration(()))
        video, audio = PacketTrack("video"), PacketTrack("audio")
        for track in (video, audio):
            transceiver = pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(_codecs(track.kind))
        timeout = aiohttp.ClientTimeout(total=self._options.connect_timeout_seconds)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                try:
                    await self._negotiate(pc, http)
                    await self._connected(pc)
                    await self._send(media, video, audio, pc, on_connected)
                finally:
                    video.end()
                    audio.end()
                    await self._delete(http)
        finally:
            await pc.close()

    async def _negotiate(self, pc: RTCPeerConnection, http: aiohttp.ClientSession) -> None:
        with loopback_only(is_loopback_url(self._url)):
            await pc.setLocalDescription(await pc.createOffer())
        try:
            async with http.post(
                self._url,
                data=pc.localDescription.sdp,
                headers={"Content-Type": "application/sdp"},
            ) as answer:
                body = await read_capped(answer.content, MAX_ANSWER_BYTES)
                if answer.status >= 300:
                    raise PublishError(f"WHIP offer refused: HTTP {answer.status}")
                location = answer.headers.get("Location")
                if location:
                    self._resource = str(answer.url.join(URL(location)))
        except BodyTooLargeError as exc:
            raise PublishError(f"WHIP answer: {exc}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PublishError(f"WHIP offer failed ({type(exc).__name__})") from None
        try:
            await pc.setRemoteDescription(
                RTCSessionDescription(sdp=body.decode("utf-8", errors="replace"), type="answer")
            )
        except Exception:  # aiortc raises what its SDP parser meets
            raise PublishError("WHIP answer: unusable SDP (malformed, or no H.264/Opus)") from None

    async def _connected(self, pc: RTCPeerConnection) -> None:
        deadline = time.monotonic() + self._options.connect_timeout_seconds
        while pc.connectionState != "connected":
            if pc.connectionState in ("failed", "closed") or time.monotonic() > deadline:
                ice = pc.iceConnectionState
                if ice in ("new", "checking", "failed"):
                    raise PublishError(f"WHIP: ICE did not connect (ICE {ice})")
                raise PublishError("WHIP: DTLS did not complete")
            await asyncio.sleep(0.01)

    async def _send(
        self,
        media: _Media,
        video: PacketTrack,
        audio: PacketTrack,
        pc: RTCPeerConnection,
        on_connected: Callable[[float], None] | None,
    ) -> None:
        """Paces the clip in real time, looped, until stopped right before a keyframe. On
        the loop's shared pacing clock (as every publisher): a packet leaves on the first tick
        at or after it is due, and the send log records when it did."""
        clock = pacing_clock()
        start = time.monotonic()
        frames_per_loop = len(media.video)
        audio_seconds = OPUS_FRAME / OPUS_RATE
        frame_index = audio_index = 0
        while True:
            if pc.connectionState in ("failed", "closed"):
                raise PublishError("WHIP: the connection was lost mid-publish")
            number, in_loop = divmod(frame_index, frames_per_loop)
            frame = media.video[in_loop]
            frame_at = number * media.loop_seconds + frame.pts
            audio_loop, audio_in_loop = divmod(audio_index, len(media.audio))
            audio_at = audio_loop * media.loop_seconds + audio_in_loop * audio_seconds
            if audio_at <= frame_at:
                await clock.sleep_until(start + audio_at)
                samples = round(audio_at * OPUS_RATE)
                audio.offer(MediaPacket("audio", media.audio[audio_in_loop], samples, False))
                audio_index += 1
                continue
            if self._stopping and frame.keyframe and frame_index > 0:
                return
            await clock.sleep_until(start + frame_at)
            video.offer(MediaPacket("video", frame.data, round(frame_at * 90_000), frame.keyframe))
            sent = time.time()
            self._send_log.record(frame_index, sent)
            if self._send_log.first_packet_at is None:
                self._send_log.first_packet_at = sent
                if on_connected is not None:
                    on_connected(sent)
            frame_index += 1

    async def _delete(self, http: aiohttp.ClientSession) -> None:
        resource, self._resource = self._resource, None
        if resource is None:
            return
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with asyncio.timeout(3), http.delete(resource) as answer:
                if answer.status >= 300 and answer.status != 404:
                    log.info("deleting the WHIP session: HTTP %d", answer.status)


def _codecs(kind: str) -> list[RTCRtpCodecCapability]:
    wanted = ("video/h264",) if kind == "video" else ("audio/opus",)
    capabilities = RTCRtpSender.getCapabilities(kind)
    assert capabilities is not None
    return [c for c in capabilities.codecs if c.mimeType.lower() in wanted]
