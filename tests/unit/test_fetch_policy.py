"""The fetch policy against a hostile platform: playlists, segments and redirects that point
at cloud metadata, loopback, the monitor's own port or another origin (with the token)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path

import pytest
from aiohttp import web

from streamer.cli import main
from streamer.config import ConfigError, from_environment
from streamer.playback import egress
from streamer.playback.fetch import Fetcher, FetchError, FetchPolicy, FetchRefusedError
from streamer.playback.follower import RenditionFollower, SegmentFetch
from streamer.playback.llhls import PartFetch
from streamer.playback.playlist import MediaPlaylist
from streamer.wiring import fixed_target, session_settings
from tests.support.aio import LocalServer

PUBLIC_PLAYBACK = "https://cdn.example/hls/abc/index.m3u8"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOKEN_HEADERS = {"Livepeer-Jwt": "eyJ.secret.jwt", "Authorization": "Bearer k", "X-Cdn": "c"}


@dataclass
class Origin:
    """A real HTTP server on loopback that records every request it gets."""

    port: int = 0
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


async def _origin(routes: Callable[[Origin], list[web.RouteDef]]) -> tuple[Origin, LocalServer]:
    origin = Origin()

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin.seen.append((request.path, dict(request.headers)))
        return await handler(request)

    app = web.Application(middlewares=[record])
    app.add_routes(routes(origin))
    server = await LocalServer.start(app)
    origin.port = server.port
    return origin, server


def _redirect(to: Callable[[], str], status: int = 302) -> Handler:
    async def handler(_: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": to()})

    return handler


async def _ok(_: web.Request) -> web.Response:
    return web.Response(body=b"#EXTM3U\n")


async def _no_location(_: web.Request) -> web.Response:
    return web.Response(status=302)


@pytest.fixture
async def fetchers() -> AsyncIterator[Callable[..., Fetcher]]:
    made: list[Fetcher] = []

    def make(
        playback: str,
        allow: tuple[str, ...] = (),
        deny: tuple[str, ...] = (),
        headers: Mapping[str, str] | None = None,
    ) -> Fetcher:
        policy = FetchPolicy(timeout_seconds=3, retry_delay_seconds=0.01, allow=allow, deny=deny)
        fetcher = Fetcher(policy, (lambda: headers) if headers else None, lambda: playback)
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        await fetcher.close()


async def _refused(fetcher: Fetcher, url: str) -> str:
    with pytest.raises(FetchRefusedError) as caught:
        await fetcher.get(url, "segment", 1 << 20)
    error = caught.value
    assert error.kind == "http_error" and error.status is None
    text = str(error)
    assert "://" not in text, "the URL (it may carry tokens) never appears in an error"
    return text


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/", "link-local address"),
        ("http://[fe80::1]/x.ts", "link-local address"),
        ("http://[::ffff:169.254.169.254]/latest/", "link-local address"),  # IPv4-mapped
        ("http://[64:ff9b::a9fe:a9fe]/latest/", "link-local address"),  # NAT64
        ("http://10.96.0.1/api", "private address"),
        ("http://100.64.1.1/x.ts", "private address"),
        ("http://[fd00::5]/x.ts", "private address"),
        ("http://0.0.0.0:9090/metrics", "unspecified address"),
        ("http://224.0.0.1/x.ts", "multicast address"),
    ],
)
async def test_internal_addresses_are_refused_even_next_to_a_local_origin(
    fetchers: Callable[..., Fetcher], url: str, reason: str
) -> None:
    # The playback URL is on loopback: loopback is allowed, nothing else internal is.
    fetcher = fetchers("http://127.0.0.1:8080/hls/k/index.m3u8")
    assert await _refused(fetcher, url) == f"segment: refused by fetch policy: {reason}"
    assert fetcher.requests == 0  # refused before connecting, and not retried


async def test_a_public_playback_url_may_not_reach_loopback_by_address_or_by_name(
    fetchers: Callable[..., Fetcher],
) -> None:
    origin, server = await _origin(lambda o: [web.get("/x.ts", _ok)])
    try:
        fetcher = fetchers(PUBLIC_PLAYBACK)
        assert "loopback address" in await _refused(fetcher, origin.url("/x.ts"))
        # By name: refused after resolution, on the address the name resolved to.
        assert "loopback address" in await _refused(fetcher, origin.url("/x.ts", "localhost"))
        assert "loopback address" in await _refused(fetcher, "http://[::1]:1/x.ts")
        assert origin.seen == []
    finally:
        await server.stop()


async def test_allow_list_by_network_or_by_name(fetchers: Callable[..., Fetcher]) -> None:
    origin, server = await _origin(lambda o: [web.get("/x.ts", _ok)])
    try:
        by_network = fetchers(PUBLIC_PLAYBACK, allow=("127.0.0.0/8",))
        assert (await by_network.get(origin.url("/x.ts"), "segment", 100)).body == b"#EXTM3U\n"
        by_name = fetchers(PUBLIC_PLAYBACK, allow=("localhost",))
        assert (await by_name.get(origin.url("/x.ts", "localhost"), "segment", 100)).body
        # The name is allowed, not its addresses under any other name.
        await _refused(by_name, origin.url("/x.ts"))
        assert len(origin.seen) == 2
    finally:
        await server.stop()


async def test_deny_list_wins_over_a_local_playback_url(fetchers: Callable[..., Fetcher]) -> None:
    origin, server = await _origin(lambda o: [web.get("/x.ts", _ok)])
    try:
        playback = origin.url("/index.m3u8")
        assert (await fetchers(playback).get(origin.url("/x.ts"), "segment", 100)).body
        denied = fetchers(playback, deny=("127.0.0.1/32",))
        assert "deny-listed address" in await _refused(denied, origin.url("/x.ts"))
        named = fetchers(playback, deny=("*.example",))
        assert "deny-listed host" in await _refused(named, "http://evil.example/x.ts")
        assert len(origin.seen) == 1
    finally:
        await server.stop()


async def test_every_redirect_hop_is_checked(fetchers: Callable[..., Fetcher]) -> None:
    origin, server = await _origin(
        lambda o: [
            web.get("/meta.ts", _redirect(lambda: "http://169.254.169.254/latest/meta-data/")),
            web.get("/hop1.ts", _redirect(lambda: "/hop2.ts", 301)),
            web.get("/hop2.ts", _redirect(lambda: "http://10.0.0.7/x.ts", 307)),
            web.get("/file.ts", _redirect(lambda: "file:///etc/passwd")),
            web.get("/loop.ts", _redirect(lambda: "/loop.ts")),
            web.get("/nowhere.ts", _no_location),
            web.get("/bad.ts", _redirect(lambda: "http://[::1/oops")),
        ]
    )
    try:
        fetcher = fetchers(origin.url("/index.m3u8"))
        assert "link-local address" in await _refused(fetcher, origin.url("/meta.ts"))
        assert "private address" in await _refused(fetcher, origin.url("/hop1.ts"))
        assert "not an http(s) URL" in await _refused(fetcher, origin.url("/file.ts"))
        with pytest.raises(FetchError, match="more than 10 redirects"):
            await fetcher.get(origin.url("/loop.ts"), "segment", 100, retry=False)
        with pytest.raises(FetchError, match="redirect without a Location"):
            await fetcher.get(origin.url("/nowhere.ts"), "segment", 100, retry=False)
        for malformed in ("http://[nope/x.ts", "http://h:99999/x.ts", origin.url("/bad.ts")):
            with pytest.raises(FetchError, match="malformed") as caught:
                await fetcher.get(malformed, "segment", 100)
            assert caught.value.kind == "http_error" and not caught.value.retryable
        paths = [path for path, _ in origin.seen]
        assert paths[:4] == ["/meta.ts", "/hop1.ts", "/hop2.ts", "/file.ts"]
    finally:
        await server.stop()


async def test_tokens_do_not_follow_a_cross_origin_redirect(
    fetchers: Callable[..., Fetcher],
) -> None:
    other, other_server = await _origin(lambda o: [web.get("/seg.ts", _ok)])
    origin, server = await _origin(
        lambda o: [
            web.get("/away.ts", _redirect(lambda: other.url("/seg.ts"))),
            web.get("/here.ts", _redirect(lambda: "/seg.ts")),
            web.get("/seg.ts", _ok),
        ]
    )
    try:
        fetcher = fetchers(origin.url("/index.m3u8"), headers=TOKEN_HEADERS)
        await fetcher.get(origin.url("/away.ts"), "segment", 100)
        await fetcher.get(origin.url("/here.ts"), "segment", 100)
        # Same host, another port: another origin, which gets none of the custom headers.
        ((_, sent_elsewhere),) = other.seen
        assert not {"Livepeer-Jwt", "Authorization", "X-Cdn"} & set(sent_elsewhere)
        for _, sent in origin.seen:  # the origin itself gets them on every hop
            assert sent["Livepeer-Jwt"] == "eyJ.secret.jwt" and sent["X-Cdn"] == "c"
        assert [p for p, _ in origin.seen] == ["/away.ts", "/here.ts", "/seg.ts"]
    finally:
        await server.stop()
        await other_server.stop()


async def test_the_monitors_own_port_is_refused_while_it_serves(
    fetchers: Callable[..., Fetcher],
) -> None:
    from streamer.web.server import serve

    app = web.Application()
    app.router.add_get("/api/streams", _ok)
    runner = await serve(app, "127.0.0.1", 0)
    port = int(runner.addresses[0][1])
    own = f"http://127.0.0.1:{port}/api/streams"
    fetcher = fetchers("http://127.0.0.1:1/hls/index.m3u8", allow=("127.0.0.0/8",))
    try:
        assert "own listening port" in await _refused(fetcher, own)
    finally:
        await runner.cleanup()
    with pytest.raises(FetchError) as after:
        await fetcher.get(own, "segment", 100, retry=False)
    assert not isinstance(after.value, FetchRefusedError)  # forgotten once it stopped


def test_a_wildcard_listener_covers_every_local_address() -> None:
    policy = egress.AddressPolicy(trusted=frozenset({"loopback", "private"}))
    egress.listening("0.0.0.0", 9090)
    try:
        for address in ("127.0.0.1", "10.1.2.3", "::1"):
            assert policy.refuse_address("h", ip_address(address), 9090) is not None
        assert policy.refuse_address("h", ip_address("127.0.0.1"), 9091) is None
    finally:
        egress.stopped_listening("0.0.0.0", 9090)
    assert policy.refuse_address("h", ip_address("127.0.0.1"), 9090) is None


@pytest.mark.parametrize(
    ("playback", "trusted"),
    [
        ("http://127.0.0.1:8080/hls/x.m3u8", {"loopback"}),
        ("http://localhost:8080/hls/x.m3u8", {"loopback"}),
        ("http://10.0.0.5/hls/x.m3u8", {"private"}),
        ("http://[fd00::1]/x.m3u8", {"private"}),
        ("https://cdn.example/hls/x.m3u8", set()),
        ("https://origin.internal/x.m3u8", set()),  # a name: its DNS is the platform's
        ("http://8.8.8.8/x.m3u8", set()),
    ],
)
def test_which_classes_a_playback_url_trusts(playback: str, trusted: set[str]) -> None:
    assert egress.trusted_classes(playback) == trusted


class _Observer:
    def __init__(self) -> None:
        self.segments: list[SegmentFetch] = []
        self.errors: list[tuple[str, str]] = []

    def on_playlist(self, rendition: str, playlist: MediaPlaylist, fetched_at: float) -> None:
        pass

    def on_segment(self, fetch: SegmentFetch) -> None:
        self.segments.append(fetch)

    def on_part(self, fetch: PartFetch) -> None:
        pass

    def on_error(
        self, rendition: str | None, kind: str, detail: str, source: str | None = None
    ) -> None:
        self.errors.append((kind, detail))

    def on_anomaly(self, rendition: str | None, anomaly: str) -> None:
        pass


async def test_a_playlist_pointing_at_cloud_metadata_is_a_measured_error(
    fetchers: Callable[..., Fetcher],
) -> None:
    playlist = (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXTINF:2.0,\nhttp://169.254.169.254/latest/meta-data/iam/security-credentials/\n"
    )

    async def media(_: web.Request) -> web.Response:
        return web.Response(text=playlist)

    origin, server = await _origin(lambda o: [web.get("/hls/index.m3u8", media)])
    observer = _Observer()
    url = origin.url("/hls/index.m3u8")
    follower = RenditionFollower("source", url, fetchers(url), observer, 0.05)
    task = asyncio.create_task(follower.run())
    try:
        for _ in range(100):
            if observer.segments:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()
    (fetch, *_) = observer.segments
    assert fetch.error_kind == "http_error"
    assert fetch.error_detail == "segment: refused by fetch policy: link-local address"


def test_policy_lists_are_validated_naming_the_field() -> None:
    env = {"INJEST_URL": "rtmp://h/live/k", "PLAYBACK_URL": "http://h/a.m3u8"}
    config = from_environment({**env, "FETCH_ALLOW": "10.0.0.0/8, origin.internal"})
    assert config is not None
    stream = config.streams[0]
    assert stream.fetch_allow == ["10.0.0.0/8", "origin.internal"]
    fetch = session_settings(stream, fixed_target(stream)).fetch
    assert fetch.allow == ("10.0.0.0/8", "origin.internal") and fetch.deny == ()
    with pytest.raises(ConfigError, match=r"FETCH_DENY: entry 2: 'no_such/host'"):
        from_environment({**env, "FETCH_DENY": "10.0.0.0/8,no_such/host"})


def test_a_bad_policy_entry_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "streams.yaml"
    path.write_text(
        "streams:\n  - name: eu\n    injest_url: rtmp://h/live/k\n"
        "    playback_url: https://cdn.example/a.m3u8\n    fetch_allow: [10.0.0.0/33]\n"
    )
    assert main(["monitor", "--config", str(path)]) == 2
    error = capsys.readouterr().err
    assert "streams[0] ('eu'): fetch_allow: entry 1" in error
