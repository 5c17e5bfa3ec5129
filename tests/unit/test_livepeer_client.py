"""The Livepeer Studio client against the local fake API (tests/support/fake_livepeer.py)."""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import AsyncIterator

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamer.livepeer.client import (
    DEFAULT_PROFILES,
    TEST_STREAM_PREFIX,
    Ingest,
    LivepeerAPIError,
    LivepeerClient,
    Profile,
    build_stream_name,
    ingest_url,
    playback_url,
    regional_base,
    stream_name_prefix,
)
from tests.support.fake_livepeer import FakeLivepeer
from tests.support.ports import free_port

API_KEY = "sk-live-0123456789abcdef-SECRET"


@pytest.fixture
async def fake() -> AsyncIterator[FakeLivepeer]:
    async with FakeLivepeer(
        api_key=API_KEY,
        ingest_base="rtmp://127.0.0.1:19350/live",
        playback_base="http://127.0.0.1:18080/hls",
    ) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def make_client(
    fake: FakeLivepeer,
    session: aiohttp.ClientSession,
    key: str = API_KEY,
    timeout: float = 5.0,
    latencies: list[tuple[str, float]] | None = None,
) -> LivepeerClient:
    def record(operation: str, seconds: float) -> None:
        if latencies is not None:
            latencies.append((operation, seconds))

    return LivepeerClient(fake.api_url, key, session, timeout, on_latency=record)


# -- happy paths --------------------------------------------------------------------------------


async def test_create_stream_sends_ladder_with_bearer_key_and_returns_ids(
    fake: FakeLivepeer, session: aiohttp.ClientSession
) -> None:
    client = make_client(fake, session)
    created = await client.create_stream("streamer-eu-main-ab12cd34")

    stored = fake.streams[created.id]
    assert created.name == "streamer-eu-main-ab12cd34"
    assert created.stream_key == stored["streamKey"]
    assert created.playback_id == stored["playbackId"]
    call = fake.calls_of("create_stream")[0]
    assert call.authorization == f"Bearer {API_KEY}"
    assert call.json["record"] is False
    assert "playbackPolicy" not in call.json
    assert [
        (p["name"], p["width"], p["height"], p["bitrate"], p["fps"]) for p in call.json["profiles"]
    ] == [
        ("720p", 1280, 720, 2_000_000, 30),
        ("480p", 854, 480, 1_000_000, 30),
        ("360p", 640, 360, 500_000, 30),
    ]
    # Whoever reads a log line with the stream in it must not be able to publish.
    assert created.stream_key not in repr(created)
    assert created.stream_key not in str(created)


async def test_create_stream_with_jwt_policy_record_and_custom_profiles(
    fake: FakeLivepeer, session: aiohttp.ClientSession
) -> None:
    client = make_client(fake, session)
    profiles = [Profile("240p", 426, 240, 250_000, 30, fps_den=1, gop="2.0", profile="H264Main")]
    created = await client.create_stream(
        "streamer-x-1", profiles=profiles, record=True, playback_policy="jwt"
    )
    stored = fake.streams[created.id]
    assert stored["playbackPolicy"] == {"type": "jwt"}
    assert stored["record"] is True
    assert stored["profiles"] == [
        {
            "name": "240p",
            "width": 426,
            "height": 240,
            "bitrate": 250_000,
            "fps": 30,
            "fpsDen": 1,
            "gop": "2.0",
            "profile": "H264Main",
        }
    ]


async def test_list_get_and_delete_streams(
    fake: FakeLivepeer, session: aiohttp.ClientSession
) -> None:
    client = make_client(fake, session)
    first = await client.create_stream("streamer-a-1")
    second = await client.create_stream("streamer-b-2")

    listed = await client.list_streams()
    assert {(s.id, s.name) for s in listed} == {(first.id, first.name), (second.id, second.name)}
    assert all(s.created_at is not None and s.created_at.year >= 2024 for s in listed)

    one = await client.get_stream(first.id)
    assert (one.id, one.name, one.is_active) == (first.id, "streamer-a-1", False)

    await client.delete_stream(first.id)
    assert set(fake.streams) == {second.id}
    assert fake.calls_of("delete_stream")[0].path == f"/api/stream/{first.id}"


