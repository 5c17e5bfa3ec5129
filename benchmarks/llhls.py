"""Benchmark: LL-HLS, measured to the part, against the embedded origin's LL-HLS.

One embedded origin (`streamer origin`, the LL-HLS beside its plain HLS), real sessions,
in two phases:

1. Two streams at once, no browser on the machine:
   - clean: followed directly. Each part's listed time is compared with the origin's own:
     the modification time of the first playlist version that listed it (the origin renames
     each version into place right after writing the part; a watcher thread reads every
     version, as benchmarks/truth.py does for nginx). Requests per part per rendition come
     from the follower's own counters.
   - withheld: through the chaos proxy, which stops listing new parts of one rendition for
     2 s: detection time is from when the origin listed the first withheld part to the
     `part_late` failure.
2. hls.js (pinned, headless Chromium) and streamer on one stream at once: hls.js's
   `hls.latency` (playhead behind the live edge) beside streamer's part latency (newest
   frame sent -> part downloaded). Chromium decoding video costs a core of the two: with it
   running, listed-time errors of phase 1 grew a p99 tail of 60-100 ms, hence two phases.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from pathlib import Path
from typing import Any, cast

from tests.support.chaos import ChaosProxy, FreezeParts
from tests.support.hlsjs import play_ll_hls
from tests.support.session_run import Recorder

from benchmarks.common import LABELS, clip, new_key, percentile, summary
from benchmarks.table import Figure, Target
from benchmarks.truth import read_new_version
from streamer.events import CheckFailed, FanOut, PartObserved
from streamer.origin.embedded import EmbeddedOrigin
from streamer.playback.hls import HlsPlayback
from streamer.playback.playlist import MediaPlaylist, PlaylistError, parse
from streamer.session import Session, SessionSettings

SECTION = "llhls"
RENDITIONS = {"640x360": "360p", "256x144": "144p"}  # streamer's name -> the origin's
WITHHOLD_AFTER = 8.0  # seconds after the proxy first sees the playlist
WITHHOLD_FOR = 2.0
TICK = 0.25  # the session's check tick


class PartTruth:
    """When the origin listed each part: (rendition dir, msn, index) -> playlist mtime."""

    def __init__(self, ll_dir: Path, every: float = 0.005) -> None:
        self._ll_dir = ll_dir
        self._every = every
        self.listed: dict[tuple[str, int, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PartTruth:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        last: dict[str, tuple[int, int] | None] = dict.fromkeys(RENDITIONS.values())
        while not self._stop.is_set():
            for name in RENDITIONS.values():
                version = read_new_version(self._ll_dir / name / "index.m3u8", last[name])
                if version is None:
                    continue
                last[name], mtime, body = version
                with contextlib.suppress(PlaylistError, UnicodeDecodeError):
                    playlist = parse(body.decode(), "http://origin/index.m3u8")
                    if isinstance(playlist, MediaPlaylist):
                        for part in playlist.parts:
                            self.listed.setdefault((name, *part.key), mtime)
            time.sleep(self._every)


def _settings(ingest: str, playback: str, seconds: float) -> SessionSettings:
    return SessionSettings(
        labels=LABELS,
        ingest_url=ingest,
        playback_url=playback,
        duration_seconds=seconds,
        drain_timeout_seconds=3.0,
        startup_timeout_seconds=20.0,
    )


def _parts(recorder: Recorder) -> list[PartObserved]:
    return recorder.of(PartObserved)


def _listed_errors(recorder: Recorder, truth: PartTruth) -> list[float]:
    errors = []
    joined: set[str] = set()
    for part in _parts(recorder):
        if part.rendition not in joined:  # taken from the first playlist: listed before
            joined.add(part.rendition)
            continue
        origin = truth.listed.get((RENDITIONS.get(part.rendition, ""), part.sequence, part.index))
        if origin is not None:
            errors.append(part.listed_at - origin)
    return errors


def _requests_per_part(session: Session, recorder: Recorder) -> dict[str, float]:
    playback = cast(HlsPlayback, session.playback)
    per_part = {}
    for name, follower in playback.followers.items():
        parts = sum(1 for p in _parts(recorder) if p.rendition == name)
        if not parts or follower.parts is None:
            continue
        requests = (
            follower.playlist_requests + follower.parts.hint_requests + follower.parts.part_requests
        )
        per_part[name] = requests / parts
    return per_part


def _detection(recorder: Recorder, truth: PartTruth) -> float | None:
    """From the origin listing the first part the proxy withheld to `part_late`."""
    late = [f for f in recorder.of(CheckFailed) if f.kind == "part_late" and f.rendition]
    if not late:
        return None
    failure = late[0]
    assert failure.rendition is not None
    before = [p for p in _parts(recorder) if p.rendition == failure.rendition]
    before = [p for p in before if p.listed_at < failure.at]
    if not before:
        return None
    newest = max((p.sequence, p.index) for p in before)
    name = RENDITIONS[failure.rendition]
    withheld = sorted(
        at for (r, seq, idx), at in truth.listed.items() if r == name and (seq, idx) > newest
    )
    return failure.at - withheld[0] if withheld else None


def _session(
    origin: EmbeddedOrigin, key: str, playback: str, seconds: float
) -> tuple[Session, Recorder]:
    spec, flv, _ = clip()
    recorder = Recorder()
    settings = _settings(origin.ingest_url(key), playback, seconds)
    return Session(settings, flv, spec, FanOut([recorder])), recorder


async def _accuracy_and_detection(origin: EmbeddedOrigin, seconds: float) -> dict[str, Any]:
    """Phase 1, no browser on the machine: a clean stream against the origin's own times,
    and a withheld part on another stream."""
    clean_key, withheld_key = new_key("ll"), new_key("llwithheld")
    fault = FreezeParts(
        "/ll/360p/index.m3u8", after_seconds=WITHHOLD_AFTER, for_seconds=WITHHOLD_FOR
    )
    with (
        PartTruth(origin.hls_dir / clean_key / "ll") as truth,
        PartTruth(origin.hls_dir / withheld_key / "ll") as withheld_truth,
    ):
        async with ChaosProxy(f"http://127.0.0.1:{origin.http_port}", [fault]) as proxy:
            clean_session, clean = _session(
                origin, clean_key, origin.ll_playback_url(clean_key), seconds
            )
            withheld_session, withheld = _session(
                origin,
                withheld_key,
                proxy.url(f"/hls/{withheld_key}/ll/index.m3u8"),
                WITHHOLD_AFTER + WITHHOLD_FOR + 6.0,
            )
            await asyncio.gather(clean_session.run(), withheld_session.run())
    return {
        "listed_errors": _listed_errors(clean, truth),
        "requests_per_part": _requests_per_part(clean_session, clean),
        "detection": _detection(withheld, withheld_truth),
        "clean_failures": [(f.kind, f.rendition, f.detail) for f in clean.of(CheckFailed)],
    }


async def _beside_hlsjs(origin: EmbeddedOrigin, seconds: float) -> dict[str, Any]:
    """Phase 2: streamer and hls.js on one stream at once (Chromium decoding video loads
    the machine: phase 1's timing figures are measured without it)."""
    key = new_key("llhlsjs")
    session, recorder = _session(origin, key, origin.ll_playback_url(key), seconds)

    async def player() -> dict[str, Any]:
        await asyncio.sleep(4.0)  # the master exists once every rendition has parts
        return await play_ll_hls(origin.ll_playback_url(key), settle=3.0, seconds=seconds - 12.0)

    _, hlsjs = await asyncio.gather(session.run(), player())
    latency = [p.part_latency_seconds for p in _parts(recorder) if p.part_latency_seconds]
    return {"part_latency": latency, "hlsjs": hlsjs}


async def _measure(seconds: float) -> dict[str, Any]:
    origin = EmbeddedOrigin()
    await origin.start()
    try:
        return {
            **await _accuracy_and_detection(origin, seconds),
            **await _beside_hlsjs(origin, seconds),
        }
    finally:
        await origin.stop()


def figures(result: dict[str, Any]) -> list[Figure]:
    errors = [e * 1000 for e in result["listed_errors"]]
    abs_errors = [abs(e) for e in errors]
    per_part = result["requests_per_part"]
    latency = result["part_latency"]
    hlsjs = result["hlsjs"]
    hls_latencies = sorted(hlsjs.get("latencies") or [])
    detection = result["detection"]
    note = f"{len(errors)} parts, 2 renditions"
    if result["clean_failures"]:
        note += f"; failures on the clean stream: {result['clean_failures']}"
    return [
        Figure(
            SECTION,
            "part listed-time error p50 (|listed - origin's playlist write|)",
            percentile(abs_errors, 50),
            "ms",
            Target("<=", 20),
            note=note,
            details={"signed_ms": summary(errors)},
        ),
        Figure(
            SECTION,
            "part listed-time error p99",
            percentile(abs_errors, 99),
            "ms",
            Target("<=", 60),
        ),
        Figure(
            SECTION,
            "requests per part per rendition (playlist + hint + part)",
            max(per_part.values()) if per_part else None,
            "",
            Target("<=", 2.5),
            note="worst rendition; one blocking reload and one hinted request per part is 2",
            details={"per_rendition": per_part},
        ),
        Figure(
            SECTION,
            "streamer part latency p50 (newest frame sent -> part downloaded)",
            percentile(latency, 50) if latency else None,
            "s",
            details={"summary": summary(latency)},
        ),
        Figure(
            SECTION,
            "hls.js hls.latency median, same stream (playhead behind the live edge)",
            percentile(hls_latencies, 50) if hls_latencies else None,
            "s",
            Target("<", 1.5),
            note=(
                f"hls.js {hlsjs.get('version')}, target latency {hlsjs.get('target_latency')} s,"
                f" {hlsjs.get('parts_watched')} parts, stalls {hlsjs.get('stalls')}"
            ),
        ),
        Figure(
            SECTION,
            "detection of a withheld part (origin listed it -> part_late)",
            detection,
            "s",
            # 3 x PART-TARGET after the previous part, one part sooner, plus a tick.
            Target("<=", 3 * 0.335 - 0.333 + TICK + 0.1),
        ),
    ]


async def run(workdir: Path, quick: bool = False) -> list[Figure]:
    return figures(await _measure(20.0 if quick else 24.0))
