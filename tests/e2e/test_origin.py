"""`streamer origin`, the embedded local origin, run as the monitor runs it: a child process.

Publishers: streamer's own probe (the acceptance test, twice in a row on one origin) and
Debian's ffmpeg CLI (an independent RTMP client).
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import av
import m3u8
import numpy as np
import psutil
import pytest

from streamer.origin.relay import RETAIN_AFTER_END_S, RejectedError, stream_key
from streamer.origin.rtmp_chunks import COMMANDS, ChunkError, ChunkReader
from streamer.publish import amf0, rtmp
from streamer.testsignal import timecode
from streamer.testsignal.clip import Clip
from tests.support.embedded_origin import (
    Origin,
    ffmpeg_publish,
    get,
    stop_origin,
    wait_for,
)
from tests.support.ports import free_port, wait_for_port

pytestmark = pytest.mark.e2e

KEY = "k1origin-secret-key"  # long enough that the masked form keeps 4 characters


class LatencySampler:
    """Requests /healthz back to back in a thread; the slowest answer tells responsiveness."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._stop = threading.Event()
        self.samples: list[float] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LatencySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            assert get(self._url).status == 200
            self.samples.append(time.monotonic() - started)
            time.sleep(0.02)


def run_probe(origin: Origin, key: str) -> dict[str, object]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamer",
            "probe",
            "--ingest-url",
            origin.ingest_url(key),
            "--playback-url",
            origin.url(f"/hls/{key}/index.m3u8"),
            "--duration",
            "12s",
            "--json",
        ],
        capture_output=True,
        timeout=90,
        check=False,
    )
    document: dict[str, object] = json.loads(result.stdout)
    return document


def test_probe_succeeds_twice_in_a_row_on_one_origin(origin: Origin) -> None:
    reports = []
    with LatencySampler(origin.url("/healthz")) as sampler:
        for _ in range(2):
            reports.append(run_probe(origin, KEY))
    for report in reports:
        assert report["outcome"] == "success", report["errors"]
        renditions = report["renditions"]
        assert isinstance(renditions, list)
        assert sorted(r["resolution"] for r in renditions) == ["256x144", "640x360"]
        assert all(r["segments"] >= 3 for r in renditions), renditions
        assert all(r["segment_duration_seconds"]["max"] <= 2.1 for r in renditions)
        startup = report["startup_latency_seconds"]
        assert isinstance(startup, float) and startup < 4.0
    # The HTTP server answers promptly while FFmpeg listens, demuxes and transcodes.
    samples = sorted(sampler.samples)
    assert len(samples) > 100
    assert samples[int(len(samples) * 0.95)] < 0.1, samples[-10:]
    assert samples[-1] < 1.0, samples[-10:]
    log = origin.log()
    assert log.count("publisher connected: key k1or****") == 2
    assert log.count("publisher disconnected: key k1or****") == 2
    assert KEY not in log


def test_ffmpeg_publish_gives_a_ladder_with_a_master_playlist(origin: Origin, clip: Clip) -> None:
    key = "ffmpeg-key-0001"
    # Port checks and strangers must not get in a publisher's way.
    wait_for_port(origin.rtmp_port)
    with socket.create_connection(("127.0.0.1", origin.rtmp_port)) as stranger:
        stranger.sendall(b"GET / HTTP/1.0\r\n\r\n")
    assert get(origin.url(f"/hls/{key}/index.m3u8")).status == 404

    publisher = ffmpeg_publish(clip, origin.ingest_url(key), seconds=7)
    wait_for(lambda: get(origin.url(f"/hls/{key}/index.m3u8")).status == 200, timeout=10)
    # A second publisher on a key that is live is turned away; the first goes on.
    with ffmpeg_publish(clip, origin.ingest_url(key), seconds=3) as intruder:
        assert intruder.wait(timeout=15) != 0
    _, errors = publisher.communicate(timeout=30)
    assert publisher.returncode == 0, errors

    master = get(origin.url(f"/hls/{key}/index.m3u8"))
    assert master.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert master.headers["Cache-Control"] == "no-cache"
    variants = m3u8.loads(master.body.decode()).playlists
    assert sorted(v.stream_info.resolution for v in variants) == [(256, 144), (640, 360)]
    for variant in variants:
        assert variant.stream_info.bandwidth > 0
        assert variant.stream_info.codecs.startswith("avc1.")
        assert "mp4a.40.2" in variant.stream_info.codecs
        check_rendition(origin, key, variant.uri, variant.stream_info.resolution)

    assert get(origin.url(f"/hls/{key}/360p/nope.ts")).status == 404
    assert get(origin.url("/hls/%2e%2e/%2e%2e/etc/passwd")).status == 404
    assert get(origin.url(f"/hls/{key}/index.m3u8.tmp")).status == 404
    wait_for(lambda: "publisher disconnected: key ffmp****" in origin.log(), timeout=5)
    assert "rejected: stream key ffmp**** is already publishing" in origin.log()


