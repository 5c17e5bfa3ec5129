"""A scripted chaos proxy: an aiohttp reverse proxy between a follower and a real origin.

    session ──HTTP──> ChaosProxy ──HTTP──> nginx-rtmp

Faults target a playlist by file name (`KEY.m3u8` is the master of a ladder, or the media
playlist of a copy-path stream; `KEY_360p.m3u8` a ladder rendition) and act on the playlist
itself (`on="playlist"`) or on the segments it lists (`on="segment"`). A fault is active from
`from_sequence` to `until_sequence` (inclusive) of the stream's progress: for a playlist,
the newest segment the origin lists in it (the master: in any playlist); for a segment, its
own sequence number. `responses` caps how many answers a fault changes. Faults tied to the
stream's segments rather than to wall-clock time fire at the same point of every run.

The MPEG-TS helpers at the end edit segments the way broken packagers do: drop the audio
track, shift timestamps.

LL-HLS faults (`PathFault`s: their target is a fragment of the request path, since every
LL-HLS rendition's playlist is `index.m3u8`) rewrite playlists and parts as broken LL-HLS
servers do: freeze the parts for a while, hold blocking reloads too long, serve a hinted
part 404, break hints, misstate part durations and server controls. Requests go upstream
with their query (`_HLS_msn`, `_HLS_part`, `_HLS_skip`), unless the proxy is told to
`ignore_blocking`: then the origin answers at once, as a server that ignores them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from tests.support.aio import LocalServer
from tests.support.ports import free_port

Target = Literal["playlist", "segment"]


@dataclass
class Request:
    """One proxied object, as fetched from the origin; faults rewrite `body` or answer."""

    path: str
    name: str  # file name
    kind: Literal["master", "media", "segment"]
    progress: int  # see the module docstring; -1 before any segment exists
    status: int
    body: bytes
    query: str = ""  # the query string the client sent


@dataclass
class Fault:
    target: str  # playlist file name
    on: Target = "playlist"
    from_sequence: int = -1  # -1: from the first answer on
    until_sequence: int | None = None
    responses: int | None = None  # how many answers to change; None: all while active
    applied: int = field(default=0, init=False)

    def matches(self, request: Request, playlist: str | None) -> bool:
        if self.on == "segment":
            if request.kind != "segment" or playlist != self.target:
                return False
        elif request.kind == "segment" or request.name != self.target:
            return False
        if request.progress < self.from_sequence:
            return False
        if self.until_sequence is not None and request.progress > self.until_sequence:
            return False
        return self.responses is None or self.applied < self.responses

    async def apply(self, proxy: ChaosProxy, request: Request) -> Request | web.Response:
        raise NotImplementedError


# -- faults for any object ------------------------------------------------------------------


@dataclass
class Status(Fault):
    """Answers with an HTTP error status instead of the object."""

    code: int = 500

    async def apply(self, proxy: ChaosProxy, request: Request) -> Request | web.Response:
        return web.Response(status=self.code, text="chaos")


@dataclass
class Delay(Fault):
    """Holds the answer back: longer than the client's timeout, it is a stall."""

    seconds: float = 1.0

    async def apply(self, proxy: ChaosProxy, request: Request) -> Request | web.Response:
        await asyncio.sleep(self.seconds)
        return request


@dataclass
class ReplaceBody(Fault):
    """Serves other bytes: garbage, a master playlist where a media one belongs, a foreign
    segment (a slate without timecodes)."""

    body: bytes = b"chaos"

    async def apply(self, proxy: ChaosProxy, request: Request) -> Request | web.Response:
        request.body = self.body
        return request


# -- media playlist faults ------------------------------------------------------------------


@dataclass
class Freeze(Fault):
    """Keeps serving the version seen when the fault became active."""

    _frozen: bytes | None = field(default=None, init=False)

    async def apply(self, proxy: ChaosProxy, request: Request) -> Request | web.Response:
        if self._frozen is None:
            self._frozen = request.body
        request.body = self._frozen
        return request


@dataclass
class Rewind(Fault):
    """Serves the version from `by` segments ago (an edge answering from a stale copy): the
    media sequence, or at least the newest segment, goes back."""

    by: int = 2

    async def apply(self, proxy: ChaosProxy, request: Request) -> Request | web.Response:
        for _, body in reversed(proxy.history.get(request.name, ())):
            first, uris = media_segments(body)
            if uris and first + len(uris) - 1 <= request.progress - self.by:
                request.body = body
                break
        return request


