"""The embedded origin's WHIP ingest: a publish over WebRTC, served to WHEP viewers as sent.

    POST   /whip/<key>        SDP offer in (H.264 and Opus), SDP answer out (201, Location)
    DELETE /whip/<key>/<id>   ends the publish

The key is claimed like an RTMP or SRT publish of it (one publish per key, whatever the
protocol). What arrives is forwarded without decoding or re-encoding: each reassembled
H.264 access unit (Annex B, as the publisher packetised it) and each Opus packet goes to
the key's WHEP viewers with its RTP timestamp. A viewer's video starts at the next IDR
picture; a publisher that sends its SPS and PPS with every IDR (browsers and streamer's
own WHIP publisher do) can be joined at any keyframe. The same frames go through the
origin's HLS ladder too (whip_hls.py): a WHIP publish plays over HLS like any other.

A publish ends on DELETE, when its connection fails or closes, when ICE and DTLS do not
complete within CONNECT_TIMEOUT_S, or when no video arrives for READ_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from streamer.origin.relay import PublishRelay, RejectedError, mask_key, stream_key
from streamer.origin.sdp_http import CORS, answer_response, preflight, read_offer
from streamer.origin.webrtc import WhepHub
from streamer.origin.whip_hls import TsPipe, WhipHlsFeed
from streamer.origin.worker import TsPublishWorker
from streamer.webrtc.ice import loopback_only
from streamer.webrtc.media import MediaPacket
from streamer.webrtc.passthrough import forward_encoded, recv_encoded

log = logging.getLogger("streamer.origin")

CONNECT_TIMEOUT_S = 20.0
WORKER_EXIT_TIMEOUT_S = 10.0  # the HLS worker finishing its files after the publish ended
READ_TIMEOUT_S = 10.0  # a publisher whose video is silent this long is gone
_H264_IDR = 5


def has_idr(access_unit: bytes) -> bool:
    """Whether an Annex B access unit holds an IDR slice (a picture to start decoding at)."""
    start = 0
    while True:
        start = access_unit.find(b"\x00\x00\x01", start)
        if start < 0 or start + 3 >= len(access_unit):
            return False
        if access_unit[start + 3] & 0x1F == _H264_IDR:
            return True
        start += 3


@dataclass
class _Publish:
    key: str
    pc: RTCPeerConnection
    deliver: Callable[[MediaPacket], None] | None = None
    hls: WhipHlsFeed | None = None
    hls_worker: TsPublishWorker | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    video_frames: int = 0


class WhipIngest:
    """WHIP publishes into the origin's WHEP output (event loop side)."""

    def __init__(
        self, relay: PublishRelay, hub: WhepHub, hls_root: Path, loopback: bool = True
    ) -> None:
        self._relay = relay
        self._hub = hub
        self._hls_root = hls_root
        self._loopback = loopback
        self._publishes: dict[str, _Publish] = {}  # session id -> publish
        self._runs: set[asyncio.Task[None]] = set()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/whip/{key}", self._post)
        app.router.add_route("OPTIONS", "/whip/{key}", preflight)
        app.router.add_delete("/whip/{key}/{session}", self._delete)
        app.router.add_route("OPTIONS", "/whip/{key}/{session}", preflight)
        app.router.add_patch("/whip/{key}/{session}", self._patch)

    async def close(self) -> None:
        for publish in self._publishes.values():
            publish.ended.set()
        if self._runs:
            await asyncio.wait(self._runs, timeout=5)

    # -- HTTP -----------------------------------------------------------------------------

    async def _post(self, request: web.Request) -> web.Response:
        try:
            key = stream_key(request.match_info["key"])
        except RejectedError:
            raise web.HTTPNotFound(headers=CORS) from None
        if request.content_type != "application/sdp":
            raise web.HTTPUnsupportedMediaType(headers=CORS)
        offer = await read_offer(request)
        try:
            await self._relay.claim(key)
        except RejectedError as exc:
            raise web.HTTPConflict(text=f"{exc}\n", headers=CORS) from None
        publish = _Publish(key, RTCPeerConnection(RTCConfiguration(iceServers=[])))
        try:
            answer = await self._answer(publish, offer)
        except Exception as exc:  # aiortc raises whatever its SDP parser meets
            await publish.pc.close()
            self._relay.release(key)
            log.info("WHIP offer for key %s refused: %s", mask_key(key), type(exc).__name__)
            raise web.HTTPBadRequest(
                text="unusable SDP offer (H.264 video and Opus audio wanted)\n", headers=CORS
            ) from None
        session = secrets.token_hex(8)
        self._publishes[session] = publish
        run = asyncio.get_running_loop().create_task(self._run(session, publish))
        self._runs.add(run)
        run.add_done_callback(self._runs.discard)
        log.info("WHIP publisher connecting: key %s", mask_key(key))
        return answer_response(answer, f"/whip/{key}/{session}")

    async def _delete(self, request: web.Request) -> web.Response:
        publish = self._publishes.get(request.match_info["session"])
        if publish is None or publish.key != request.match_info["key"]:
            raise web.HTTPNotFound(headers=CORS)
        publish.ended.set()
        return web.Response(status=200, headers=CORS)

    async def _patch(self, _: web.Request) -> web.Response:
        # Trickle ICE is not supported: the answer carries every candidate.
        return web.Response(status=405, headers={**CORS, "Allow": "DELETE"})

    # -- the publish ------------------------------------------------------------------------

    async def _answer(self, publish: _Publish, offer: str) -> str:
        pc = publish.pc
        # Receive-only transceivers with our codecs before the offer: the answer then
        # accepts only what can be forwarded as it is.
        for kind in ("video", "audio"):
            transceiver = pc.addTransceiver(kind, direction="recvonly")
            transceiver.setCodecPreferences(_codecs(kind))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        tracks = {r.track.kind: r.track for r in pc.getReceivers() if r.track is not None}
        if "video" not in tracks:
            raise ValueError("the offer sends no video")
        for track in tracks.values():
            forward_encoded(track)  # before the receivers start
        with loopback_only(self._loopback):
            await pc.setLocalDescription(await pc.createAnswer())
        pc.on("connectionstatechange", lambda: _on_state(publish))
        publish.tasks = [
            asyncio.get_running_loop().create_task(self._forward(publish, track))
            for track in tracks.values()
        ]
        return pc.localDescription.sdp

    def _start_hls(self, publish: _Publish) -> asyncio.Event:
        """Starts the publish's HLS (feeder and worker threads); the event is set when the
        worker has finished its files."""
        exited = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_exit() -> None:  # in the worker's thread, last
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(exited.set)

        pipe = TsPipe()
        publish.hls = WhipHlsFeed(pipe)
        worker = TsPublishWorker(
            pipe,
            "origin-whip-publish",
            self._hls_root,
            publish.key,
            on_exit,
            self._relay.on_ll_update,
        )
        publish.hls_worker = worker
        publish.hls.start()
        worker.start()
        return exited

    async def _run(self, session: str, publish: _Publish) -> None:
        hls_exited = asyncio.Event()
        try:
            try:
                await asyncio.wait_for(publish.connected.wait(), CONNECT_TIMEOUT_S)
            except TimeoutError:
                log.info("WHIP publish of key %s: ICE/DTLS did not complete", mask_key(publish.key))
                return
            if publish.ended.is_set():
                return
            to_viewers = self._hub.publish(publish.key)
            hls_exited = self._start_hls(publish)
            feed = publish.hls

            def deliver(packet: MediaPacket) -> None:
                to_viewers(packet)
                if feed is not None:
                    feed.push(packet)

            publish.deliver = deliver
            log.info("WHIP publisher connected: key %s", mask_key(publish.key))
            await publish.ended.wait()
        finally:
            self._publishes.pop(session, None)
            for task in publish.tasks:
                task.cancel()
            await asyncio.gather(*publish.tasks, return_exceptions=True)
            await publish.pc.close()
            self._hub.ended(publish.key)
            if publish.hls is not None:
                publish.hls.end()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(hls_exited.wait(), WORKER_EXIT_TIMEOUT_S)
            self._relay.release(publish.key)
            worker = publish.hls_worker
            log.info(
                "WHIP publisher disconnected: key %s, %d frames, HLS %s",
                mask_key(publish.key),
                publish.video_frames,
                "none" if worker is None else f"error: {worker.error}" if worker.error else "ok",
            )

    async def _forward(self, publish: _Publish, track: MediaStreamTrack) -> None:
        video = track.kind == "video"
        try:
            while True:
                async with asyncio.timeout(READ_TIMEOUT_S if video else None):
                    frame = await recv_encoded(track)
                deliver = publish.deliver
                if deliver is None:
                    continue  # not connected yet: nobody can be watching
                data, timestamp = bytes(frame.data), int(frame.timestamp)
                if video:
                    publish.video_frames += 1
                    deliver(MediaPacket("video", data, timestamp, has_idr(data)))
                else:
                    deliver(MediaPacket("audio", data, timestamp, False))
        except TimeoutError:
            log.info(
                "WHIP publisher of key %s sent no video for %gs",
                mask_key(publish.key),
                READ_TIMEOUT_S,
            )
        except MediaStreamError:
            pass
        finally:
            if video:
                publish.ended.set()


def _on_state(publish: _Publish) -> None:
    state = publish.pc.connectionState
    if state == "connected":
        publish.connected.set()
    elif state in ("failed", "closed"):
        publish.connected.set()  # stop waiting: the publish is over
        publish.ended.set()


def _codecs(kind: str) -> list[RTCRtpCodecCapability]:
    """What can be forwarded to WHEP viewers as it arrives: H.264 (with retransmission) and
    Opus."""
    wanted = ("video/h264", "video/rtx") if kind == "video" else ("audio/opus",)
    capabilities = RTCRtpReceiver.getCapabilities(kind)
    assert capabilities is not None
    return [c for c in capabilities.codecs if c.mimeType.lower() in wanted]


__all__ = ["WhipIngest", "has_idr"]
