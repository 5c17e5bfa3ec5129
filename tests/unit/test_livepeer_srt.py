"""Livepeer API mode over SRT: the ingest URL Livepeer documents for a stream key."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from streamer.config import ConfigError, from_environment
from streamer.livepeer.client import LivepeerClient, srt_ingest_url
from streamer.livepeer.provision import LivepeerProvisioner
from streamer.publish.srt_url import mask_srt, parse_srt
from streamer.wiring import labels
from tests.support.fake_livepeer import FakeLivepeer

API_KEY = "sk-live-0123456789abcdef-SECRET"


def test_srt_url_takes_the_rtmp_ingest_host_on_port_2935() -> None:
    url = srt_ingest_url("abcd-efgh-ijkl-mnop", "rtmp://fra-rtmp.livepeer.com/live")
    assert url == "srt://fra-rtmp.livepeer.com:2935?streamid=abcd-efgh-ijkl-mnop"
    parsed = parse_srt(url)
    assert (parsed.port, parsed.streamid) == (2935, "abcd-efgh-ijkl-mnop")
    assert "efgh" not in mask_srt(url)


def test_srt_url_from_an_srt_base_keeps_its_port() -> None:
    assert srt_ingest_url("k/1", "srt://127.0.0.1:9999") == "srt://127.0.0.1:9999?streamid=k%2F1"
    assert srt_ingest_url("k", "rtmp://[::1]/live") == "srt://[::1]:2935?streamid=k"
    with pytest.raises(ValueError, match="no host"):
        srt_ingest_url("k", "live")


@pytest.fixture
async def fake() -> AsyncIterator[FakeLivepeer]:
    async with FakeLivepeer(
        api_key=API_KEY,
        ingest_base="rtmp://127.0.0.1:19350/live",
        playback_base="http://127.0.0.1:18080/hls",
    ) as server:
        yield server


async def test_provisioner_publishes_over_srt_with_the_created_key(fake: FakeLivepeer) -> None:
    async with aiohttp.ClientSession() as http:
        provisioner = LivepeerProvisioner(
            LivepeerClient(fake.api_url, API_KEY, http),
            "fra",
            ingest_region="fra",
            playback_region="fra",
            ingest_protocol="srt",
        )
        target = await provisioner.acquire()
        await provisioner.release()
    [created] = fake.created
    key = created["streamKey"]
    assert target.ingest_url == f"srt://127.0.0.1:2935?streamid={key}"
    assert key in target.secrets
    ingest, _ = target.masked()
    assert key not in ingest and ingest.startswith("srt://127.0.0.1:2935?streamid=")


def test_ingest_protocol_from_the_environment_labels_the_stream() -> None:
    env = {"LIVEPEER_API_KEY": API_KEY, "LIVEPEER_INGEST_PROTOCOL": "srt"}
    config = from_environment(env)
    assert config is not None
    [stream] = config.streams
    assert stream.livepeer is not None and stream.livepeer.ingest_protocol == "srt"
    assert labels(stream).ingest_protocol == "srt"
    with pytest.raises(ConfigError, match="LIVEPEER_INGEST_PROTOCOL"):
        from_environment({**env, "LIVEPEER_INGEST_PROTOCOL": "webrtc"})
