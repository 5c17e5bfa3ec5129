"""Encoded frames from an aiortc receiver, not decoded: for forwarding them as they are.

aiortc decodes every frame a receiver reassembles, in a thread per receiver
(`aiortc.rtcrtpreceiver.decoder_worker`), and its track hands on only decoded frames. A
track registered here gets the reassembled encoded frames instead: aiortc's `JitterFrame`
(`data`: the depayloaded access unit, H.264 as Annex B or one Opus packet; `timestamp`: its
RTP timestamp, counted from the first one). The other receivers of the process decode as
before. This leans on aiortc 1.x's receiver internals (the version pyproject.toml pins);
`forward_encoded` raises RuntimeError when they are not what it expects.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol, cast

from aiortc import MediaStreamTrack, rtcrtpreceiver

_Worker = Callable[
    [asyncio.AbstractEventLoop, "queue.Queue[Any]", "asyncio.Queue[Any]", threading.Event], None
]

# The queues (of the registered tracks) that get encoded frames.
_forwarded: weakref.WeakSet[asyncio.Queue[Any]] = weakref.WeakSet()
_install_lock = threading.Lock()


class EncodedFrame(Protocol):
    data: bytes
    timestamp: int


def forward_encoded(track: MediaStreamTrack) -> None:
    """From now on, `track.recv()` returns EncodedFrame objects. Call it before the
    connection starts receiving (e.g. right after setRemoteDescription)."""
    track_queue = getattr(track, "_queue", None)
    worker = getattr(rtcrtpreceiver, "decoder_worker", None)
    if not isinstance(track_queue, asyncio.Queue) or not callable(worker):
        raise RuntimeError("this aiortc version cannot hand on encoded frames")
    _install(worker)
    _forwarded.add(track_queue)


async def recv_encoded(track: MediaStreamTrack) -> EncodedFrame:
    """The next encoded frame of a track given to `forward_encoded`."""
    return cast(EncodedFrame, await track.recv())


def _install(original: _Worker) -> None:
    with _install_lock:
        if getattr(original, "_streamer_passthrough", False):
            return

        def worker(
            loop: asyncio.AbstractEventLoop,
            input_q: queue.Queue[Any],
            output_q: asyncio.Queue[Any],
            decode_error: threading.Event,
        ) -> None:
            if output_q not in _forwarded:
                original(loop, input_q, output_q, decode_error)
                return
            while True:
                task = input_q.get()
                frame = None if task is None else task[1]  # (codec, encoded frame)
                try:
                    loop.call_soon_threadsafe(output_q.put_nowait, frame)
                except RuntimeError:  # the loop has closed
                    return
                if frame is None:  # the receiver stopped: the track ends
                    return

        worker._streamer_passthrough = True  # type: ignore[attr-defined]
        rtcrtpreceiver.decoder_worker = worker
