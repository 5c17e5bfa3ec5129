"""A hostile or broken platform gets a clean, bounded measurement (playback side).

Each test serves the hostile input from a local aiohttp server on 127.0.0.1 (that server is
the hostile platform) to a real RenditionFollower, and asserts the outcome a user would
check: bounded requests, nothing hidden, each oddity reported once or counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import generate_latest

from streamer.checks.stale_playlist import StalePlaylist
from streamer.config import ConfigError, load_file
from streamer.events import PlaybackAnomaly, RequestFailed, StreamLabels
from streamer.playback.fetch import Fetcher
from streamer.playback.follower import (
    MAX_INIT_BYTES,
    UNHELD_BLOCKING_RELOAD,
    RenditionFollower,
    SegmentFetch,
)
from streamer.playback.llhls import PartFetch
from streamer.playback.playlist import MAX_PARSED_SEGMENTS, MAX_PLAYLIST_BYTES, MediaPlaylist
from streamer.playback.storms import ErrorStorms
from streamer.playback.target import TargetSanity
from streamer.playback.workers import analyse_segment, parse_playlist
from streamer.sinks.metrics import MAX_RENDITION_LABELS, OTHER_RENDITION, MetricsSink
from streamer.wiring import fixed_target, session_settings
from tests.support.aio import serve_local
from tests.support.check_records import SyntheticRendition, context, real_segment

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    """Every request the hostile server got: (monotonic time, path, query string)."""

    requests: list[tuple[float, str, str]] = field(default_factory=list)

    def playlist_requests(self) -> list[tuple[float, str, str]]:
        return [r for r in self.requests if r[1].endswith(".m3u8")]


@dataclass
class Observed:
    """A FollowerObserver that keeps what its follower reported."""

    playlists: list[tuple[float, MediaPlaylist]] = field(default_factory=list)
    segments: list[SegmentFetch] = field(default_factory=list)
    errors: list[tuple[str, str, str | None]] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    parts: list[PartFetch] = field(default_factory=list)

    def on_playlist(self, rendition: str, playlist: MediaPlaylist, fetched_at: float) -> None:
        self.playlists.append((fetched_at, playlist))

    def on_segment(self, fetch: SegmentFetch) -> None:
        if fetch.error_kind is not None:
            self.errors.append((fetch.error_kind, fetch.error_detail or "", fetch.error_source))
        else:
            self.segments.append(fetch)

    def on_part(self, fetch: PartFetch) -> None:
        self.parts.append(fetch)

    def on_error(
        self, rendition: str | None, kind: str, detail: str, source: str | None = None
    ) -> None:
        self.errors.append((kind, detail, source))

    def on_anomaly(self, rendition: str | None, anomaly: str) -> None:
        self.anomalies.append(anomaly)


@contextlib.asynccontextmanager
async def hostile(handler: Handler) -> AsyncIterator[tuple[str, Seen]]:
    """Serves `handler` for every path; yields the base URL and what was requested."""
    seen = Seen()

    async def recording(request: web.Request) -> web.StreamResponse:
        seen.requests.append((time.monotonic(), request.path, request.query_string))
        return await handler(request)

    app = web.Application()
    app.router.add_get("/{tail:.*}", recording)
    async with serve_local(app) as server:
        yield server.url(), seen


async def follow(
    url: str, seconds: float, gop_seconds: float | None = 2.0, poll_step: float = 0.05
) -> tuple[Observed, RenditionFollower]:
    observed = Observed()
    fetcher = Fetcher(playback_url=lambda: url)
    follower = RenditionFollower("r", url, fetcher, observed, poll_step, gop_seconds=gop_seconds)
    task = asyncio.create_task(follower.run())
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await fetcher.close()
    return observed, follower


def media(
    target: float,
    first: int,
    count: int,
    extinf: float = 2.0,
    header: str = "",
    uri: str = "s{n}.ts",
) -> str:
    lines = ["#EXTM3U", f"#EXT-X-TARGETDURATION:{target:g}", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
    if header:
        lines.append(header)
    for n in range(first, first + count):
        lines += [f"#EXTINF:{extinf:.3f},", uri.format(n=n)]
    return "\n".join(lines) + "\n"


def segment_response() -> web.Response:
    return web.Response(body=real_segment(1.0), content_type="video/mp2t")


@dataclass
class LiveClock:
    """A live stream's segment schedule: segment n exists from created(n) on."""

    period: float
    started: float = field(default_factory=time.time)

    def created(self, n: int) -> float:
        return self.started + self.period * (n + 1)

    def newest(self) -> int:
        return int((time.time() - self.started) / self.period) - 1