def check_rendition(origin: Origin, key: str, uri: str, size: tuple[int, int]) -> None:
    response = get(origin.url(f"/hls/{key}/{uri}"))
    assert response.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    playlist = m3u8.loads(response.body.decode())
    assert playlist.is_endlist  # finalized when the publisher left
    assert len(playlist.segments) >= 3
    # Segments follow the publisher's 2 s GOP (the last one may be shorter).
    assert all(abs(s.duration - 2.0) < 0.05 for s in playlist.segments[:-1])
    base = uri.rsplit("/", 1)[0]
    segment = get(origin.url(f"/hls/{key}/{base}/{playlist.segments[1].uri}"))
    assert segment.headers["Content-Type"] == "video/mp2t"
    assert segment.headers["Cache-Control"] == "no-cache"
    assert_timecodes_readable(segment.body, size)


def assert_timecodes_readable(ts: bytes, size: tuple[int, int]) -> None:
    with av.open(io.BytesIO(ts), "r", format="mpegts") as container:
        frames = list(container.decode(video=0))
        assert container.streams.audio, "audio is copied into every rendition"
    assert frames and (frames[0].width, frames[0].height) == size
    assert frames[0].key_frame  # every segment starts on a keyframe
    numbers = [timecode.read(f.to_ndarray(format="gray").astype(np.uint8)) for f in frames]
    first = numbers[0]
    assert first is not None and None not in numbers, numbers
    assert numbers == list(range(first, first + len(numbers)))


def test_sigterm_while_publishing_exits_promptly(origin: Origin, clip: Clip) -> None:
    with ffmpeg_publish(clip, origin.ingest_url("sigterm-key"), seconds=30) as publisher:
        try:
            wait_for(lambda: "publisher connected" in origin.log(), timeout=10)
            time.sleep(1)
            assert stop_origin(origin) < 3.0
            assert origin.process.returncode == 0
            assert publisher.wait(timeout=10) is not None  # its ingest went away
        finally:
            if publisher.poll() is None:
                publisher.kill()
    log = origin.log()
    assert "stopping" in log
    files = re.search(r"HLS files in (\S+)", log)
    assert files is not None and not Path(files.group(1)).exists()  # nothing left behind


def test_sigterm_when_idle_exits_promptly(origin: Origin) -> None:
    assert stop_origin(origin) < 2.0
    assert origin.process.returncode == 0


def publisher_messages(stream_name: str, chunk_size: int) -> list[bytes]:
    """What an RTMP publisher sends after the handshake up to `publish`, as streamer's own
    client frames it: Set Chunk Size, connect, createStream, publish."""
    command = rtmp.COMMAND_AMF0
    return [
        rtmp.chunk_message(2, rtmp.SET_CHUNK_SIZE, 0, 0, struct.pack(">I", chunk_size), 128),
        rtmp.chunk_message(
            3, command, 0, 0, amf0.encode("connect", 1.0, {"app": "live"}), chunk_size
        ),
        rtmp.chunk_message(3, command, 0, 0, amf0.encode("createStream", 2.0, None), chunk_size),
        rtmp.chunk_message(
            8, command, 0, 1, amf0.encode("publish", 0.0, None, stream_name, "live"), chunk_size
        ),
    ]


