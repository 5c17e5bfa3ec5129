"""The test clip as MPEG-TS, for ingest protocols that carry TS (SRT): remuxed once, looped
by patching timestamps.

The clip's pre-encoded H.264 and AAC are remuxed with PyAV into MPEG-TS in copy mode (no
decode), once per clip. Each video frame keeps the byte range of the TS that carries it,
so a publisher can send each frame's bytes at the frame's time and log when it left.

Looping must keep timestamps rising and the TS valid: each loop's copy gets its PTS, DTS
and PCR moved on by the loop's length and its continuity counters moved on by the packets
each PID carried in the loops before, so the receiver sees one continuous stream.
"""

from __future__ import annotations

import bisect
import io
import threading
import weakref
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt

from streamer.publish.flv import FlvClip
from streamer.testsignal.clip import AUDIO_RATE

AAC_FRAME_SAMPLES = 1024
TS_PACKET = 188
_CLOCK = 90_000  # PTS/DTS ticks per second
_WRAP = 1 << 33
_VIDEO_STREAM_IDS = range(0xE0, 0xF0)
_FLV_AUDIO, _FLV_VIDEO = 8, 9


@dataclass(frozen=True)
class TsFrame:
    frame: int  # clip frame number
    due: float  # seconds from the loop's start (decode time)
    keyframe: bool
    start: int  # byte offsets in the loop's TS: [start, end) is sent at `due`
    end: int


@dataclass(frozen=True)
class TsClip:
    data: bytes  # one loop of the clip as MPEG-TS
    frames: tuple[TsFrame, ...]
    loop_seconds: Fraction
    cc_step: npt.NDArray[np.uint8]  # per TS packet: its PID's packets per loop, mod 16
    timestamps: tuple[tuple[int, int], ...]  # (offset, kind): kind 0 PTS/DTS, 1 PCR

    def chunk(self, start: int, end: int, loop: int) -> bytes:
        """Bytes [start, end) of the TS (whole TS packets) as sent in loop `loop`."""
        raw = self.data[start:end]
        if loop == 0:
            return raw
        out = bytearray(raw)
        packets = np.frombuffer(out, dtype=np.uint8).reshape(-1, TS_PACKET)
        first = start // TS_PACKET
        steps = self.cc_step[first : first + len(packets)].astype(np.int64) * loop
        cc = packets[:, 3].astype(np.int64)
        packets[:, 3] = ((cc & 0xF0) | ((cc + steps) & 0x0F)).astype(np.uint8)
        ticks = round(self.loop_seconds * loop * _CLOCK)
        for offset, kind in _between(self.timestamps, start, end):
            at = offset - start
            if kind == 0:
                _shift_pts(out, at, ticks)
            else:
                _shift_pcr(out, at, ticks)
        return bytes(out)


def _between(items: tuple[tuple[int, int], ...], start: int, end: int) -> list[tuple[int, int]]:
    lo = bisect.bisect_left(items, (start, -1))
    hi = bisect.bisect_left(items, (end, -1))
    return list(items[lo:hi])


def _shift_pts(buf: bytearray, at: int, ticks: int) -> None:
    b = buf[at : at + 5]
    value = ((b[0] >> 1) & 0x07) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1
    value = (value + ticks) % _WRAP
    buf[at] = (b[0] & 0xF0) | ((value >> 29) & 0x0E) | 1
    buf[at + 1] = (value >> 22) & 0xFF
    buf[at + 2] = ((value >> 14) & 0xFE) | 1
    buf[at + 3] = (value >> 7) & 0xFF
    buf[at + 4] = ((value << 1) & 0xFE) | 1


def _shift_pcr(buf: bytearray, at: int, ticks: int) -> None:
    b = buf[at : at + 6]
    base = b[0] << 25 | b[1] << 17 | b[2] << 9 | b[3] << 1 | b[4] >> 7
    base = (base + ticks) % _WRAP
    buf[at] = (base >> 25) & 0xFF
    buf[at + 1] = (base >> 17) & 0xFF
    buf[at + 2] = (base >> 9) & 0xFF
    buf[at + 3] = (base >> 1) & 0xFF
    buf[at + 4] = ((base & 1) << 7) | (b[4] & 0x7F)


def _flv_file(flv: FlvClip, loop_seconds: Fraction) -> bytes:
    """The clip's FLV tags as an FLV file (what its RTMP messages carry, in a container).

    An audio frame that runs past the loop's end is left out: the next loop's first frame
    starts there, and overlapping audio timestamps would go backwards (a receiver muxing
    them clamps or drops them). The hole left is under one AAC frame (21 ms).
    """
    audio_frame = Fraction(AAC_FRAME_SAMPLES, AUDIO_RATE)
    out = bytearray(b"FLV\x01\x05\x00\x00\x00\x09" + bytes(4))

    def tag(kind: int, ms: int, body: bytes) -> None:
        header = bytes([kind]) + len(body).to_bytes(3, "big")
        header += (ms & 0xFFFFFF).to_bytes(3, "big") + bytes([(ms >> 24) & 0xFF]) + bytes(3)
        out.extend(header + body + (len(body) + 11).to_bytes(4, "big"))

    tag(_FLV_VIDEO, 0, flv.video_sequence_header)
    tag(_FLV_AUDIO, 0, flv.audio_sequence_header)
    for t in flv.tags:
        if not t.is_video and t.dts + audio_frame > loop_seconds:
            continue
        tag(_FLV_VIDEO if t.is_video else _FLV_AUDIO, round(t.dts * 1000), t.body)
    return bytes(out)