# -- 1: blocking reloads without a hold --------------------------------------------------


async def test_an_unheld_blocking_reload_is_held_to_a_floor_and_counted() -> None:
    # CAN-BLOCK-RELOAD=YES, but every request is answered at once, without the segment.
    playlist = media(2, 0, 1, header="#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES")

    async def handler(request: web.Request) -> web.Response:
        if request.path.endswith(".m3u8"):
            return web.Response(text=playlist)
        return segment_response()

    async with hostile(handler) as (base, seen):
        observed, follower = await follow(f"{base}/live.m3u8", 2.0)
    polls = seen.playlist_requests()
    # Before: 2,538 requests in one second. Now: the learning polls of a plain poller.
    assert len(polls) <= 40, len(polls)
    blocking = [at for at, _, query in polls if "_HLS_msn=1" in query]
    floor = 0.25 * 2  # a quarter of the target duration
    assert all(b - a >= floor - 0.01 for a, b in itertools.pairwise(blocking))
    # Three unheld answers in a row, counted, and then the server is polled instead.
    assert observed.anomalies == [UNHELD_BLOCKING_RELOAD] * 3
    assert follower.unheld_blocking_reloads == 3
    assert len(blocking) == 3 and "_HLS_msn" not in polls[-1][2]
    assert observed.errors == []