async def test_list_streams_follows_pagination(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeLivepeer(api_key=API_KEY, page_size=2) as fake:
        for i in range(5):
            fake.add_stream(f"s{i}")
        streams = await make_client(fake, session).list_streams()
        assert [s.name for s in streams] == ["s0", "s1", "s2", "s3", "s4"]
        assert len(fake.calls_of("list_streams")) == 3


async def test_pagination_link_to_another_host_is_not_followed(
    fake: FakeLivepeer, session: aiohttp.ClientSession
) -> None:
    # Following it would hand our bearer key to that host.
    other = f"http://127.0.0.2:{free_port()}/api/stream?cursor=2"
    link = {"Link": f'<{other}>; rel="next"'}
    fake.fail_next("list_streams", status=200, body="[]", headers=link)
    assert await make_client(fake, session).list_streams() == []
    assert len(fake.calls_of("list_streams")) == 1


async def test_ingests_and_url_helpers(fake: FakeLivepeer, session: aiohttp.ClientSession) -> None:
    client = make_client(fake, session)
    ingests = await client.ingests()
    assert ingests == [
        Ingest(
            "http://127.0.0.1:18080", "rtmp://127.0.0.1:19350/live", "http://127.0.0.1:18080/hls"
        )
    ]
    created = await client.create_stream("streamer-u-1")
    assert ingest_url(created.stream_key, ingests[0].ingest) == (
        f"rtmp://127.0.0.1:19350/live/{created.stream_key}"
    )
    assert playback_url(created.playback_id, ingests[0].playback + "/") == (
        f"http://127.0.0.1:18080/hls/{created.playback_id}/index.m3u8"
    )


async def test_playback_id_can_equal_stream_key_for_nginx_origins(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeLivepeer(api_key=API_KEY, playback_id_is_stream_key=True) as fake:
        created = await make_client(fake, session).create_stream("streamer-n-1")
        assert created.playback_id == created.stream_key


def test_regional_base_and_names() -> None:
    assert regional_base("rtmp://{region}-rtmp.example/live", "fra") == (
        "rtmp://fra-rtmp.example/live"
    )
    with pytest.raises(ValueError):
        regional_base("rtmp://{region}-rtmp.example/live", "evil.host/x")
    assert build_stream_name("EU West #1", "ab12cd34") == "streamer-eu-west-1-ab12cd34"
    assert stream_name_prefix("EU West #1") == "streamer-eu-west-1-"
    assert build_stream_name("a") != build_stream_name("a")
    assert [p.name for p in DEFAULT_PROFILES] == ["720p", "480p", "360p"]


@given(st.text(max_size=80))
def test_stream_names_are_safe_and_carry_the_prefix(stream: str) -> None:
    name = build_stream_name(stream)
    assert name.startswith(TEST_STREAM_PREFIX)
    assert name.startswith(stream_name_prefix(stream))
    assert re.fullmatch(r"streamer-[a-z0-9]+(-[a-z0-9]+)*-[0-9a-f]{8}", name)


# -- errors -------------------------------------------------------------------------------------


async def test_wrong_key_gives_401_with_api_message_and_no_key(
    fake: FakeLivepeer, session: aiohttp.ClientSession
) -> None:
    wrong = "sk-wrong-key-0000000000"
    with pytest.raises(LivepeerAPIError) as info:
        await make_client(fake, session, key=wrong).create_stream("streamer-a-1")
    assert str(info.value) == "create_stream: 401 invalid API key"
    assert (info.value.operation, info.value.status) == ("create_stream", 401)
    assert wrong not in repr(info.value)


async def test_invalid_payload_is_rejected_with_validation_message(
    fake: FakeLivepeer, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(LivepeerAPIError) as info:
        await make_client(fake, session).create_stream(
            "streamer-a-1", profiles=[Profile("bad", 0, 360, 1000, 30)]
        )
    assert info.value.status == 422
    assert "width must be a positive integer" in str(info.value)
    assert fake.streams == {}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, None, "list_streams: 500 internal error"),
        (503, "<html>Service Unavailable</html>", "list_streams: 503 Service Unavailable"),
        (400, '{"message": "bad cursor"}', "list_streams: 400 bad cursor"),
        (200, '{"errors": ["deprecated", "try later"]}', "list_streams: 200 deprecated; try later"),
        (200, "not json", "list_streams: 200 malformed JSON in the answer"),
        (200, '{"id": "x"}', "list_streams: 200 malformed answer: expected a list"),
        (200, '[{"name": "x"}]', "list_streams: 200 malformed answer: id missing or not a string"),
    ],
)
async def test_error_answers_map_to_livepeer_api_error(
    fake: FakeLivepeer,
    session: aiohttp.ClientSession,
    status: int,
    body: str | None,
    expected: str,
) -> None:
    fake.fail_next("list_streams", status=status, body=body)
    with pytest.raises(LivepeerAPIError) as info:
        await make_client(fake, session).list_streams()
    assert str(info.value) == expected
    assert info.value.status == status


