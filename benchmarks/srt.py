"""SRT ingest: SRT against RTMP into the same origin, what an SRT publisher costs, and how
much loss SRT's default latency window absorbs.

- Startup and listed latency: sessions alternate RTMP and SRT into one `streamer origin`
  (both ports, the same two-rendition ladder), so the only difference is the ingest leg.
- CPU per publisher: N SRT publishers in this process (libsrt threads included) against N
  `ffmpeg -re -c copy -f mpegts srt://` processes, each into its own FFmpeg SRT listener
  that discards what it receives (the listeners are not measured).
- Loss: sessions through a UDP relay losing a rising share of datagrams each way (10 ms
  delay each way), at libsrt's default 120 ms latency, into FFmpeg's SRT listener writing
  HLS (copy); the first loss level whose session fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
from tests.support.embedded_origin import running_origin
from tests.support.ports import free_port
from tests.support.session_run import Recorder, run_session
from tests.support.srt_origin import FfmpegSrtOrigin, is_bound_udp, srt_url
from tests.support.udp_relay import Impairment, UdpRelay

from benchmarks.common import LABELS, clip, new_key, percentile
from benchmarks.table import Figure
from benchmarks.usage import measure
from streamer.events import CheckFailed, SessionEnded
from streamer.publish.srt_publisher import SrtPublisher
from streamer.publish.srt_url import parse_srt
from streamer.session import SessionSettings

LOSS_LEVELS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)  # `make bench` time: steps of 10 %


@contextlib.contextmanager
def _origin(workdir: Path) -> Iterator[tuple[int, int, int]]:
    """`streamer origin` with RTMP and SRT; yields (rtmp, srt, http) ports."""
    workdir.mkdir(parents=True, exist_ok=True)
    with running_origin(workdir / "origin.log", srt=True) as origin:
        yield origin.rtmp_port, origin.srt_port, origin.http_port


def _startup(recorder: Recorder) -> float | None:
    ended = recorder.of(SessionEnded)
    return ended[0].startup_latency_seconds if ended else None


def _listed(recorder: Recorder) -> list[float]:
    return [
        s.listed_latency_seconds for s in recorder.segments if s.listed_latency_seconds is not None
    ]


async def _compare(workdir: Path, rounds: int, seconds: float) -> list[Figure]:
    spec, flv, _ = clip()
    startups: dict[str, list[float]] = {"rtmp": [], "srt": []}
    listed: dict[str, list[float]] = {"rtmp": [], "srt": []}
    failures: list[str] = []
    with _origin(workdir / "compare") as (rtmp_port, srt_port, http_port):
        for _ in range(rounds):
            for protocol in ("rtmp", "srt"):
                key = new_key(protocol)
                ingest = (
                    f"rtmp://127.0.0.1:{rtmp_port}/live/{key}"
                    if protocol == "rtmp"
                    else srt_url(srt_port, key)
                )
                settings = SessionSettings(
                    labels=LABELS,
                    ingest_url=ingest,
                    playback_url=f"http://127.0.0.1:{http_port}/hls/{key}/index.m3u8",
                    duration_seconds=seconds,
                )
                recorder, _ = await run_session(settings, flv, spec)
                failures.extend(
                    f"{protocol}: {e.kind} ({e.detail})" for e in recorder.of(CheckFailed)
                )
                startup = _startup(recorder)
                if startup is not None:
                    startups[protocol].append(startup)
                listed[protocol].extend(_listed(recorder))
    note = (
        f"{rounds} sessions of {seconds:g} s per protocol, alternating, one origin; "
        f"failures: {'; '.join(failures) or 'none'}"
    )
    figures = [
        Figure(
            "srt",
            "startup latency p50, SRT into the embedded origin",
            percentile(startups["srt"], 50),
            "s",
            baseline=percentile(startups["rtmp"], 50),
            baseline_label="RTMP, same origin",
            note=note,
            details={"srt": startups["srt"], "rtmp": startups["rtmp"]},
        )
    ]
    for q in (50, 95):
        figures.append(
            Figure(
                "srt",
                f"listed latency p{q}, SRT into the embedded origin",
                percentile(listed["srt"], q),
                "s",
                baseline=percentile(listed["rtmp"], q),
                baseline_label="RTMP, same origin",
            )
        )
    return figures


@contextlib.contextmanager
def _sinks(workdir: Path, count: int) -> Iterator[list[int]]:
    """`count` FFmpeg SRT listeners that discard what they receive; yields their ports."""
    ports = [free_port() for _ in range(count)]
    processes = []
    with (workdir / "sinks.log").open("ab") as log:
        for port in ports:
            processes.append(
                subprocess.Popen(
                    [
                        shutil.which("ffmpeg") or "ffmpeg",
                        "-hide_banner",
                        "-nostdin",
                        "-loglevel",
                        "error",
                        "-f",
                        "mpegts",
                        "-i",
                        f"srt://127.0.0.1:{port}?mode=listener",
                        "-c",
                        "copy",
                        "-f",
                        "null",
                        "-",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            )
    try:
        for port in ports:
            for _ in range(200):
                if is_bound_udp(port):
                    break
                time.sleep(0.02)
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _our_cpu(workdir: Path, count: int, seconds: float) -> float:
    spec, flv, _ = clip()
    with _sinks(workdir, count) as ports:
        publishers = [
            SrtPublisher(flv, spec.frame_count, spec.fps, parse_srt(srt_url(port, new_key())))
            for port in ports
        ]
        tasks = [asyncio.create_task(p.run()) for p in publishers]
        try:
            await asyncio.sleep(2.0)  # connected, TS remuxed (once), steady
            usage = await measure([psutil.Process()], seconds)
        finally:
            for publisher in publishers:
                publisher.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
    return usage.per_stream_minute(count)


async def _ffmpeg_cpu(workdir: Path, count: int, seconds: float, mp4: Path) -> float:
    with _sinks(workdir, count) as ports:
        processes = [
            subprocess.Popen(
                [
                    shutil.which("ffmpeg") or "ffmpeg",
                    "-hide_banner",
                    "-nostdin",
                    "-loglevel",
                    "error",
                    "-re",
                    "-stream_loop",
                    "-1",
                    "-i",
                    str(mp4),
                    "-c",
                    "copy",
                    "-f",
                    "mpegts",
                    f"srt://127.0.0.1:{port}?pkt_size=1316",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for port in ports
        ]
        try:
            await asyncio.sleep(2.0)
            usage = await measure([psutil.Process(p.pid) for p in processes], seconds)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    return usage.per_stream_minute(count)


async def _cpu(workdir: Path, count: int, seconds: float) -> Figure:
    workdir.mkdir(parents=True, exist_ok=True)
    _, _, mp4 = clip()
    ours = await _our_cpu(workdir, count, seconds)
    theirs = await _ffmpeg_cpu(workdir, count, seconds, mp4)
    return Figure(
        "srt",
        f"N={count}: CPU s per SRT publisher-minute",
        ours,
        "s",
        baseline=theirs,
        baseline_label="ffmpeg -re -c copy -f mpegts srt://",
        note=f"{seconds:g} s windows, publishing only (listeners not counted)",
    )


async def _loss(workdir: Path, seconds: float) -> Figure:
    spec, flv, _ = clip()
    tried: dict[str, str] = {}
    first_failure: float | None = None
    with FfmpegSrtOrigin(workdir / "loss") as origin:
        for loss in LOSS_LEVELS:
            key = new_key("loss")
            with origin.listen_srt(key) as port:
                relay = await UdpRelay(port, Impairment(loss=loss, delay_seconds=0.01)).start()
                try:
                    settings = SessionSettings(
                        labels=LABELS,
                        ingest_url=srt_url(relay.port, key),
                        playback_url=origin.playback_url(key),
                        duration_seconds=seconds,
                        connect_timeout_seconds=5,
                    )
                    recorder, _ = await run_session(settings, flv, spec)
                finally:
                    relay.close()
            kinds = sorted({e.kind for e in recorder.of(CheckFailed)})
            tried[f"{loss:.0%}"] = ", ".join(kinds) or "healthy"
            if kinds:
                first_failure = loss
                break
    return Figure(
        "srt",
        "loss each way at the first failed session (120 ms latency, 20 ms RTT)",
        None if first_failure is None else first_failure * 100,
        "%",
        note="; ".join(f"{level}: {outcome}" for level, outcome in tried.items()),
        details={"levels": tried},
    )


async def run(workdir: Path, quick: bool = False) -> list[Figure]:
    workdir.mkdir(parents=True, exist_ok=True)
    # Sized to keep `make bench` near 15 minutes: about 2 minutes here.
    figures = await _compare(workdir, rounds=1 if quick else 2, seconds=8 if quick else 10)
    count, window = (5, 10.0) if quick else (10, 10.0)
    figures.append(await _cpu(workdir / "cpu", count=count, seconds=window))
    figures.append(await _loss(workdir, seconds=6))
    return figures
