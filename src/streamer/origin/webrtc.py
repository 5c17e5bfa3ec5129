"""The embedded origin's WHEP output: every accepted publish, played over WebRTC.

    POST   /whep/<key>        SDP offer in, SDP answer out (201, Location: the session)
    DELETE /whep/<key>/<id>   ends that viewer's session

The published H.264 is forwarded as it arrives, without re-encoding: each FLV packet is
rewritten from length-prefixed NAL units to Annex B (FFmpeg's h264_mp4toannexb, which also
puts the SPS and PPS before every keyframe) and aiortc packetises it for RTP. WebRTC has
no AAC, so the audio is transcoded once per publish, AAC -> Opus (48 kHz stereo), in the
publish's worker thread; every viewer gets the same Opus packets. A new viewer's video
starts at the next keyframe (pre-encoded video cannot make one on request), so its startup
includes up to one GOP.

The worker thread converts (MediaFeed), the event loop fans out (WhepHub): a viewer's
queue is bounded, and a viewer that cannot keep up loses packets, never the origin memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import functools
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import av
import av.bitstream
from aiohttp import web
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCRtpSender,
    RTCSessionDescription,
)

from streamer.origin.relay import RejectedError, mask_key, stream_key
from streamer.origin.sdp_http import CORS, answer_response, preflight, read_offer
from streamer.webrtc.ice import loopback_only
from streamer.webrtc.media import MediaPacket, PacketTrack

log = logging.getLogger("streamer.origin")

OPUS_RATE = 48_000
OPUS_FRAME_SAMPLES = 960  # 20 ms
OPUS_BITRATE = 96_000
_VIDEO_TIME_BASE = fractions.Fraction(1, 90_000)
MAX_VIEWERS = 64


class MediaFeed:
    """A publish's packets as WebRTC carries them; used from the worker thread."""

    def __init__(self, send: Callable[[MediaPacket], None]) -> None:
        self._send = send
        self._annexb: av.bitstream.BitStreamFilterContext | None = None
        self._video: av.VideoStream | None = None
        self._audio_in: av.AudioStream | None = None
        self._resampler = av.AudioResampler(format="s16", layout="stereo", rate=OPUS_RATE)
        self._fifo = av.AudioFifo()
        self._opus: av.AudioCodecContext | None = None
        self._audio_samples = 0  # Opus samples sent: their timestamps
        self._audio_start: float | None = None  # the publish's first audio PTS, seconds

    def open(self, video: av.VideoStream, audio: av.AudioStream | None) -> None:
        if video.codec_context.name != "h264":
            raise ValueError(f"WHEP output carries H.264 only, not {video.codec_context.name}")
        self._video = video
        self._annexb = av.bitstream.BitStreamFilterContext("h264_mp4toannexb", in_stream=video)
        self._audio_in = audio
        if audio is not None:
            opus = av.CodecContext.create("libopus", "w")
            assert isinstance(opus, av.AudioCodecContext)
            opus.sample_rate, opus.layout, opus.format = OPUS_RATE, "stereo", "s16"
            opus.bit_rate = OPUS_BITRATE
            opus.open()
            self._opus = opus

    def push(self, packet: av.Packet[av.stream.Stream]) -> None:
        if packet.pts is None or packet.time_base is None:
            return
        if self._video is not None and packet.stream is self._video:
            self._push_video(packet)
        elif self._audio_in is not None and packet.stream is self._audio_in:
            self._push_audio(packet)

    def _push_video(self, packet: av.Packet[av.stream.Stream]) -> None:
        assert self._annexb is not None
        # The filter takes the packet's data: it gets a copy, the HLS ladder the original.
        copy = av.Packet(bytes(packet))
        copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
        copy.is_keyframe = packet.is_keyframe
        for out in self._annexb.filter(copy):
            if out.pts is None or out.time_base is None:
                continue
            pts = round(out.pts * out.time_base / _VIDEO_TIME_BASE)
            self._send(MediaPacket("video", bytes(out), pts, out.is_keyframe))

    def _push_audio(self, packet: av.Packet[av.stream.Stream]) -> None:
        assert self._audio_in is not None and self._opus is not None
        for frame in self._audio_in.codec_context.decode(packet):
            for resampled in self._resampler.resample(frame):
                if self._audio_start is None and resampled.pts is not None:
                    self._audio_start = float(resampled.pts * (resampled.time_base or 0))
                resampled.pts = None  # the FIFO checks continuity; the samples are the clock
                self._fifo.write(resampled)
        while self._fifo.samples >= OPUS_FRAME_SAMPLES:
            chunk = self._fifo.read(OPUS_FRAME_SAMPLES)
            if chunk is None:
                break
            chunk.pts = None
            for out in self._opus.encode(chunk):
                # Timestamps from the publish's own clock: Opus frames follow each other
                # without holes, so the samples sent so far are the timeline.
                start = round((self._audio_start or 0.0) * OPUS_RATE)
                self._send(MediaPacket("audio", bytes(out), start + self._audio_samples, False))
                self._audio_samples += OPUS_FRAME_SAMPLES