async def test_a_holding_ll_hls_origin_is_neither_flagged_nor_slowed() -> None:
    # Segments come in pairs 0.1 s apart, every 2 s: the request for the second of a pair
    # finds it there already and is answered at once, with it. That is a healthy origin.
    started = time.time() + 0.3
    target = 1.0

    def created(n: int) -> float:
        return started + 2.0 * (n // 2) + 0.1 * (n % 2)

    def newest() -> int:
        n = -1
        while created(n + 1) <= time.time():
            n += 1
        return n

    async def handler(request: web.Request) -> web.Response:
        if not request.path.endswith(".m3u8"):
            return segment_response()
        wanted = request.query.get("_HLS_msn")
        if wanted is not None:
            while newest() < int(wanted):  # held until the segment asked for exists
                await asyncio.sleep(0.005)
        last = newest()
        return web.Response(
            text=media(
                target,
                0,
                last + 1,
                extinf=1.0,
                header="#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES",
            )
        )

    await asyncio.sleep(max(0.0, created(0) + 0.05 - time.time()))  # segment 0 exists
    async with hostile(handler) as (base, seen):
        observed, _ = await follow(f"{base}/ll.m3u8", 5.0, gop_seconds=1.0)
    assert observed.anomalies == [] and observed.errors == []
    polls = seen.playlist_requests()
    assert all("_HLS_msn" in query for _, _, query in polls[1:])
    assert len(polls) <= newest() + 3  # about one request per segment
    late = {
        s.segment.sequence: s.listed_at - created(s.segment.sequence)
        for s in observed.segments
        if not s.first_listing
    }
    assert len(late) >= 3, late
    # Listed as soon as it exists, or one floor (a quarter of the target) after the first
    # of its pair.
    assert all(-0.01 <= delay <= 0.25 + 0.1 for delay in late.values()), late


# -- 3: TARGETDURATION decides how blind the monitor is ----------------------------------


@pytest.mark.parametrize("declared", [3600, 2000])
async def test_an_absurd_target_duration_is_capped_and_reported_once(declared: int) -> None:
    clock = LiveClock(period=1.0)

    async def handler(request: web.Request) -> web.Response:
        if not request.path.endswith(".m3u8"):
            return segment_response()
        newest = clock.newest()
        first = max(0, newest - 4)
        return web.Response(text=media(declared, first, newest - first + 1, extinf=1.0))

    await asyncio.sleep(1.1)  # segment 0 exists
    async with hostile(handler) as (base, _):
        observed, _ = await follow(f"{base}/abs.m3u8", 5.0, gop_seconds=1.0)
    reports = [detail for kind, detail, _ in observed.errors if kind == "playlist_error"]
    assert len(reports) == 1 and f"TARGETDURATION {declared}s" in reports[0], observed.errors
    working = {p.target_duration for _, p in observed.playlists}
    assert working == {1.0} and {p.declared_target_duration for _, p in observed.playlists} == {
        declared
    }
    # Not blind: every new segment listed within a fraction of its 1 s duration.
    late = [s.listed_at - clock.created(s.segment.sequence) for s in observed.segments]
    news = [delay for s, delay in zip(observed.segments, late, strict=True) if not s.first_listing]
    assert len(news) >= 3 and max(news) < 0.5, late


def test_a_stall_is_caught_at_the_working_target_not_the_declared_one() -> None:
    # TARGETDURATION:2000 (milliseconds) would hide any stall shorter than 3,000 s.
    rendition = SyntheticRendition()
    sanity = TargetSanity(gop_seconds=2.0)
    stale = StalePlaylist(context(), {})
    for n in range(3):  # three 2 s segments, then nothing
        listing, _ = sanity.apply(rendition.playlist(0, n, target=2000.0))
        stale.on_playlist(rendition.name, listing, rendition.listed(n))
        stale.on_segment(rendition.segment(n))
    last = rendition.listed(2)
    failures = [(t, f) for t in (last + i * 0.25 for i in range(40)) for f in stale.on_tick(t)]
    ((at, failure),) = failures
    assert "limit 3s" in failure.detail and at - last <= 3.25, failure.detail


@pytest.mark.parametrize(("declared", "extinf"), [(2, 2.0), (3, 2.0), (6, 2.0), (10, 10.0)])
def test_a_plausible_target_duration_is_left_alone(declared: int, extinf: float) -> None:
    sanity = TargetSanity(gop_seconds=2.0)
    playlist = SyntheticRendition().playlist(0, 2, target=float(declared))
    playlist = replace(
        playlist, segments=tuple(replace(s, duration=extinf) for s in playlist.segments)
    )
    working, report = sanity.apply(playlist)
    assert working is playlist and report is None


# -- 5: monotonic clock -------------------------------------------------------------------


async def test_wall_clock_steps_neither_stall_nor_burst_polling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_time, begun = time.time, time.monotonic()

    def stepped() -> float:
        elapsed = time.monotonic() - begun
        step = 0.0
        if elapsed > 2.0:
            step -= 3600.0  # NTP steps the clock back an hour
        if elapsed > 4.0:
            step += 7200.0  # then forward two
        return real_time() + step

    async def handler(request: web.Request) -> web.Response:
        if not request.path.endswith(".m3u8"):
            return segment_response()
        newest = int((time.monotonic() - begun) / 1.0) - 1
        first = max(0, newest - 4)
        return web.Response(text=media(1, first, max(0, newest - first + 1), extinf=1.0))

    monkeypatch.setattr(time, "time", stepped)
    async with hostile(handler) as (base, seen):
        observed, _ = await follow(f"{base}/steps.m3u8", 6.5, gop_seconds=1.0)
    finished = time.monotonic()
    polls = [at for at, _, _ in seen.playlist_requests()]
    assert finished - polls[-1] < 1.2  # still polling at the end
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    # No stall: polls wait for the next segment (1 s apart), not for the clock to catch up.
    assert max(gaps) < 1.2, max(gaps)
    bursts = [sum(1 for t in polls if at <= t < at + 0.1) for at in polls]
    assert max(bursts) <= 6, max(bursts)  # no burst
    assert {s.segment.sequence for s in observed.segments} >= {2, 3, 4, 5}
    assert observed.errors == []


# -- 6: error storms -------------------------------------------------------------------------


async def test_an_error_storm_backs_off_and_recovery_is_seen_within_a_target() -> None:
    storm = (time.monotonic() + 0.5, time.monotonic() + 6.0)  # 5.5 s of 503 answers

    async def handler(request: web.Request) -> web.Response:
        if not request.path.endswith(".m3u8"):
            return segment_response()
        if storm[0] <= time.monotonic() < storm[1]:
            return web.Response(status=503, text="overloaded")
        return web.Response(text=media(2, 0, 1))

    async with hostile(handler) as (base, seen):
        observed, _ = await follow(f"{base}/storm.m3u8", 7.5)
    polls = [at for at, _, _ in seen.playlist_requests()]
    during = [at for at in polls if storm[0] <= at < storm[1]]
    # Before: three requests every 0.8 s (retries included), ~20 in this storm.
    assert len(during) <= 15, len(during)
    steady = [b - a for a, b in zip(during[-4:], during[-3:], strict=False)]
    assert all(gap >= 0.45 for gap in steady), steady  # half a target, jittered down
    recovered = min(at for at in polls if at >= storm[1])
    assert recovered - storm[1] <= 1.0 + 0.05  # within half a target (of 2 s), plus RTT
    failed = [e for e in observed.errors if e[0] == "http_error"]
    assert failed and all(source == "media playlist" for _, _, source in failed)
    assert all("HTTP 503" in detail for _, detail, _ in failed)


def test_a_storm_is_one_report_with_a_count_and_a_duration() -> None:
    storms = ErrorStorms()
    starts = [
        storms.failed("720p", "media playlist", "http_error", "media playlist: HTTP 503")
        for _ in range(57)
    ]
    assert starts == [True] + [False] * 56
    # Another object or kind is another storm.
    assert storms.failed("720p", "segment", "http_error", "segment: HTTP 404")
    assert storms.failed("720p", "media playlist", "timeout", "media playlist: no answer")
    assert storms.recovered("720p", "segment") == []  # a single failure: no summary
    ended = {s.kind: s for s in storms.recovered("720p", "media playlist")}
    assert set(ended) == {"http_error"}  # a single timeout was reported as it happened
    assert ended["http_error"].detail.startswith("media playlist: HTTP 503 x 57 over ")
    assert ended["http_error"].detail.endswith("then recovered")
    assert storms.end() == []


def test_a_mixed_storm_names_its_answers() -> None:
    storms = ErrorStorms()
    for status in [503, 503, 504, 503]:
        storms.failed(None, "master playlist", "http_error", f"HTTP {status}")
    (summary,) = storms.end()
    assert summary.rendition is None
    assert "4 failed requests (HTTP 503 x 3, HTTP 504 x 1)" in summary.detail
    assert summary.detail.endswith("until the end")


# -- 2: big playlists, init sections ------------------------------------------------------


async def test_a_1_mib_playlist_costs_only_its_newest_segments() -> None:
    # 50,000 segments: m3u8 alone would hold the interpreter for seconds on every poll.
    body = media(2, 7, 1, uri="s.ts").encode()
    one = b"#EXTINF:2.000,\ns.ts\n"
    count = (MAX_PLAYLIST_BYTES - len(body)) // len(one)
    body += one * count
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    task = asyncio.create_task(ticker())
    parsed = await parse_playlist(body, "http://o/big.m3u8")
    task.cancel()
    assert isinstance(parsed, MediaPlaylist) and count > 50_000
    assert len(parsed.segments) == MAX_PARSED_SEGMENTS
    assert parsed.last_sequence == 7 + count  # numbered as if all had been parsed
    assert ticks > 0  # parsed on a worker thread: the loop went on meanwhile


async def test_an_oversized_init_section_is_refused_not_cached() -> None:
    huge = b"\0\0\0\x18ftypiso6" + b"\0" * (MAX_INIT_BYTES + 1)

    async def handler(request: web.Request) -> web.Response:
        if request.path.endswith(".m3u8"):
            return web.Response(text=media(2, 0, 2, header='#EXT-X-MAP:URI="init.mp4"'))
        if request.path.endswith("init.mp4"):
            return web.Response(body=huge)
        return web.Response(body=b"\0\0\0\x08moof")

    async with hostile(handler) as (base, _):
        observed, _ = await follow(f"{base}/fmp4.m3u8", 1.0)
    assert observed.errors
    assert all(source == "init segment" for _, _, source in observed.errors), observed.errors
    assert all(f"exceeds {MAX_INIT_BYTES}" in detail for _, detail, _ in observed.errors)


# -- 4: decoding must not starve DNS ------------------------------------------------------


async def test_segment_analysis_leaves_the_default_pool_to_dns() -> None:
    # Far more costly analyses than the default pool has threads: name lookups, which
    # aiohttp and the publisher run on that pool, still answer while they queue.
    loop = asyncio.get_running_loop()
    data = real_segment(3.0)
    analyses = [asyncio.ensure_future(analyse_segment(data, None)) for _ in range(24)]
    await asyncio.sleep(0)
    await loop.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    finished_first = sum(1 for a in analyses if a.done())
    results = await asyncio.gather(*analyses)
    # The lookup did not queue behind them (on a shared pool, most would be done first).
    assert finished_first <= len(analyses) // 4, finished_first
    assert all(r.frame_count == 90 for r in results)


# -- configuration and metrics --------------------------------------------------------------


def _config(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "streams.yaml"
    path.write_text(
        "streams:\n  - name: s\n    injest_url: rtmp://h/live/k\n"
        f"    playback_url: http://h/a.m3u8\n{extra}"
    )
    return path


def test_max_renditions_is_configurable_and_validated(tmp_path: Path) -> None:
    config = load_file(_config(tmp_path, "    max_renditions: 4\n"), {})
    stream = config.streams[0]
    assert stream.max_renditions == 4
    assert session_settings(stream, fixed_target(stream)).max_renditions == 4
    assert load_file(_config(tmp_path, ""), {}).streams[0].max_renditions == 16
    with pytest.raises(ConfigError, match="max_renditions"):
        load_file(_config(tmp_path, "    max_renditions: 0\n"), {})
    with pytest.raises(ConfigError, match="expected_renditions: 8 is more than max_renditions"):
        load_file(_config(tmp_path, "    max_renditions: 4\n    expected_renditions: 8\n"), {})


def test_failed_requests_and_anomalies_are_counted() -> None:
    sink = MetricsSink()
    labels = StreamLabels("s", "eu", "eu")
    for _ in range(3):
        sink.handle(
            RequestFailed(
                labels=labels,
                session_id="x",
                rendition="720p",
                kind="http_error",
                source="media playlist",
                at=0.0,
            )
        )
    sink.handle(
        PlaybackAnomaly(
            labels=labels, session_id="x", rendition=None, anomaly="renditions_over_cap", at=0.0
        )
    )
    text = generate_latest(sink.registry).decode()
    assert (
        'streamer_failed_requests_total{ingest_protocol="rtmp",ingest_region="eu",'
        'kind="http_error",playback_protocol="hls",playback_region="eu",rendition="720p",'
        'stream="s"} 3.0'
    ) in text
    assert (
        'streamer_playback_anomalies_total{anomaly="renditions_over_cap",'
        'ingest_protocol="rtmp",ingest_region="eu",playback_protocol="hls",'
        'playback_region="eu",rendition="",stream="s"} 1.0'
    ) in text


def test_a_ladder_renamed_every_session_adds_series_only_up_to_the_cap() -> None:
    """A platform whose rendition names change from session to session (or a hostile one)
    must not grow the exporter without end: past MAX_RENDITION_LABELS names per stream,
    new ones are counted under OTHER_RENDITION. Another stream keeps its own names."""
    sink = MetricsSink()
    renamed, steady = StreamLabels("renamed", "eu", "eu"), StreamLabels("steady", "eu", "eu")

    def fail(labels: StreamLabels, rendition: str) -> None:
        sink.handle(
            RequestFailed(
                labels=labels,
                session_id="x",
                rendition=rendition,
                kind="http_error",
                source="segment",
                at=0.0,
            )
        )

    for session in range(100):
        fail(renamed, f"{session}x360")
    fail(renamed, "0x360")  # a name it already has keeps its series
    fail(steady, "720p")
    series = {
        (sample.labels["stream"], sample.labels["rendition"]): sample.value
        for metric in sink.registry.collect()
        if metric.name == "streamer_failed_requests"
        for sample in metric.samples
        if sample.name == "streamer_failed_requests_total"
    }
    assert len([s for s in series if s[0] == "renamed"]) == MAX_RENDITION_LABELS + 1
    assert series[("renamed", OTHER_RENDITION)] == 100 - MAX_RENDITION_LABELS
    assert series[("renamed", "0x360")] == 2
    assert series[("steady", "720p")] == 1
