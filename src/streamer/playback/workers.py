"""The threads playback runs its CPU work on: off the event loop, and off its default pool.

asyncio's default executor also runs aiohttp's DNS lookups and the publisher's
`getaddrinfo`: a few huge hostile segments decoding there would turn into false timeouts and
false publish failures on healthy streams. Segment analysis therefore has its own pool, one
thread per core (decoding releases the GIL), shared by every session of the process; each
follower has at most one segment in analysis, so its queue stays bounded. Large playlists
(a 1 MiB one takes about a second to parse) are parsed on one more thread of their own, so
that they neither stall the event loop nor hold up decoding; small ones parse inline, where
a thread hop would cost more than the parse.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from streamer.playback.playlist import MasterPlaylist, MediaPlaylist, parse
from streamer.playback.segment import DecodeMode, SegmentAnalysis, analyse, analyse_part

INLINE_PARSE_BYTES = 64 << 10

_lock = threading.Lock()
_pools: dict[str, ThreadPoolExecutor] = {}


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _pool(name: str, workers: int) -> ThreadPoolExecutor:
    with _lock:
        pool = _pools.get(name)
        if pool is None:
            pool = _pools[name] = ThreadPoolExecutor(workers, thread_name_prefix=name)
        return pool


def analysis_pool() -> ThreadPoolExecutor:
    return _pool("streamer-analysis", max(1, _cores()))


def parsing_pool() -> ThreadPoolExecutor:
    return _pool("streamer-parse", 1)


def _decode_and_parse(body: bytes, uri: str) -> MasterPlaylist | MediaPlaylist:
    return parse(body.decode("utf-8", errors="replace"), uri)


async def parse_playlist(body: bytes, uri: str) -> MasterPlaylist | MediaPlaylist:
    """Parses a fetched playlist (raises PlaylistError), off the loop when it is large."""
    if len(body) <= INLINE_PARSE_BYTES:
        return _decode_and_parse(body, uri)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(parsing_pool(), _decode_and_parse, body, uri)


async def analyse_part_bytes(data: bytes, init: bytes | None) -> SegmentAnalysis:
    """Analyses an LL-HLS part on the analysis pool (raises SegmentDecodeError)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(analysis_pool(), analyse_part, data, init)


async def analyse_segment(
    data: bytes, init: bytes | None, mode: DecodeMode | None = None
) -> SegmentAnalysis:
    """Analyses a segment on the analysis pool (raises SegmentDecodeError)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(analysis_pool(), analyse, data, init, mode)