@dataclass
class Skip(Fault):
    """Never lists segment `sequence`: hidden while newest, then cut out with all before it."""

    sequence: int = 0

    async def apply(self, proxy: ChaosProxy, request: Request) -> Request | web.Response:
        first, segments = media_segments(request.body)
        last = first + len(segments) - 1
        if last > self.sequence:
            request.body = drop_segments(request.body, keep_from=self.sequence + 1)
        elif last == self.sequence:
            request.body = drop_segments(request.body, keep_until=self.sequence - 1)
        return request


@dataclass
class InsertTag(Fault):
    """Adds a tag before segment `before` (e.g. #EXT-X-DISCONTINUITY), or, with `before`
    None, after the header (e.g. #EXT-X-ERROR)."""

    tag: str = "#EXT-X-DISCONTINUITY"
    before: int | None = None

    async def apply(self, proxy: ChaosProxy, request: Request) -> Request | web.Response:
        lines = request.body.decode().splitlines()
        if self.before is None:
            lines.insert(1, self.tag)
        else:
            index = extinf_line(lines, self.before)
            if index is None:
                return request
            lines.insert(index, self.tag)
        request.body = ("\n".join(lines) + "\n").encode()
        return request


@dataclass
class SetExtinf(Fault):
    """Rewrites the EXTINF of segment `sequence`."""

    sequence: int = 0
    seconds: float = 3.0

    async def apply(self, proxy: ChaosProxy, request: Request) -> Request | web.Response:
        lines = request.body.decode().splitlines()
        index = extinf_line(lines, self.sequence)
        if index is not None:
            lines[index] = f"#EXTINF:{self.seconds:.3f},"
            request.body = ("\n".join(lines) + "\n").encode()
        return request


@dataclass
class Lag(Fault):
    """Serves the playlist as it was `seconds` ago, like an edge that lags behind."""

    seconds: float = 3.0

    async def apply(self, proxy: ChaosProxy, request: Request) -> Request | web.Response:
        # Versions are timed by a watcher, not by when the (lagged) client happens to ask.
        proxy.watch(request.path)
        cutoff = time.time() - self.seconds
        old = [body for at, body in proxy.history.get(request.name, ()) if at <= cutoff]
        if not old:
            return web.Response(status=404, text="chaos: not yet")
        request.body = old[-1]
        return request


# -- master playlist faults -----------------------------------------------------------------


@dataclass
class DropVariant(Fault):
    """Removes the variants whose URI contains `uri_contains` from the master."""

    uri_contains: str = ""

    async def apply(self, proxy: ChaosProxy, request: Request) -> Request | web.Response:
        lines = request.body.decode().splitlines()
        kept: list[str] = []
        for line in lines:
            if not line.startswith("#") and line.strip() and self.uri_contains in line:
                if kept and kept[-1].startswith("#EXT-X-STREAM-INF"):
                    kept.pop()
                continue
            kept.append(line)
        request.body = ("\n".join(kept) + "\n").encode()
        return request


@dataclass
class SetVariantAttributes(Fault):
    """Appends attributes (e.g. `CODECS="hvc1.1.6.L93.B0"`) to the variants whose URI
    contains `uri_contains`."""

    uri_contains: str = ""
    attributes: str = ""

    async def apply(self, proxy: ChaosProxy, request: Request) -> Request | web.Response:
        lines = request.body.decode().splitlines()
        for i in range(1, len(lines)):
            line = lines[i]
            if self.uri_contains in line and lines[i - 1].startswith("#EXT-X-STREAM-INF"):
                lines[i - 1] += "," + self.attributes
        request.body = ("\n".join(lines) + "\n").encode()
        return request


# -- segment faults -------------------------------------------------------------------------


@dataclass
class Corrupt(Fault):
    """Truncates the segment to `keep_bytes` (None: all kept), then inverts every byte after
    the first `intact_bytes` (None: none), TS sync bytes included: the container still
    announces its streams, but no packet of them can be found."""

    on: Target = "segment"
    keep_bytes: int | None = None
    intact_bytes: int | None = 2 * 188  # PAT and PMT

    async def apply(self, proxy: ChaosProxy, request: Request) -> Request | web.Response:
        body = request.body[: self.keep_bytes]
        if self.intact_bytes is not None:
            tail = bytes(b ^ 0xFF for b in body[self.intact_bytes :])
            body = body[: self.intact_bytes] + tail
        request.body = body
        return request


@dataclass
class StripAudio(Fault):
    """Removes every audio packet (its PMT entry stays: the track is there, but empty)."""

    on: Target = "segment"

    async def apply(self, proxy: ChaosProxy, request: Request) -> Request | web.Response:
        request.body = strip_audio(request.body)
        return request


