"""A fleet of `streamer monitor --shard I/N` processes on one streams file, against a real
nginx-rtmp origin: every stream is monitored by exactly one process, and growing the fleet
from 3 to 4 shards moves about a quarter of the streams, only to the new shard.

Sessions are short and segments are analysed in `keyframe` decode mode
(STREAMER_DECODE_MODE): 12 streams in three processes on a 2-core machine. What is under
test is which process plays which stream, not the checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamer.sharding import shard_of
from streamer.testsignal.clip import Clip
from tests.support.nginx import NginxOrigin
from tests.support.ports import free_port, wait_for_port

pytestmark = pytest.mark.e2e

# Regions x ladders (a source-only and a transcoded path per region): 12 stream paths. The
# names are fixed, so the assignment is too; how many move from 3 to 4 shards is measured on
# 1,000 names in tests/unit/test_sharding.py.
NAMES = [
    f"{region}-{ladder}"
    for region in ("fra", "nyc", "sin", "sao", "lon", "syd")
    for ladder in ("source", "ladder")
]
SECRET = "shardsecret"  # part of every stream key: must never reach a log or /metrics


@dataclass
class Shard:
    spec: str
    process: subprocess.Popen[str]
    port: int
    log: Path
    output: list[str] = field(default_factory=list)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def stream_series(self) -> dict[str, float]:
        """Stream label -> segments played (segment latency observations, all renditions),
        over every stream label any series of /metrics carries."""
        _, text = self.get("/metrics")
        played: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                stream = sample.labels.get("stream")
                if stream is None:
                    continue
                played.setdefault(stream, 0.0)
                if sample.name == "streamer_segment_latency_seconds_count":
                    played[stream] += sample.value
        return played

    def session_streams(self) -> set[str]:
        """Streams of the sessions this process logged."""
        lines = [json.loads(line) for line in self.output[0].splitlines() if line.startswith("{")]
        return {line["stream"] for line in lines if "session_id" in line}


def _streams_file(tmp_path: Path, origin: NginxOrigin) -> Path:
    entries = "".join(
        f"""
  - name: "{name}"
    duration: "10s"
    grace_period: "2s"
    injest_region: "{name.split("-", 1)[0]}"
    playback_region: "{name.split("-", 1)[0]}"
    injest_url: "{origin.ingest_url(f"{SECRET}{index:02d}")}"
    playback_url: "{origin.playback_url(f"{SECRET}{index:02d}")}"
"""
        for index, name in enumerate(NAMES)
    )
    path = tmp_path / "streams.yaml"
    path.write_text("streams:" + entries)
    return path


@contextmanager
def _fleet(
    tmp_path: Path, config: Path, specs: Sequence[str], *, via_env: bool = False
) -> Iterator[list[Shard]]:
    """One monitor process per shard spec (`--shard`, or STREAMER_SHARD with `via_env`)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("STREAMER_CONFIG", "INJEST_URL", "INGEST_URL", "PLAYBACK_URL")
        and not k.startswith(("STREAMER_SHARD", "POD_"))
    }
    shards: list[Shard] = []
    with ExitStack() as stack:
        for spec in specs:
            port = free_port()
            log = tmp_path / f"monitor-{spec.replace('/', 'of')}.log"
            out = stack.enter_context(log.open("w"))
            args = ["--config", str(config)]
            extra = {"STREAMER_SHARD": spec} if via_env else {}
            if not via_env:
                args += ["--shard", spec]
            process = subprocess.Popen(
                [sys.executable, "-m", "streamer", "monitor", *args],
                cwd=tmp_path,
                env={
                    **env,
                    **extra,
                    "METRICS_ADDR": f"127.0.0.1:{port}",
                    "LOG_FORMAT": "json",
                    "STREAMER_DECODE_MODE": "keyframe",
                },
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
            shards.append(Shard(spec, process, port, log))
        try:
            for shard in shards:
                wait_for_port(shard.port, timeout=30)
            yield shards
        finally:
            for shard in shards:
                if shard.process.poll() is None:
                    shard.process.terminate()
            for shard in shards:
                try:
                    shard.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    shard.process.kill()
                    shard.process.wait()
    for shard in shards:
        shard.output.append(shard.log.read_text())


def _until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.3)