@dataclass
class _Viewer:
    key: str
    pc: RTCPeerConnection
    tracks: dict[str, PacketTrack] = field(default_factory=dict)


class WhepHub:
    """The publishes the origin serves over WHEP, and their viewers (event loop side)."""

    def __init__(self, loopback: bool = True) -> None:
        self._loopback = loopback
        self._live: set[str] = set()
        self._viewers: dict[str, _Viewer] = {}  # session id -> viewer
        self._closing: set[asyncio.Task[None]] = set()

    def feed(self, key: str) -> MediaFeed:
        """A feed for `key`'s publish, to use from its worker thread."""
        loop = asyncio.get_running_loop()
        deliver = self.publish(key)

        def send(packet: MediaPacket) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody watches
                loop.call_soon_threadsafe(deliver, packet)

        return MediaFeed(send)

    def publish(self, key: str) -> Callable[[MediaPacket], None]:
        """`key` is publishing: what delivers its packets to its viewers (event loop side)."""
        self._live.add(key)
        return functools.partial(self._deliver, key)

    def ended(self, key: str) -> None:
        """The publish of `key` ended: its viewers' tracks end."""
        self._live.discard(key)
        for viewer in self._viewers.values():
            if viewer.key == key:
                for track in viewer.tracks.values():
                    track.end()

    def _deliver(self, key: str, packet: MediaPacket) -> None:
        for viewer in self._viewers.values():
            if viewer.key == key:
                track = viewer.tracks.get(packet.kind)
                if track is not None:
                    track.offer(packet)

    async def close(self) -> None:
        viewers, self._viewers = list(self._viewers.values()), {}
        await asyncio.gather(*(v.pc.close() for v in viewers), return_exceptions=True)

    # -- HTTP -----------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/whep/{key}", self._post)
        app.router.add_route("OPTIONS", "/whep/{key}", preflight)
        app.router.add_delete("/whep/{key}/{session}", self._delete)
        app.router.add_route("OPTIONS", "/whep/{key}/{session}", preflight)
        app.router.add_patch("/whep/{key}/{session}", self._patch)

    async def _post(self, request: web.Request) -> web.Response:
        try:
            key = stream_key(request.match_info["key"])
        except RejectedError:
            raise web.HTTPNotFound(headers=CORS) from None
        if key not in self._live:
            raise web.HTTPNotFound(text="not publishing\n", headers=CORS)
        if request.content_type != "application/sdp":
            raise web.HTTPUnsupportedMediaType(headers=CORS)
        if len(self._viewers) >= MAX_VIEWERS:
            raise web.HTTPServiceUnavailable(headers=CORS)
        offer = await read_offer(request)
        viewer = _Viewer(key, RTCPeerConnection(RTCConfiguration(iceServers=[])))
        try:
            answer = await self._answer(viewer, offer)
        except Exception as exc:  # aiortc raises whatever its SDP parser meets
            await viewer.pc.close()
            log.info("WHEP offer for key %s refused: %s", mask_key(key), type(exc).__name__)
            raise web.HTTPBadRequest(text="unusable SDP offer\n", headers=CORS) from None
        session = secrets.token_hex(8)
        self._viewers[session] = viewer
        viewer.pc.on("connectionstatechange", lambda: self._on_state(session))
        log.info("WHEP viewer of key %s joined", mask_key(key))
        return answer_response(answer, f"/whep/{key}/{session}")

    async def _answer(self, viewer: _Viewer, offer: str) -> str:
        pc = viewer.pc
        # Transceivers first, with their codecs: the offer's media lines take them, and
        # the answer then lists only what the forwarded media is (H.264, Opus).
        for kind in ("video", "audio"):
            track = PacketTrack(kind)
            viewer.tracks[kind] = track
            transceiver = pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(_codecs(kind))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        with loopback_only(self._loopback):
            await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription.sdp

    def _on_state(self, session: str) -> None:
        viewer = self._viewers.get(session)
        if viewer is not None and viewer.pc.connectionState in ("failed", "closed"):
            self._viewers.pop(session, None)
            task = asyncio.get_running_loop().create_task(viewer.pc.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _delete(self, request: web.Request) -> web.Response:
        viewer = self._viewers.pop(request.match_info["session"], None)
        if viewer is None or viewer.key != request.match_info["key"]:
            raise web.HTTPNotFound(headers=CORS)
        await viewer.pc.close()
        return web.Response(status=200, headers=CORS)

    async def _patch(self, _: web.Request) -> web.Response:
        # Trickle ICE is not supported: the answer carries every candidate.
        return web.Response(status=405, headers={**CORS, "Allow": "DELETE"})


def _codecs(kind: str) -> list[RTCRtpCodecCapability]:
    """What the forwarded media can be sent as: H.264 (the publish's, as it is) and Opus,
    with retransmission for the video."""
    wanted = ("video/h264", "video/rtx") if kind == "video" else ("audio/opus",)
    capabilities = RTCRtpSender.getCapabilities(kind)
    assert capabilities is not None
    return [c for c in capabilities.codecs if c.mimeType.lower() in wanted]
