"""Pre-encoded media for aiortc: packets that RTCRtpSender packs for RTP without decoding."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
from dataclasses import dataclass

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

VIDEO_TIME_BASE = fractions.Fraction(1, 90_000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48_000)  # Opus
QUEUE_PACKETS = 256  # a receiver this far behind loses packets, never the sender memory


@dataclass(frozen=True)
class MediaPacket:
    kind: str  # "video" (H.264, Annex B) or "audio" (Opus)
    data: bytes
    pts: int  # in the kind's time base (90 kHz video, 48 kHz audio)
    keyframe: bool


class PacketTrack(MediaStreamTrack):
    """A track of pre-encoded packets: `offer()` them, aiortc sends them as they are. Video
    starts at a keyframe (a decoder cannot start anywhere else)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._queue: asyncio.Queue[MediaPacket | None] = asyncio.Queue(QUEUE_PACKETS)
        self._started = kind == "audio"
        self.dropped = 0

    def offer(self, packet: MediaPacket) -> bool:
        """Queues `packet`; False when it was not (before a keyframe, or a full queue)."""
        if not self._started:
            if not packet.keyframe:
                return False
            self._started = True
        try:
            self._queue.put_nowait(packet)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    def end(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    async def recv(self) -> av.Packet[av.stream.Stream]:
        item = await self._queue.get()
        if item is None or self.readyState != "live":
            self.stop()
            raise MediaStreamError
        packet = av.Packet(item.data)
        packet.pts = item.pts
        packet.time_base = VIDEO_TIME_BASE if self.kind == "video" else AUDIO_TIME_BASE
        return packet
