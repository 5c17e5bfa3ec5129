"""Blocking requests of LL-HLS (RFC 8216bis 6.2.5.2), for the embedded origin's HTTP server.

A playlist request with `_HLS_msn=M` (and `_HLS_part=P`) is held until the playlist lists
segment M complete (or its part P), a request for the hinted part until that part is
written; both at most 3 target durations (then 503, as the spec says). A request more than
two segments ahead is refused (400). The transcoding threads report each rendition's state
(`LiveUpdates.update`, thread-safe); waiting requests wake on the next update.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from aiohttp import web

from streamer.origin.llhls import LiveState

_HOLD_TARGETS = 3  # a blocking request is held at most this many target durations
_MAX_AHEAD = 2  # segments a blocking request may ask ahead of the newest
_MAX_STATES = 4096  # renditions remembered: keys come and go, memory must not grow


class BlockingRequestError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class LiveUpdates:
    """Each LL-HLS rendition's newest state, kept on the HTTP server's loop (`attach`)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._states: dict[Path, LiveState] = {}
        self._changed: dict[Path, asyncio.Event] = {}

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the HTTP server runs on: states are kept and waited for there."""
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def update(self, directory: Path, state: LiveState) -> None:
        """From any thread: `directory`'s rendition now is in `state`."""
        self.loop.call_soon_threadsafe(self._set, directory, state)

    def _set(self, directory: Path, state: LiveState) -> None:
        self._states.pop(directory, None)
        self._states[directory] = state
        while len(self._states) > _MAX_STATES:
            oldest = next(iter(self._states))
            del self._states[oldest]
            self._changed.pop(oldest, None)
        event = self._changed.pop(directory, None)
        if event is not None:
            event.set()

    def state(self, directory: Path) -> LiveState | None:
        return self._states.get(directory)

    async def _next_change(self, directory: Path, within: float) -> None:
        event = self._changed.setdefault(directory, asyncio.Event())
        async with asyncio.timeout(within):
            await event.wait()

    async def hold_playlist(self, directory: Path, query: Mapping[str, str]) -> None:
        """Returns once the playlist in `directory` answers the blocking request in `query`;
        raises BlockingRequestError for a request the spec says to refuse or time out."""
        msn, part = _blocking_request(query)
        if msn is None:
            return
        state = self._states.get(directory)
        if state is None:
            return  # not a live LL-HLS rendition (anymore): answer with what is there
        if msn > state.msn + _MAX_AHEAD:
            raise BlockingRequestError(400, "_HLS_msn too far ahead of the live edge")
        deadline = self.loop.time() + _HOLD_TARGETS * state.target_duration
        while not state.has(msn, part):
            remaining = deadline - self.loop.time()
            try:
                await self._next_change(directory, max(0.0, remaining))
            except TimeoutError:
                raise BlockingRequestError(503, "the part did not come in time") from None
            state = self._states.get(directory, state)

    async def hold_part(self, directory: Path, name: str) -> bool:
        """Waits while `name` is the hinted, next part of the rendition in `directory`;
        whether it was (then it exists now, unless the stream ended without it)."""
        state = self._states.get(directory)
        if state is None or state.ended or state.next_part != name:
            return False
        deadline = self.loop.time() + _HOLD_TARGETS * state.target_duration
        while state.next_part == name and not state.ended:
            try:
                await self._next_change(directory, max(0.0, deadline - self.loop.time()))
            except TimeoutError:
                return True
            state = self._states.get(directory, state)
        return True


def _blocking_request(query: Mapping[str, str]) -> tuple[int | None, int | None]:
    msn_text, part_text = query.get("_HLS_msn"), query.get("_HLS_part")
    if msn_text is None:
        if part_text is not None:
            raise BlockingRequestError(400, "_HLS_part without _HLS_msn")
        return None, None
    try:
        msn = int(msn_text)
        part = int(part_text) if part_text is not None else None
    except ValueError:
        raise BlockingRequestError(400, "malformed _HLS_msn or _HLS_part") from None
    if msn < 0 or (part is not None and part < 0):
        raise BlockingRequestError(400, "negative _HLS_msn or _HLS_part")
    return msn, part


def error_response(error: BlockingRequestError, headers: Mapping[str, str]) -> web.Response:
    return web.Response(status=error.status, text=f"{error}\n", headers=headers)