def _expected(count: int) -> list[set[str]]:
    return [{name for name in NAMES if shard_of(name, count) == index} for index in range(count)]


def _assert_partition(shards: list[Shard], count: int) -> None:
    """Each process's /metrics carries exactly its own streams; together all of them, once."""
    seen = [set(shard.stream_series()) for shard in shards]
    assert seen == _expected(count)
    assert sorted(name for streams in seen for name in streams) == sorted(NAMES)


def test_three_shards_split_twelve_streams_and_a_fourth_takes_about_a_quarter(
    tmp_path: Path, clip: Clip
) -> None:
    assert clip.spec  # the clip is in the cache before the processes start
    with NginxOrigin(tmp_path / "nginx") as origin:
        config = _streams_file(tmp_path, origin)

        with _fleet(tmp_path, config, [f"{i}/3" for i in range(3)]) as fleet:
            expected = _expected(3)
            assert all(expected), "every one of the 3 shards has streams"

            def every_stream_played() -> bool:
                return all(
                    shard.stream_series().get(name, 0) > 0
                    for shard, names in zip(fleet, expected, strict=True)
                    for name in names
                )

            _until(every_stream_played, 45, "a segment of every stream played by its shard")
            # Monitored by exactly one process: its series are in that process's /metrics
            # alone, and the union covers all 12.
            _assert_partition(fleet, 3)
            for shard in fleet:
                assert shard.get("/healthz")[0] == 200
        for shard, names in zip(fleet, expected, strict=True):
            log = shard.output[0]
            assert f"shard {shard.spec} (0-based): {len(names)} of 12 streams" in log
            assert SECRET not in log
            # Sessions ran for this shard's streams, and only for them.
            assert shard.session_streams() == names

        # Four shards: a stream moves only when the new shard 3 outweighs its old one.
        before = {name: shard_of(name, 3) for name in NAMES}
        after = {name: shard_of(name, 4) for name in NAMES}
        moved = {name for name in NAMES if before[name] != after[name]}
        assert {after[name] for name in moved} == {3}
        # About a quarter (3 of 12, one binomial standard deviation either way), not all.
        assert 2 <= len(moved) <= 4, f"{len(moved)} of 12 moved; about 3 expected"

        with _fleet(tmp_path, config, [f"{i}/4" for i in range(4)], via_env=True) as fleet:
            _assert_partition(fleet, 4)
            new = fleet[3]
            _until(
                lambda: all(new.stream_series().get(name, 0) > 0 for name in moved),
                45,
                "the moved streams played by the new shard",
            )
            _assert_partition(fleet, 4)


def test_a_shard_without_streams_keeps_serving(tmp_path: Path, clip: Clip) -> None:
    assert clip.spec
    count = 40  # more shards than streams: most have none
    empty = next(i for i in range(count) if all(shard_of(n, count) != i for n in NAMES))
    with NginxOrigin(tmp_path / "nginx") as origin:
        config = _streams_file(tmp_path, origin)
        with _fleet(tmp_path, config, [f"{empty}/{count}"], via_env=True) as [shard]:
            _until(lambda: shard.get("/readyz")[0] == 200, 20, "/readyz answers 200")
            time.sleep(2.0)
            assert shard.process.poll() is None, "the pod must not exit"
            assert shard.get("/healthz")[0] == 200
            status, text = shard.get("/metrics")
            assert status == 200 and "streamer_build_info" in text
            assert shard.stream_series() == {}
    assert shard.process.returncode == 0  # stopped by SIGTERM, not by itself
    assert f"shard {empty}/{count} (0-based) has none of the 12 streams" in shard.output[0]
