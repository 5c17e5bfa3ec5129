"""WebRTC playback over WHEP: a viewer of Livepeer's low-latency path, frame by frame.

Negotiates with the WHEP endpoint (playback/whep.py), lets aiortc receive and decode the
video (H.264) and audio (Opus), reads every decoded frame's timecode, and hands the frames
to the session in short units (playback/frame_batch.py), each frame with the wall-clock
time it was decoded: glass-to-glass latency per frame, and every existing check, from the
same timecodes as HLS. It also reports what only WebRTC can say: the connect time, freezes
(no new frame for `freeze_ms`, as they happen), the receivers' statistics, and how the
negotiation, ICE, DTLS or the connection failed.

aiortc's video jitter buffer hands a frame on once the next one starts arriving, which
adds about one frame interval (33 ms at 30 fps) to every latency measured here; a
browser's adaptive buffer adds a similar amount.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping

from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from streamer.events import ConnectTime, FreezeEnded, TransportStats
from streamer.playback import whep_offer
from streamer.playback.base import PlaybackObserver, PlaybackOptions
from streamer.playback.fetch import Fetcher
from streamer.playback.frame_batch import FrameBatcher
from streamer.playback.segment import SegmentDecodeError
from streamer.playback.whep import NEGOTIATION_FAILED, ServerOfferError, WhepClient, WhepError
from streamer.webrtc.ice import configuration, is_loopback_url, loopback_only

log = logging.getLogger(__name__)

RENDITION = "webrtc"
ICE_FAILED = "ice_failed"
DTLS_FAILED = "dtls_failed"
DISCONNECTED = "webrtc_disconnected"
FROZEN = "frozen_video"
CONNECT_TIMEOUT_SECONDS = 10.0  # ICE and DTLS after the answer
RETRY_SECONDS = 0.25  # offers before the stream is live
_WATCH_SECONDS = 0.02  # the freeze watch's step: bounds how late a freeze is reported
_IDLE_FLUSH_SECONDS = 0.1  # frames held back this long go out as a short unit
# Playback is still starting this long after the first frame (a browser is still filling
# its jitter buffer): a stall then is part of the startup time, not a freeze.
_SETTLE_SECONDS = 1.0
_OWN_STALL_SECONDS = 0.1  # the watch woke this much late: our own loop was stalled
_STATS_SECONDS = 2.0
_VIDEO_CLOCK_HZ = 90_000
_AUDIO_CLOCK_HZ = 48_000


class WebRtcPlayback:
    """Plays a WHEP endpoint until cancelled; reports to the observer, judges nothing
    beyond what the transport itself says (failed negotiation, ICE, DTLS, a freeze)."""

    def __init__(
        self, url: str, fetcher: Fetcher, observer: PlaybackObserver, options: PlaybackOptions
    ) -> None:
        self._url = url
        self._fetcher = fetcher
        self._observer = observer
        self._options = options
        self._batcher = FrameBatcher(RENDITION)
        self._last_error: str | None = None
        self._playing = False  # the first frame arrived
        self._ended = False
        self._last_frame: float | None = None  # monotonic
        self._first_frame: float | None = None  # monotonic
        self._frozen_since: float | None = None  # monotonic: the last frame before a freeze
        self._closing = False
        self._stats_seen: dict[str, tuple[int, int]] = {}  # kind -> (received, lost)
        self._receivers: set[asyncio.Task[None]] = set()

    @property
    def last_error(self) -> str | None:
        return self._last_error

    def renditions(self) -> Mapping[str, bool]:
        return {RENDITION: self._ended} if self._playing else {}

    async def wait_downloads(self) -> None:
        self._deliver()

    async def run(self) -> None:
        whep = WhepClient(self._fetcher, self._url)
        pc: RTCPeerConnection | None = None
        tasks: list[asyncio.Task[None]] = []
        try:
            pc = await self._negotiate(whep)
            if pc is None:
                return
            tasks.append(asyncio.create_task(self._watch(), name="webrtc-watch"))
            tasks.append(asyncio.create_task(self._sample_stats(pc), name="webrtc-stats"))
            await self._connected(pc)
            await asyncio.Event().wait()  # until cancelled; the tracks' tasks do the work
        finally:
            self._closing = True
            tasks += self._receivers
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await _quietly(self._close(pc, whep))

    async def _close(self, pc: RTCPeerConnection | None, whep: WhepClient) -> None:
        if pc is not None:
            await pc.close()
        await whep.close()

    # -- negotiation ----------------------------------------------------------------------

    async def _negotiate(self, whep: WhepClient) -> RTCPeerConnection | None:
        """A peer connection with the answer set; None when the endpoint never answered
        usably (reported). Before the stream is live a WHEP endpoint may refuse: offers
        are repeated until the startup deadline; a refused token is reported at once."""
        refused = False
        while True:
            pc = await self._offer()
            try:
                answer = await whep.offer(pc.localDescription.sdp)
            except ServerOfferError as server:
                await pc.close()
                try:
                    return await whep_offer.accept(
                        self._fetcher,
                        whep.resource,
                        server,
                        configuration(self._options.ice_servers),
                        self._on_track,
                        loopback=is_loopback_url(self._url),
                    )
                except WhepError as exc:
                    self._last_error = exc.detail
                    self._observer.on_error(None, exc.kind, exc.detail)
                    return None
            except WhepError as exc:
                await pc.close()
                self._last_error = exc.detail
                if exc.status in (401, 403) and not refused:
                    refused = True
                    self._observer.on_error(None, exc.kind, exc.detail)
                if time.monotonic() > self._options.startup_deadline:
                    if not refused:
                        self._observer.on_error(None, exc.kind, exc.detail)
                    return None
                await asyncio.sleep(RETRY_SECONDS)
                continue
            break
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        except Exception as exc:  # aiortc raises what its SDP parser meets: all mean the same
            await pc.close()
            detail = _sdp_problem(exc)
            self._last_error = detail
            self._observer.on_error(None, NEGOTIATION_FAILED, detail)
            return None
        return pc

    async def _offer(self) -> RTCPeerConnection:
        pc = RTCPeerConnection(configuration(self._options.ice_servers))
        pc.on("track", self._on_track)
        video = pc.addTransceiver("video", direction="recvonly")
        video.setCodecPreferences(_video_codecs())
        pc.addTransceiver("audio", direction="recvonly")
        # aiortc gathers while setting the local description: loopback candidates only
        # when the endpoint is on loopback itself (see webrtc/ice.py).
        with loopback_only(is_loopback_url(self._url)):
            await pc.setLocalDescription(await pc.createOffer())
        return pc

    async def _connected(self, pc: RTCPeerConnection) -> None:
        """Waits for ICE and DTLS; reports the connect time, or how it failed."""
        started = time.monotonic()
        changed = asyncio.Event()
        pc.on("connectionstatechange", changed.set)
        deadline = started + CONNECT_TIMEOUT_SECONDS
        while pc.connectionState not in ("connected", "failed", "closed"):
            changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await changed.wait()
            if time.monotonic() >= deadline:
                break
        if pc.connectionState == "connected":
            self._observer.on_measurement(ConnectTime(time.monotonic() - started))
            pc.on("connectionstatechange", lambda: self._on_state(pc))
            return
        kind, detail = _connect_failure(pc)
        self._last_error = detail
        self._observer.on_error(None, kind, detail)
        await asyncio.Event().wait()  # nothing more to see; the session ends it

    def _on_state(self, pc: RTCPeerConnection) -> None:
        if self._closing or pc.connectionState not in ("failed", "closed"):
            return
        self._ended = True
        self._observer.on_error(
            RENDITION, DISCONNECTED, f"the WebRTC connection {pc.connectionState} mid-session"
        )

    # -- media ----------------------------------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        task = asyncio.create_task(self._receive(track), name=f"webrtc-{track.kind}")
        self._receivers.add(task)
        task.add_done_callback(self._receivers.discard)

    async def _receive(self, track: MediaStreamTrack) -> None:
        while not self._closing:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            arrived = time.time()
            if track.kind == "audio":
                self._batcher.add_audio(frame, arrived)  # type: ignore[arg-type]
                continue
            try:
                self._batcher.add_video(frame, arrived)  # type: ignore[arg-type]
            except SegmentDecodeError as exc:
                self._observer.on_error(RENDITION, "segment_decode_error", str(exc))
                continue
            self._on_frame()
            if self._batcher.due():
                self._deliver()

    def _on_frame(self) -> None:
        now = time.monotonic()
        if not self._playing:
            self._playing = True
            self._first_frame = now
            self._observer.on_rendition(RENDITION, None, None, None)
        if self._frozen_since is not None:
            self._observer.on_measurement(FreezeEnded(RENDITION, now - self._frozen_since))
            self._frozen_since = None
        self._last_frame = now

    def _deliver(self) -> None:
        unit = self._batcher.flush()
        if unit is not None:
            self._observer.on_segment(unit)

    async def _watch(self) -> None:
        """Reports a freeze as soon as it reaches `freeze_ms`, and sends held-back frames
        on when frames pause (the session must not wait for a full unit).

        A freeze is the platform's only when this process was awake to see frames: after a
        stall of our own event loop (a busy host), the frames waiting in the receiver are
        late because of us, so the silence is timed again from the end of that stall."""
        threshold = self._options.freeze_ms / 1000
        awake_since = time.monotonic()
        while True:
            slept_at = time.monotonic()
            await asyncio.sleep(_WATCH_SECONDS)
            now = time.monotonic()
            if now - slept_at > _WATCH_SECONDS + _OWN_STALL_SECONDS:
                awake_since = now
            if self._last_frame is None:
                continue
            idle = now - self._last_frame
            if (
                idle >= _IDLE_FLUSH_SECONDS
                and self._batcher.pending
                and self._batcher.audio_ready(time.time())
            ):
                self._deliver()
            settled = self._first_frame is not None and (
                self._last_frame - self._first_frame >= _SETTLE_SECONDS
            )
            silent = now - max(self._last_frame, awake_since)
            if silent >= threshold and settled and self._frozen_since is None and not self._ended:
                self._frozen_since = self._last_frame
                self._observer.on_error(
                    RENDITION, FROZEN, f"no new frame for {self._options.freeze_ms:g} ms"
                )

    async def _sample_stats(self, pc: RTCPeerConnection) -> None:
        while True:
            await asyncio.sleep(_STATS_SECONDS)
            with contextlib.suppress(Exception):  # stats are a bonus, never a failure
                report = await pc.getStats()
                for stats in report.values():
                    if getattr(stats, "type", None) == "inbound-rtp":
                        self._report_stats(stats)

    def _report_stats(self, stats: object) -> None:
        kind = getattr(stats, "kind", "")
        if kind not in ("video", "audio"):
            return
        received = int(getattr(stats, "packetsReceived", 0))
        lost = int(getattr(stats, "packetsLost", 0))
        jitter = float(getattr(stats, "jitter", 0))
        clock = _VIDEO_CLOCK_HZ if kind == "video" else _AUDIO_CLOCK_HZ
        before_received, before_lost = self._stats_seen.get(kind, (0, 0))
        self._stats_seen[kind] = (received, lost)
        self._observer.on_measurement(
            TransportStats(
                kind=kind,  # type: ignore[arg-type]
                packets_received=max(0, received - before_received),
                packets_lost=max(0, lost - before_lost),
                jitter_seconds=jitter / clock,
            )
        )


def _video_codecs() -> list[RTCRtpCodecCapability]:
    """H.264 first (what Livepeer sends, and what a platform can forward without
    re-encoding), then the rest aiortc decodes."""
    capabilities = RTCRtpReceiver.getCapabilities("video")
    assert capabilities is not None
    codecs = capabilities.codecs
    return sorted(codecs, key=lambda c: c.mimeType.lower() != "video/h264")


def _sdp_problem(exc: Exception) -> str:
    text = str(exc)
    if "description send parameters" in text or "codec" in text.lower():
        return "WHEP answer: no codec in common (H.264 or VP8 video, Opus audio)"
    return f"WHEP answer: malformed SDP ({exc.__class__.__name__})"


def _connect_failure(pc: RTCPeerConnection) -> tuple[str, str]:
    ice = pc.iceConnectionState
    if ice in ("checking", "new", "failed"):
        return ICE_FAILED, f"no ICE candidate pair worked (ICE {ice})"
    return DTLS_FAILED, f"the DTLS handshake did not complete (ICE {ice})"


async def _quietly(closing: object) -> None:
    """Runs a cleanup coroutine with a time limit, also while being cancelled."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(3.0):
            await closing  # type: ignore[misc]