@dataclass
class ShiftTimestamps(Fault):
    """Moves the segment's PTS, DTS and PCR by `seconds` (a packager's timeline hole)."""

    on: Target = "segment"
    seconds: float = 0.5

    async def apply(self, proxy: ChaosProxy, request: Request) -> Request | web.Response:
        request.body = shift_timestamps(request.body, self.seconds)
        return request


@dataclass
class Replay(Fault):
    """Serves the bytes of the segment `back` sequences earlier (a cache serving stale
    content under a new name): the picture repeats."""

    on: Target = "segment"
    back: int = 2

    async def apply(self, proxy: ChaosProxy, request: Request) -> Request | web.Response:
        path = proxy.segment_path(self.target, request.progress - self.back)
        if path is None:
            return request
        status, body = await proxy.fetch(path)
        if status == 200:
            request.body = body
        return request


# -- LL-HLS faults -------------------------------------------------------------------------


@dataclass
class PathFault(Fault):
    """A fault for the requests whose path contains `target` (any object kind), active
    from `after_seconds` after the first such request, for `for_seconds` (None: on)."""

    after_seconds: float = 0.0
    for_seconds: float | None = None
    _first_at: float | None = field(default=None, init=False)

    def matches(self, request: Request, playlist: str | None) -> bool:
        if self.target not in request.path:
            return False
        now = time.monotonic()
        if self._first_at is None:
            self._first_at = now
        since = now - self._first_at - self.after_seconds
        if since < 0 or (self.for_seconds is not None and since > self.for_seconds):
            return False
        return self.responses is None or self.applied < self.responses


@dataclass
class FailOnePart(PathFault):
    """Answers `code` to every request for one object: the first one requested once the
    fault is active (for a part at the live edge: its preload-hinted request first)."""

    code: int = 404
    _path: str | None = field(default=None, init=False)

    def matches(self, request: Request, playlist: str | None) -> bool:
        if self._path is not None:
            return request.path == self._path
        if super().matches(request, playlist):
            self._path = request.path
            return True
        return False

    async def apply(self, proxy: ChaosProxy, request: Request) -> Request | web.Response:
        return web.Response(status=self.code, text="chaos")


@dataclass
class FreezeParts(PathFault):
    """While active, serves the playlist as it was when the fault began: no new part is
    listed (the origin still makes them; hinted requests still get them)."""

    _frozen: bytes | None = field(default=None, init=False)

    async def apply(self, proxy: ChaosProxy, request: Request) -> Request | web.Response:
        if self._frozen is None:
            self._frozen = request.body
        request.body = self._frozen
        return request


@dataclass
class DelayBlocking(PathFault):
    """Holds the answer to blocking reloads (`_HLS_msn` in the query) `seconds` longer."""

    seconds: float = 7.0

    def matches(self, request: Request, playlist: str | None) -> bool:
        return "_HLS_msn" in request.query and super().matches(request, playlist)

    async def apply(self, proxy: ChaosProxy, request: Request) -> Request | web.Response:
        await asyncio.sleep(self.seconds)
        return request


@dataclass
class Rewrite(PathFault):
    """Rewrites the playlist text: `pattern` (a regular expression) to `replacement`."""

    pattern: str = ""
    replacement: str = ""

    async def apply(self, proxy: ChaosProxy, request: Request) -> Request | web.Response:
        text = re.sub(self.pattern, self.replacement, request.body.decode())
        request.body = text.encode()
        return request


# -- the proxy ------------------------------------------------------------------------------

_CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
}


