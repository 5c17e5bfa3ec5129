"""A WHIP endpoint that receives a publish with aiortc and keeps what arrived: the frame
number read from every decoded picture, and how much audio: the WHIP publisher's unit of
truth, cheaper than Janus (tests/support/janus.py), which the Janus tests use instead.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field

import numpy as np
from aiohttp import web
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from streamer.testsignal import timecode
from streamer.webrtc.ice import configuration, loopback_only
from tests.support.aio import send_in_pieces


@dataclass
class WhipSink:
    refuse_with: int | None = None  # answer every offer with this status instead
    answer_in_pieces: bool = False  # as a real network may deliver the answer
    codes: list[int | None] = field(default_factory=list)  # per decoded picture
    audio_seconds: float = 0.0
    deleted: list[str] = field(default_factory=list)
    _peers: dict[str, RTCPeerConnection] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/whip/{key}", self._post)
        app.router.add_delete("/whip/{key}/{id}", self._delete)
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, _: web.Application) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*(pc.close() for pc in self._peers.values()))

    async def _post(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_with is not None:
            return web.Response(status=self.refuse_with)
        pc = RTCPeerConnection(configuration(()))
        pc.on("track", self._on_track)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=await request.text(), type="offer"))
        with loopback_only():
            await pc.setLocalDescription(await pc.createAnswer())
        session = secrets.token_hex(6)
        self._peers[session] = pc
        headers = {
            "Content-Type": "application/sdp",
            "Location": f"/whip/{request.match_info['key']}/{session}",
        }
        if self.answer_in_pieces:
            return await send_in_pieces(request, pc.localDescription.sdp.encode(), headers)
        return web.Response(status=201, text=pc.localDescription.sdp, headers=headers)

    def _on_track(self, track: MediaStreamTrack) -> None:
        task = asyncio.create_task(self._receive(track))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _receive(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if track.kind == "video":
                luma = frame.to_ndarray(format="gray")  # type: ignore[union-attr]
                self.codes.append(timecode.read(np.ascontiguousarray(luma)))
            else:
                self.audio_seconds += frame.samples / frame.sample_rate  # type: ignore[union-attr]

    async def _delete(self, request: web.Request) -> web.Response:
        pc = self._peers.pop(request.match_info["id"], None)
        if pc is None:
            raise web.HTTPNotFound()
        self.deleted.append(request.match_info["id"])
        await pc.close()
        return web.Response(status=200)