def _remux(flv: FlvClip, loop_seconds: Fraction) -> bytes:
    output = io.BytesIO()
    with (
        av.open(io.BytesIO(_flv_file(flv, loop_seconds)), "r", format="flv") as source,
        av.open(
            output,
            "w",
            format="mpegts",
            # One PES per audio frame: audio leaves with the video of the same time.
            options={"pes_payload_size": "0"},
        ) as sink,
    ):
        video_in, audio_in = source.streams.video[0], source.streams.audio[0]
        video_out = sink.add_stream_from_template(video_in)
        audio_out = sink.add_stream_from_template(audio_in)
        for packet in source.demux(video_in, audio_in):
            if packet.dts is None or packet.size == 0:
                continue
            packet.stream = video_out if packet.stream is video_in else audio_out
            sink.mux(packet)
    return output.getvalue()


def _scan(data: bytes) -> tuple[list[int], npt.NDArray[np.uint8], list[tuple[int, int]]]:
    """Offsets of video PES starts, per-packet CC steps, and timestamp fields."""
    if len(data) % TS_PACKET:
        raise ValueError("MPEG-TS output is not whole packets")
    count = len(data) // TS_PACKET
    pids = np.empty(count, dtype=np.int64)
    video_starts: list[int] = []
    timestamps: list[tuple[int, int]] = []
    for index in range(count):
        at = index * TS_PACKET
        pid = ((data[at + 1] & 0x1F) << 8) | data[at + 2]
        pids[index] = pid
        control = (data[at + 3] >> 4) & 0x3
        payload = at + 4
        if control & 0x2:
            length = data[at + 4]
            if length and data[at + 5] & 0x10:
                timestamps.append((at + 6, 1))
            payload += 1 + length
        if not data[at + 1] & 0x40 or not control & 0x1:
            continue
        if data[payload : payload + 3] != b"\x00\x00\x01":
            continue  # a table section (PAT, PMT, SDT), not a PES
        if data[payload + 3] in _VIDEO_STREAM_IDS:
            video_starts.append(at)
        flags = data[payload + 7] >> 6
        if flags & 0x2:
            timestamps.append((payload + 9, 0))
        if flags == 0x3:
            timestamps.append((payload + 14, 0))
    per_pid = {int(pid): int((pids == pid).sum()) for pid in np.unique(pids)}
    cc_step = np.array([per_pid[int(pid)] % 16 for pid in pids], dtype=np.uint8)
    return video_starts, cc_step, sorted(timestamps)


def to_ts(flv: FlvClip, frames_per_loop: int, fps: int) -> TsClip:
    """Remuxes the clip into MPEG-TS (copy) and maps every video frame to its bytes."""
    loop_seconds = Fraction(frames_per_loop, fps)
    data = _remux(flv, loop_seconds)
    video_starts, cc_step, timestamps = _scan(data)
    video = [t for t in flv.tags if t.is_video]
    if len(video) != len(video_starts):
        raise ValueError(f"{len(video)} video frames but {len(video_starts)} video PES")
    # A frame's bytes run from the end of the previous frame's to the start of the next
    # frame's PES (the audio muxed in between goes with it); the last takes the tail.
    bounds = [0, *video_starts[1:], len(data)]
    frames = tuple(
        TsFrame(
            frame=tag.frame if tag.frame is not None else index,
            due=float(tag.dts),
            keyframe=tag.is_keyframe,
            start=bounds[index],
            end=bounds[index + 1],
        )
        for index, tag in enumerate(video)
    )
    return TsClip(
        data=data,
        frames=frames,
        loop_seconds=loop_seconds,
        cc_step=cc_step,
        timestamps=tuple(timestamps),
    )


# By identity: a clip is one object per spec for the process's life, and hashing its
# thousands of tags per lookup would cost more than the lookup is worth.
_cache: dict[int, TsClip] = {}
_cache_lock = threading.Lock()


def cached_ts(flv: FlvClip, frames_per_loop: int, fps: int) -> TsClip:
    """`to_ts`, once per clip (a clip is shared by every stream of its spec). Blocking:
    call it in a worker thread."""
    with _cache_lock:
        found = _cache.get(id(flv))
        if found is None:
            found = to_ts(flv, frames_per_loop, fps)
            _cache[id(flv)] = found
            weakref.finalize(flv, _cache.pop, id(flv), None)
        return found
