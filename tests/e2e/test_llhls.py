"""LL-HLS end to end: the embedded origin's CMAF parts, measured by `streamer probe` as a
player at the live edge plays them, and played by FFmpeg's HLS demuxer (a player nobody
here wrote), which ignores the parts and must still play the segments."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time

import av
import m3u8
import numpy as np
import pytest

from streamer.testsignal import timecode
from streamer.testsignal.clip import Clip
from tests.support.embedded_origin import (
    Origin,
    Response,
    ffmpeg_publish,
    get,
    wait_for,
)

pytestmark = pytest.mark.e2e

KEY = "k1llhls-secret-key"


def held_get(url: str) -> Response:
    """A GET the server may hold (a blocking request): up to 3 target durations, 6 s."""
    return get(url, timeout=10)


def ll_url(origin: Origin, key: str, path: str = "index.m3u8") -> str:
    return origin.url(f"/hls/{key}/ll/{path}")


def test_probe_measures_the_parts_of_the_embedded_origin(origin: Origin) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamer",
            "probe",
            "--ingest-url",
            origin.ingest_url(KEY),
            "--playback-url",
            ll_url(origin, KEY),
            "--duration",
            "12s",
            "--json",
        ],
        capture_output=True,
        timeout=90,
        check=False,
    )
    report = json.loads(result.stdout)
    assert report["outcome"] == "success", report["errors"]
    renditions = report["renditions"]
    assert len(renditions) == 2
    for rendition in renditions:
        # 12 s of 1/3 s parts, joined at the live edge a GOP or so in.
        assert rendition["parts"] >= 24, rendition
        latency = rendition["part_latency_seconds"]
        # On loopback a part is downloaded within a frame or two of its last frame being
        # sent, far below a segment's latency: what LL-HLS is for.
        assert latency["p50"] < 0.4, rendition
        assert latency["p50"] < rendition["segment_latency_seconds"]["p50"], rendition
        assert rendition["segment_duration_seconds"]["max"] <= 2.1, rendition


def test_the_ll_playlist_is_well_formed_and_blocks(origin: Origin, clip: Clip) -> None:
    with ffmpeg_publish(clip, origin.ingest_url(KEY), 20) as publisher:
        wait_for(lambda: get(ll_url(origin, KEY)).status == 200, 20)
        master = m3u8.loads(get(ll_url(origin, KEY)).body.decode(), uri=ll_url(origin, KEY))
        assert [p.stream_info.resolution for p in master.playlists] == [(640, 360), (256, 144)]
        media_url = ll_url(origin, KEY, "360p/index.m3u8")
        wait_for(lambda: b"#EXTINF" in get(media_url).body, 10)
        media = m3u8.loads(get(media_url).body.decode())
        assert media.server_control.can_block_reload == "YES"
        part_target = media.part_inf.part_target
        assert media.server_control.part_hold_back >= 2 * part_target
        parts = [p for s in media.segments for p in s.parts]
        assert parts and all(p.duration <= part_target for p in parts)
        # Players switching renditions learn the other's live edge from its report.
        (report,) = media.rendition_reports
        assert report.uri == "../144p/index.m3u8" and report.last_msn >= media.media_sequence
        hinted = media.preload_hint.uri
        # The hinted part is held until it exists, then served.
        started = time.monotonic()
        answer = held_get(ll_url(origin, KEY, f"360p/{hinted}"))
        assert answer.status == 200 and answer.body[4:8] == b"moof"
        assert time.monotonic() - started < 3 * part_target + 0.5
        # A blocking reload for the segment being built returns once it is complete.
        msn = media.media_sequence + len(media.segments)
        started = time.monotonic()
        blocked = held_get(f"{media_url}?_HLS_msn={msn}")
        assert blocked.status == 200 and f"seg_{msn}.m4s" in blocked.body.decode()
        assert time.monotonic() - started < 6  # the spec: at most 3 target durations
        assert get(f"{media_url}?_HLS_msn={msn + 9}").status == 400
        publisher.communicate(timeout=30)


def test_ffmpeg_plays_the_ll_stream_as_plain_hls(origin: Origin, clip: Clip) -> None:
    with ffmpeg_publish(clip, origin.ingest_url(KEY), 20) as publisher:
        wait_for(lambda: b"#EXTINF" in get(ll_url(origin, KEY, "144p/index.m3u8")).body, 20)
        wait_for(lambda: get(ll_url(origin, KEY)).status == 200, 5)
        codes = []
        with av.open(ll_url(origin, KEY), "r", format="hls", timeout=10) as player:
            video = player.streams.video[0]
            for frame in player.decode(video):
                code = timecode.read(np.asarray(frame.to_ndarray(format="gray"), np.uint8))
                codes.append(code)
                if len(codes) >= 90:
                    break
        publisher.communicate(timeout=30)
    readable = [c for c in codes if c is not None]
    assert len(readable) >= 80
    # Consecutive clip frames: FFmpeg played the segments in order, without holes.
    steps = [b - a for a, b in itertools.pairwise(readable)]
    assert all(step in (1, 2) for step in steps), steps