class ChaosProxy:
    """`async with ChaosProxy(origin_http_base, [faults]) as proxy:` then `proxy.url(path)`."""

    def __init__(
        self, upstream: str, faults: list[Fault] | None = None, ignore_blocking: bool = False
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.ignore_blocking = ignore_blocking  # LL-HLS: drop the query going upstream
        self.faults = list(faults or [])
        self.port = free_port()
        self.history: dict[str, deque[tuple[float, bytes]]] = {}
        self.requests: dict[str, int] = {}
        self._segments: dict[str, tuple[str, int]] = {}  # path -> (playlist name, sequence)
        self._paths: dict[tuple[str, int], str] = {}
        self._newest: dict[str, int] = {}  # playlist name -> newest sequence listed
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._http: aiohttp.ClientSession | None = None
        self._server: LocalServer | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def segment_path(self, playlist: str, sequence: int) -> str | None:
        return self._paths.get((playlist, sequence))

    async def __aenter__(self) -> ChaosProxy:
        self._http = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._server = await LocalServer.start(app, port=self.port, shutdown_seconds=0.5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._watchers.values():
            task.cancel()
        await asyncio.gather(*self._watchers.values(), return_exceptions=True)
        if self._server is not None:
            await self._server.stop()
        if self._http is not None:
            await self._http.close()

    async def fetch(self, path: str, query: str = "") -> tuple[int, bytes]:
        assert self._http is not None
        url = self.upstream + path + (f"?{query}" if query and not self.ignore_blocking else "")
        async with self._http.get(url) as response:
            return response.status, await response.read()

    async def _handle(self, http_request: web.Request) -> web.StreamResponse:
        path = http_request.path
        name = path.rsplit("/", 1)[-1]
        self.requests[name] = self.requests.get(name, 0) + 1
        query = http_request.query_string
        status, body = await self.fetch(path, query)
        playlist: str | None = None
        if name.endswith(".m3u8"):
            request = self._playlist(path, name, status, body)
        else:
            playlist, sequence = self._segments.get(path, ("", -1))
            request = Request(path, name, "segment", sequence, status, body)
        request.query = query
        for fault in self.faults:
            if not fault.matches(request, playlist):
                continue
            fault.applied += 1
            result = await fault.apply(self, request)
            if isinstance(result, web.Response):
                return result
            request = result
        if request.status != 200:
            return web.Response(status=request.status, body=request.body)
        suffix = name[name.rfind(".") :] if "." in name else ""
        content_type = _CONTENT_TYPES.get(suffix, "video/mp2t")
        return web.Response(body=request.body, content_type=content_type)

    def _playlist(self, path: str, name: str, status: int, body: bytes) -> Request:
        if status != 200:
            return Request(path, name, "media", self._newest.get(name, -1), status, body)
        if b"#EXT-X-STREAM-INF" in body:
            progress = max(self._newest.values(), default=-1)
            return Request(path, name, "master", progress, status, body)
        history = self.history.setdefault(name, deque(maxlen=256))
        if not history or history[-1][1] != body:
            history.append((time.time(), body))
        first, uris = media_segments(body)
        directory = path.rsplit("/", 1)[0]
        for offset, uri in enumerate(uris):
            segment_path = urlsplit(uri).path if "/" in uri else f"{directory}/{uri}"
            self._segments[segment_path] = (name, first + offset)
            self._paths[(name, first + offset)] = segment_path
        if uris:
            self._newest[name] = max(self._newest.get(name, -1), first + len(uris) - 1)
        return Request(path, name, "media", self._newest.get(name, -1), status, body)

    def watch(self, path: str, every: float = 0.05) -> None:
        """Keeps fetching a playlist, so that `history` times its versions closely."""
        if path not in self._watchers:
            self._watchers[path] = asyncio.create_task(self._watch(path, every))

    async def _watch(self, path: str, every: float) -> None:
        name = path.rsplit("/", 1)[-1]
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                status, body = await self.fetch(path)
                if status == 200:
                    self._playlist(path, name, status, body)
            await asyncio.sleep(every)


# -- playlist text helpers ------------------------------------------------------------------

_MEDIA_SEQUENCE = re.compile(rb"^#EXT-X-MEDIA-SEQUENCE:(\d+)", re.MULTILINE)


def media_segments(body: bytes) -> tuple[int, list[str]]:
    """(media sequence, segment URIs in order)."""
    match = _MEDIA_SEQUENCE.search(body)
    first = int(match.group(1)) if match else 0
    uris = [
        line.strip()
        for line in body.decode(errors="replace").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return first, uris


def set_media_sequence(body: bytes, sequence: int) -> bytes:
    line = b"#EXT-X-MEDIA-SEQUENCE:%d" % max(0, sequence)
    if _MEDIA_SEQUENCE.search(body):
        return _MEDIA_SEQUENCE.sub(line, body, count=1)
    return body.replace(b"#EXTM3U\n", b"#EXTM3U\n" + line + b"\n", 1)


def extinf_line(lines: list[str], sequence: int) -> int | None:
    """Index of the #EXTINF line of segment `sequence`."""
    first, _ = media_segments("\n".join(lines).encode())
    current = first
    last_extinf: int | None = None
    for i, line in enumerate(lines):
        if line.startswith("#EXTINF"):
            last_extinf = i
        elif line.strip() and not line.startswith("#"):
            if current == sequence:
                return last_extinf
            current += 1
    return None


_SEGMENT_TAGS = ("#EXTINF", "#EXT-X-DISCONTINUITY", "#EXT-X-PROGRAM-DATE-TIME")


def drop_segments(
    body: bytes, keep_from: int | None = None, keep_until: int | None = None
) -> bytes:
    """Keeps the segments numbered keep_from.. or ..keep_until, renumbering as needed."""
    first, _ = media_segments(body)
    header: list[str] = []
    segments: list[list[str]] = []
    pending: list[str] = []
    for line in body.decode().splitlines():
        if line.strip() and not line.startswith("#"):
            segments.append([*pending, line])
            pending = []
        elif segments or pending or line.startswith(_SEGMENT_TAGS):
            pending.append(line)
        else:
            header.append(line)
    numbered = list(enumerate(segments, start=first))
    if keep_from is not None:
        numbered = [(n, s) for n, s in numbered if n >= keep_from]
    if keep_until is not None:
        numbered = [(n, s) for n, s in numbered if n <= keep_until]
    new_first = numbered[0][0] if numbered else (keep_from or first)
    lines = header + [line for _, segment in numbered for line in segment] + pending
    return set_media_sequence(("\n".join(lines) + "\n").encode(), new_first)


# -- MPEG-TS helpers ------------------------------------------------------------------------

Buffer = bytes | bytearray | memoryview
TS_PACKET = 188
_CLOCK = 90_000
_WRAP = 1 << 33


def _payload_start(packet: Buffer) -> int | None:
    control = (packet[3] >> 4) & 3
    offset = 4 + (1 + packet[4] if control & 2 else 0)
    return offset if control & 1 and offset < TS_PACKET else None


def _pid(packet: Buffer) -> int:
    return ((packet[1] & 0x1F) << 8) | packet[2]


def _pes_start(packet: Buffer) -> int | None:
    """Offset of a PES header starting in this packet, if one does."""
    start = _payload_start(packet)
    if not packet[1] & 0x40 or start is None or start + 9 > TS_PACKET:
        return None
    return start if packet[start : start + 3] == b"\x00\x00\x01" else None


def strip_audio(data: bytes) -> bytes:
    packets = [data[i : i + TS_PACKET] for i in range(0, len(data) - TS_PACKET + 1, TS_PACKET)]
    audio = set()
    for packet in packets:
        start = _pes_start(packet)
        if start is not None and 0xC0 <= packet[start + 3] <= 0xDF:
            audio.add(_pid(packet))
    return b"".join(p for p in packets if _pid(p) not in audio)


def _read_timestamp(raw: Buffer) -> int:
    return (
        ((raw[0] >> 1) & 7) << 30 | raw[1] << 22 | (raw[2] >> 1) << 15 | raw[3] << 7 | raw[4] >> 1
    )


def _write_timestamp(raw: bytearray, at: int, value: int) -> None:
    value %= _WRAP
    raw[at] = (raw[at] & 0xF0) | ((value >> 30) & 7) << 1 | 1
    raw[at + 1] = (value >> 22) & 0xFF
    raw[at + 2] = ((value >> 15) & 0x7F) << 1 | 1
    raw[at + 3] = (value >> 7) & 0xFF
    raw[at + 4] = (value & 0x7F) << 1 | 1


def shift_timestamps(data: bytes, seconds: float) -> bytes:
    delta = round(seconds * _CLOCK)
    out = bytearray(data)
    for at in range(0, len(out) - TS_PACKET + 1, TS_PACKET):
        packet = memoryview(out)[at : at + TS_PACKET]
        if packet[0] != 0x47:
            continue
        control = (packet[3] >> 4) & 3
        if control & 2 and packet[4] >= 7 and packet[5] & 0x10:  # PCR present
            base = int.from_bytes(packet[6:11], "big") >> 7
            extension = int.from_bytes(packet[10:12], "big") & 0x1FF
            pcr = ((base + delta) % _WRAP) << 15 | 0x3F << 9 | extension
            packet[6:12] = pcr.to_bytes(6, "big")
        start = _pes_start(packet)
        if start is None:
            continue
        flags = packet[start + 7] >> 6
        header = bytearray(packet[start : start + 19])
        if flags & 2 and len(header) >= 14:
            _write_timestamp(header, 9, _read_timestamp(header[9:14]) + delta)
        if flags == 3 and len(header) >= 19:
            _write_timestamp(header, 14, _read_timestamp(header[14:19]) + delta)
        packet[start : start + len(header)] = header
    return bytes(out)