async def test_create_stream_answer_without_stream_key_is_malformed(
    fake: FakeLivepeer, session: aiohttp.ClientSession
) -> None:
    fake.fail_next("create_stream", status=201, body='{"id": "1", "name": "n", "playbackId": "p"}')
    with pytest.raises(LivepeerAPIError, match=r"create_stream: 201 malformed answer: streamKey"):
        await make_client(fake, session).create_stream("n")


async def test_timeout_and_connection_errors_have_no_status(
    fake: FakeLivepeer, session: aiohttp.ClientSession
) -> None:
    fake.fail_next("ingests", status=200, body="[]", delay=1.0)
    with pytest.raises(LivepeerAPIError) as info:
        await make_client(fake, session, timeout=0.2).ingests()
    assert str(info.value) == "ingests: timeout after 0.2s"
    assert info.value.status is None

    closed = LivepeerClient(f"http://127.0.0.1:{free_port()}/api", API_KEY, session, 2.0)
    with pytest.raises(LivepeerAPIError) as info:
        await closed.delete_stream("abc")
    assert info.value.status is None
    assert str(info.value).startswith("delete_stream: connection failed (")


async def test_delete_unknown_stream_is_404(
    fake: FakeLivepeer, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(LivepeerAPIError, match=r"^delete_stream: 404 not found$"):
        await make_client(fake, session).delete_stream("nope")


async def test_an_endless_answer_is_an_api_error_once_past_8_mib(
    fake: FakeLivepeer, session: aiohttp.ClientSession
) -> None:
    fake.add_stream("streamer-eu-main-00000001")
    client = make_client(fake, session)
    padding = " " * (8 << 20)  # valid JSON, only too long
    fake.fail_next("list_streams", status=200, body="[]" + padding)
    with pytest.raises(LivepeerAPIError, match=r"^list_streams: 200 answer larger than 8 MiB$"):
        await client.list_streams()
    # Just under the cap it is an answer like any other.
    fake.fail_next("list_streams", status=200, body="[]" + padding[:-64])
    assert await client.list_streams() == []


async def test_api_key_never_shows_in_errors_tracebacks_or_logs(
    fake: FakeLivepeer, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(fake, session, timeout=0.2)
    errors: list[LivepeerAPIError] = []
    # A server that echoes the key back, a timeout, a refused connection, a wrong key.
    fake.fail_next("create_stream", status=403, message=f"key {API_KEY} is suspended")
    fake.fail_next("ingests", status=200, body="[]", delay=1.0)
    for call in (
        lambda: client.create_stream("n"),
        client.ingests,
        lambda: make_client(fake, session, key=API_KEY + "x").list_streams(),
        lambda: LivepeerClient(f"http://127.0.0.1:{free_port()}/api", API_KEY, session).ingests(),
    ):
        with pytest.raises(LivepeerAPIError) as info:
            await call()
        errors.append(info.value)
    assert str(errors[0]) == "create_stream: 403 key **** is suspended"
    for error in errors:
        text = "".join(traceback.format_exception(error)) + repr(error)
        assert API_KEY not in text
    assert API_KEY not in caplog.text
    assert API_KEY not in repr(client)


# -- leftovers and latency ---------------------------------------------------------------------


async def test_delete_leftovers_deletes_only_matching_names(
    fake: FakeLivepeer, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    ours = [fake.add_stream(f"streamer-eu-main-{i:08x}")["id"] for i in range(3)]
    kept = fake.add_stream("streamer-eu-main-current")["id"]
    other = fake.add_stream("customer stream")["id"]
    sibling = fake.add_stream("streamer-us-east-0000abcd")["id"]
    fake.fail_next("delete_stream", status=500, message="try again")  # the first delete fails

    client = make_client(fake, session)
    deleted = await client.delete_leftovers(stream_name_prefix("eu-main"), keep={kept})

    assert deleted == 2
    assert set(fake.streams) == {ours[0], kept, other, sibling}
    assert "not deleted" in caplog.text
    # The second round removes what the failure left.
    assert await client.delete_leftovers("streamer-eu-main-", keep={kept}) == 1
    assert set(fake.streams) == {kept, other, sibling}


def _nested(depth: int) -> str:
    """A stream list whose one entry nests `depth` arrays deep."""
    return '[{"id": "x", "name": "streamer-eu-main-1", "tags": ' + "[" * depth + "]" * depth + "}]"


@pytest.mark.parametrize("depth", [40, 1_000, 200_000])
async def test_deeply_nested_json_is_an_api_error_not_a_crash(
    fake: FakeLivepeer, session: aiohttp.ClientSession, depth: int
) -> None:
    """Above the parser's recursion limit it used to raise RecursionError, which ended the
    stream's loop at start-up (and, with it, every other stream's)."""
    fake.add_stream("streamer-eu-main-00000001")
    fake.fail_next("list_streams", status=200, body=_nested(depth))
    client = make_client(fake, session)
    with pytest.raises(LivepeerAPIError, match=r"^list_streams: 200 malformed JSON .* deeper"):
        await client.delete_leftovers(stream_name_prefix("eu-main"))
    fake.fail_next("create_stream", status=500, body=_nested(depth))
    with pytest.raises(LivepeerAPIError, match=r"^create_stream: 500 Internal Server Error$"):
        await client.create_stream("n")
    # Answers that nest as deep as the API's own still parse.
    fake.fail_next("list_streams", status=200, body=_nested(8))
    assert [s.name for s in await client.list_streams()] == ["streamer-eu-main-1"]


async def test_delete_leftovers_refuses_an_empty_prefix(
    fake: FakeLivepeer, session: aiohttp.ClientSession
) -> None:
    fake.add_stream("customer stream")
    with pytest.raises(ValueError):
        await make_client(fake, session).delete_leftovers(" ")
    assert len(fake.streams) == 1


async def test_latency_is_reported_per_operation_even_on_failure(
    fake: FakeLivepeer, session: aiohttp.ClientSession
) -> None:
    latencies: list[tuple[str, float]] = []
    client = make_client(fake, session, latencies=latencies)
    created = await client.create_stream("streamer-a-1")
    await client.list_streams()
    await client.ingests()
    await client.delete_stream(created.id)
    fake.fail_next("ingests", status=502, delay=0.3)
    with pytest.raises(LivepeerAPIError):
        await client.ingests()

    assert [op for op, _ in latencies] == [
        "create_stream",
        "list_streams",
        "ingests",
        "delete_stream",
        "ingests",
    ]
    assert all(0 < seconds < 5 for _, seconds in latencies)
    assert latencies[-1][1] >= 0.3


def test_client_rejects_unusable_settings() -> None:
    with pytest.raises(ValueError):
        LivepeerClient("ftp://x/api", API_KEY, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="api_key is empty"):
        LivepeerClient("http://127.0.0.1:1/api", "  ", None)  # type: ignore[arg-type]


async def test_profiles_from_configuration_are_accepted_by_the_api(
    fake: FakeLivepeer, session: aiohttp.ClientSession
) -> None:
    config = [
        {"name": "720p", "width": 1280, "height": 720, "bitrate": 2000000},
        {
            "name": "source-fps",
            "width": 640,
            "height": 360,
            "bitrate": 500000,
            "fps": 0,
            "fps_den": 1,
            "gop": 2.0,
        },
    ]
    profiles = [Profile.from_dict(item) for item in config]
    assert profiles[0] == Profile("720p", 1280, 720, 2_000_000, 30)
    created = await make_client(fake, session).create_stream("streamer-c-1", profiles=profiles)
    assert fake.streams[created.id]["profiles"][1] == {
        "name": "source-fps",
        "width": 640,
        "height": 360,
        "bitrate": 500_000,
        "fps": 0,
        "fpsDen": 1,
        "gop": "2.0",
    }
    for bad, field in (({"width": 1}, "name"), ({"name": "x", "width": "wide"}, "width")):
        with pytest.raises(ValueError, match=field):
            Profile.from_dict(bad)
