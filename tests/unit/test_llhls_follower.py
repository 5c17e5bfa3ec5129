"""The follower on LL-HLS servers, healthy and hostile, served from 127.0.0.1: what it asks
for (blocking reloads by part, hints, ranges, delta updates) and that its requests stay
bounded whatever the server answers; and that a plain stream costs not one request more."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiohttp import web

from streamer.playback.follower import UNHELD_BLOCKING_RELOAD
from streamer.playback.llhls import HINT_NOT_LISTED
from tests.support.check_records import real_segment
from tests.unit.test_hostile_playback import follow, hostile, media, segment_response

PART = 0.2  # seconds
PARTS_PER_SEGMENT = 5


@dataclass
class LiveParts:
    """A live LL-HLS rendition: part n exists from `started + (n + 1) * PART` on."""

    started: float = field(default_factory=time.monotonic)
    byterange: bool = False  # parts as byte ranges of their segment's resource
    skip: bool = False  # offers delta updates
    ranges: list[str] = field(default_factory=list)  # Range headers received
    queries: list[str] = field(default_factory=list)  # playlist queries received

    def newest(self) -> int:
        return int((time.monotonic() - self.started) / PART) - 1

    def playlist(self) -> str:
        newest = self.newest()
        complete = (newest + 1) // PARTS_PER_SEGMENT
        control = "CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.6"
        if self.skip:
            control += ",CAN-SKIP-UNTIL=6.0"
        lines = [
            "#EXTM3U",
            "#EXT-X-TARGETDURATION:1",
            f"#EXT-X-SERVER-CONTROL:{control}",
            f"#EXT-X-PART-INF:PART-TARGET={PART}",
            "#EXT-X-MEDIA-SEQUENCE:0",
        ]
        for n in range(newest + 1):
            segment, index = divmod(n, PARTS_PER_SEGMENT)
            if self.byterange:
                uri = f'URI="s{segment}.ts",BYTERANGE=1000@{index * 1000}'
            else:
                uri = f'URI="p{n}.ts"'
            independent = ",INDEPENDENT=YES" if index == 0 else ""
            lines.append(f"#EXT-X-PART:DURATION={PART},{uri}{independent}")
            if index == PARTS_PER_SEGMENT - 1 and segment < complete:
                lines += [f"#EXTINF:{PART * PARTS_PER_SEGMENT:.3f},", f"s{segment}.ts"]
        if not self.byterange:
            lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="p{newest + 1}.ts"')
        return "\n".join(lines) + "\n"

    async def handle(self, request: web.Request) -> web.Response:
        if request.path.endswith(".m3u8"):
            self.queries.append(request.query_string)
            msn, part = request.query.get("_HLS_msn"), request.query.get("_HLS_part")
            if msn is not None:
                wanted = int(msn) * PARTS_PER_SEGMENT + int(part or PARTS_PER_SEGMENT - 1)
                while self.newest() < wanted:  # held until the part exists
                    await asyncio.sleep(0.005)
            return web.Response(text=self.playlist())
        if "Range" in request.headers:
            self.ranges.append(request.headers["Range"])
        name = request.path.rsplit("/", 1)[-1]
        if name.startswith("p"):
            while self.newest() < int(name[1:-3]):  # a hinted part: held until it exists
                await asyncio.sleep(0.005)
        return segment_response()


async def test_ll_hls_blocks_by_part_and_takes_each_part_from_its_hint() -> None:
    live = LiveParts()
    async with hostile(live.handle) as (base, seen):
        observed, follower = await follow(f"{base}/ll.m3u8", 3.0, gop_seconds=1.0)
    assert follower.parts is not None
    parts = observed.parts
    assert len(parts) >= 10, len(parts)
    keys = [p.part.key for p in parts]
    assert keys == sorted(set(keys))  # each once, in order
    assert sum(p.hinted for p in parts) >= len(parts) - 2
    # Polled until the first part is listed (nothing to block on before), then blocking.
    first = next(i for i, q in enumerate(live.queries) if q)
    assert first <= 0.25 / 0.05 + 1
    assert all("_HLS_msn=" in q and "_HLS_part=" in q for q in live.queries[first:])
    # Then one playlist request and one part request per part: no polling on top.
    assert len(live.queries) - first <= len(parts) + 2, (live.queries, len(parts))
    part_requests = [r for r in seen.requests if r[1].rsplit("/", 1)[-1].startswith("p")]
    assert len(part_requests) <= len(parts) + 3
    assert observed.errors == [] and observed.anomalies == []


async def test_byte_range_parts_are_fetched_by_range() -> None:
    live = LiveParts(byterange=True)
    async with hostile(live.handle) as (base, _):
        observed, _ = await follow(f"{base}/ll.m3u8", 2.0, gop_seconds=1.0)
    assert len(observed.parts) >= 5
    assert {f"bytes={i * 1000}-{i * 1000 + 999}" for i in range(5)} & set(live.ranges)
    assert all(r.startswith("bytes=") and r.endswith("999") for r in live.ranges)


async def test_delta_updates_are_asked_for_where_offered() -> None:
    live = LiveParts(skip=True)
    async with hostile(live.handle) as (base, _):
        observed, _ = await follow(f"{base}/ll.m3u8", 2.0, gop_seconds=1.0)
    assert "_HLS_skip" not in live.queries[0]  # the first playlist is a full one
    first = next(i for i, q in enumerate(live.queries) if q)
    assert all("_HLS_skip=YES" in q for q in live.queries[first:])
    assert len(observed.parts) >= 5 and observed.errors == []


async def test_a_plain_stream_costs_not_one_request_more() -> None:
    started = time.monotonic()

    async def handler(request: web.Request) -> web.Response:
        if not request.path.endswith(".m3u8"):
            return segment_response()
        newest = int((time.monotonic() - started) / 1.0)
        return web.Response(text=media(1.0, 0, newest + 1, extinf=1.0))

    async with hostile(handler) as (base, seen):
        observed, follower = await follow(f"{base}/live.m3u8", 3.5, gop_seconds=1.0)
    assert follower.parts is None and observed.parts == []
    playlists = [r for r in seen.requests if r[1].endswith(".m3u8")]
    segments = [r for r in seen.requests if r[1].endswith(".ts")]
    # Every request is a playlist poll or a segment listed, each once: nothing LL-HLS.
    assert len(playlists) + len(segments) == len(seen.requests)
    assert len(playlists) == follower.playlist_requests
    assert sorted(r[1] for r in segments) == sorted({r[1] for r in segments})
    assert all(q == "" for _, _, q in seen.requests)


async def test_blocking_reloads_answered_at_once_forever_are_not_a_storm() -> None:
    # Parts and a hint, CAN-BLOCK-RELOAD=YES, but nothing ever changes and every request is
    # answered at once: three are counted, then the playlist is polled every half part.
    playlist = LiveParts(started=time.monotonic() - 3 * PART).playlist()

    async def handler(request: web.Request) -> web.Response:
        if request.path.endswith(".m3u8"):
            return web.Response(text=playlist)
        return web.Response(status=404)

    async with hostile(handler) as (base, seen):
        observed, _ = await follow(f"{base}/ll.m3u8", 3.0, gop_seconds=1.0)
    playlists = seen.playlist_requests()
    assert len(playlists) <= 3.0 / (PART / 2) + 6, len(playlists)
    assert observed.anomalies.count(UNHELD_BLOCKING_RELOAD) == 3
    hints = [r for r in seen.requests if r[1].endswith("p3.ts")]
    assert len(hints) <= 2  # the same hint is asked for once (and once more when listed)


async def test_a_new_hint_on_every_answer_draws_one_request_each_never_more() -> None:
    answers = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal answers
        if request.path.endswith(".m3u8"):
            answers += 1
            text = LiveParts(started=time.monotonic() - 3 * PART).playlist()
            return web.Response(text=text.replace("p3.ts", f"x{answers}.ts"))
        return web.Response(status=404)

    async with hostile(handler) as (base, seen):
        observed, _ = await follow(f"{base}/ll.m3u8", 2.0, gop_seconds=1.0)
    hints = [r for r in seen.requests if "/x" in r[1]]
    assert len(hints) <= len(seen.playlist_requests())
    assert len(seen.playlist_requests()) <= 2.0 / (PART / 2) + 6
    assert HINT_NOT_LISTED in observed.anomalies
    assert observed.errors == []  # hints never listed: not the server's fault to report


def test_real_segment_bytes_stand_in_for_parts() -> None:
    assert real_segment(0.2)[:1] == b"\x47"  # MPEG-TS: the follower demuxes what it gets