@pytest.mark.parametrize("chunk_size", [16, 4096])
def test_the_front_reads_the_stream_key_from_any_chunking(chunk_size: int) -> None:
    reader = ChunkReader(COMMANDS)
    data = b"".join(publisher_messages("a-key-longer-than-a-chunk?token=x", chunk_size))
    commands = []
    for offset in range(0, len(data), 7):  # TCP may cut anywhere
        commands += [amf0.decode(m.payload) for m in reader.feed(data[offset : offset + 7])]
    assert [c[0] for c in commands] == ["connect", "createStream", "publish"]
    assert commands[0][2] == {"app": "live"}
    assert commands[2][3] == "a-key-longer-than-a-chunk?token=x"
    assert stream_key("a-key-longer-than-a-chunk?token=x") == "a-key-longer-than-a-chunk"
    with pytest.raises(RejectedError):
        stream_key("../etc")
    with pytest.raises(ChunkError):
        ChunkReader().feed(b"\xc5GET / HTTP/1.1\r\n")  # a continuation of nothing


# -- no transcoder before a key is accepted ---------------------------------------------------


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count")


def _handshake(port: int) -> socket.socket:
    """A client that completes the RTMP handshake and then says what the test wants."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"\x03" + bytes(1536))
    answer = b""
    while len(answer) < 1 + 2 * 1536:
        answer += sock.recv(65536)
    assert answer[0] == 3
    sock.sendall(answer[1 : 1 + 1536])  # C2
    return sock


def _commands(sock: socket.socket, count: int) -> list[list[object]]:
    """The next `count` command messages the server sends."""
    reader = ChunkReader(COMMANDS)
    found: list[list[object]] = []
    while len(found) < count:
        data = sock.recv(65536)
        assert data, "the server hung up"
        found += [amf0.decode(m.payload) for m in reader.feed(data)]
    return found


def test_no_transcoder_starts_before_a_stream_key_is_accepted(origin: Origin, clip: Clip) -> None:
    baseline = _threads(origin.process.pid)
    idle = []
    try:
        # Twenty clients that connect (the front answers them) and never publish.
        for _ in range(20):
            sock = _handshake(origin.rtmp_port)
            sock.sendall(b"".join(publisher_messages("unused", 4096)[:2]))  # up to connect
            assert _commands(sock, 1)[0][:2] == ["_result", 1.0]
            idle.append(sock)
        # A key the origin refuses: told so, and no transcoder for it either.
        sock = _handshake(origin.rtmp_port)
        sock.sendall(b"".join(publisher_messages("../../etc", 4096)))
        status = _commands(sock, 3)[-1]
        assert status[0] == "onStatus"
        assert status[3] == {
            "level": "error",
            "code": "NetStream.Publish.BadName",
            "description": "stream key must be 1-128 letters, digits, '.', '_' or '-'",
        }
        sock.close()
        assert _threads(origin.process.pid) <= baseline
        # A real publisher still gets through meanwhile, transcoded in its own thread.
        key = "accepted-key-0001"
        publisher = ffmpeg_publish(clip, origin.ingest_url(key), seconds=4)
        wait_for(lambda: get(origin.url(f"/hls/{key}/index.m3u8")).status == 200, timeout=10)
        assert _threads(origin.process.pid) > baseline
        _, errors = publisher.communicate(timeout=30)
        assert publisher.returncode == 0, errors
    finally:
        for sock in idle:
            sock.close()
    assert "rejected: stream key must be" in origin.log()


# -- a finished session's files ---------------------------------------------------------------


def test_a_finished_sessions_files_are_removed_after_a_playlists_length(
    origin: Origin, clip: Clip
) -> None:
    """Kept while viewers may still fetch the last segments; removed after: disk use stays
    bounded however many keys come and go. A key published again keeps its new files."""
    files = re.search(r"HLS files in (\S+)", origin.log())
    assert files is not None
    root = Path(files.group(1))
    again, once = "republished-key-01", "one-off-key-0002"
    with ffmpeg_publish(clip, origin.ingest_url(again), seconds=3) as first:
        assert first.wait(timeout=30) == 0
    wait_for(lambda: "publisher disconnected: key repu****" in origin.log(), timeout=5)
    ended = time.monotonic()
    # Right after the end, the last playlist and its segments are still served.
    playlist = get(origin.url(f"/hls/{again}/360p/index.m3u8"))
    assert playlist.status == 200 and b"#EXT-X-ENDLIST" in playlist.body
    segment = m3u8.loads(playlist.body.decode()).segments[-1].uri
    assert get(origin.url(f"/hls/{again}/360p/{segment}")).status == 200
    # The same key again (its old files go at once), and another key that ends soon.
    with (
        ffmpeg_publish(clip, origin.ingest_url(again), seconds=30) as second,
        ffmpeg_publish(clip, origin.ingest_url(once), seconds=3) as other,
    ):
        try:
            assert other.wait(timeout=30) == 0
            wait_for(lambda: "publisher disconnected: key one-****" in origin.log(), timeout=5)
            other_ended = time.monotonic()
            assert (root / once).is_dir()
            # Past the first session's removal time: the second session's files are intact.
            time.sleep(max(0.0, ended + RETAIN_AFTER_END_S + 2 - time.monotonic()))
            assert second.poll() is None
            live = get(origin.url(f"/hls/{again}/360p/index.m3u8"))
            assert live.status == 200 and b"#EXT-X-ENDLIST" not in live.body
            # Past the other key's removal time: its files are gone.
            wait_for(
                lambda: not (root / once).exists(), timeout=other_ended + 30 - time.monotonic()
            )
            assert time.monotonic() - other_ended >= RETAIN_AFTER_END_S - 0.5
            assert get(origin.url(f"/hls/{once}/index.m3u8")).status == 404
        finally:
            for publisher in (second, other):
                if publisher.poll() is None:
                    publisher.kill()


# -- the embedded origin, supervised by the monitor -------------------------------------------


def _health(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return answer.status, json.loads(answer.read())["detail"]
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())["detail"]


def _origin_child(monitor_pid: int) -> psutil.Process:
    children = [
        p for p in psutil.Process(monitor_pid).children() if "origin" in " ".join(p.cmdline())
    ]
    assert len(children) == 1, children
    return children[0]


def _successes(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("streamer_tests_total{") and 'outcome="success"' in line
    )


def test_the_monitor_restarts_its_embedded_origin_and_reports_it_down_meanwhile(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("INJEST_URL", "INGEST_URL")},
        "METRICS_ADDR": f"127.0.0.1:{port}",
        "DURATION": "8s",
        "GRACE_PERIOD": "2s",
        "LOG_FORMAT": "text",
    }
    with (tmp_path / "monitor.log").open("wb") as output:  # the monitor writes to its own copy
        monitor = subprocess.Popen(
            [sys.executable, "-m", "streamer", "monitor"],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, timeout=30)
        wait_for(lambda: _successes(port) >= 1, timeout=60)
        assert _health(port) == (200, "ok")
        first = _origin_child(monitor.pid)
        killed_at = time.time()
        first.kill()
        statuses: list[tuple[int, str]] = []

        def recovered() -> bool:
            statuses.append(_health(port))
            return statuses[-1][0] == 200 and len(statuses) > 1

        wait_for(recovered, timeout=30)
        down = [s for s in statuses if s[0] == 503]
        assert down and down[0][1] == "embedded origin down: killed by SIGKILL", statuses
        second = _origin_child(monitor.pid)
        assert second.pid != first.pid
        # The killed origin's files went when the new one started.
        files = re.search(r"HLS files in (\S+)", (tmp_path / "monitor.log").read_text())
        assert files is not None
        hls = Path(files.group(1))
        assert hls.is_dir()
        assert all(f.stat().st_mtime >= killed_at for f in hls.rglob("*")), killed_at
        # Back to measuring: the next sessions succeed on the restarted origin.
        after = _successes(port)
        wait_for(lambda: _successes(port) >= after + 1, timeout=60)
        assert _health(port) == (200, "ok")
        # A monitor killed outright takes its origin with it: nothing is left orphaned.
        monitor.kill()
        monitor.wait(timeout=10)
        second.wait(timeout=10)
        assert not hls.exists()
    finally:
        if monitor.poll() is None:
            monitor.kill()
            monitor.wait()
    log = (tmp_path / "monitor.log").read_text()
    assert "the embedded origin died (killed by SIGKILL): restarting it" in log
    assert "the embedded origin is back (restart 1)" in log
