"""Cutting a fragmented MP4 byte stream (FFmpeg's mp4 muxer, `empty_moov`) into CMAF pieces.

The muxer writes the init section (ftyp + moov) once, then one fragment (moof + mdat) per
part. `BoxStream` collects what the muxer writes and hands out each complete piece; the
video track's timing (timescale, then per fragment its decode time, duration and whether
it starts with a sync sample) is read from the boxes themselves, so that the playlist
states what the bytes hold, not what the muxer was asked for.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

_HEADER = struct.Struct(">I4s")
_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"mvex", b"moof", b"traf"})
_NON_SYNC = 0x00010000  # sample_is_non_sync_sample, in the sample flags


@dataclass(frozen=True)
class Fragment:
    data: bytes  # moof + mdat
    decode_time: int  # tfdt of the video track, in its timescale
    duration: int  # the video samples' durations summed, in the same timescale
    independent: bool  # starts with a sync sample: playable on its own


@dataclass
class _Track:
    track_id: int = 0
    timescale: int = 0
    video: bool = False
    default_duration: int = 0  # trex


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of each box in data[start:end]."""
    end = len(data) if end is None else end
    at = start
    while at + 8 <= end:
        size, kind = _HEADER.unpack_from(data, at)
        header = 8
        if size == 1:
            size = struct.unpack_from(">Q", data, at + 8)[0]
            header = 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            return
        yield kind, at + header, at + size
        at += size


class BoxStream:
    """Feed it what the muxer writes (`write`, a file-like sink); read the init section and
    each fragment as soon as it is complete."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.init: bytes | None = None
        self._init_parts: list[bytes] = []
        self._pending_moof: bytes | None = None
        self._video = _Track()
        self._tracks: dict[int, _Track] = {}
        self.fragments: list[Fragment] = []  # complete, not yet taken

    # The file-like interface PyAV writes to.
    def write(self, data: bytes) -> int:
        self._buffer += data
        self._split()
        return len(data)

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    def take(self) -> list[Fragment]:
        taken, self.fragments = self.fragments, []
        return taken

    def _split(self) -> None:
        while len(self._buffer) >= 8:
            size, kind = _HEADER.unpack_from(self._buffer, 0)
            if size == 1 and len(self._buffer) >= 16:
                size = struct.unpack_from(">Q", self._buffer, 8)[0]
            if size < 8 or len(self._buffer) < size:
                return
            box = bytes(self._buffer[:size])
            del self._buffer[:size]
            self._box(kind, box)

    def _box(self, kind: bytes, box: bytes) -> None:
        if kind in (b"ftyp", b"styp") and self.init is None:
            self._init_parts.append(box)
        elif kind == b"moov":
            self._init_parts.append(box)
            self.init = b"".join(self._init_parts)
            self._read_moov(box)
        elif kind == b"moof":
            self._pending_moof = box
        elif kind == b"mdat" and self._pending_moof is not None:
            moof, self._pending_moof = self._pending_moof, None
            decode_time, duration, independent = self._read_moof(moof)
            self.fragments.append(Fragment(moof + box, decode_time, duration, independent))

    def _read_moov(self, moov: bytes) -> None:
        for kind, start, end in boxes(moov, 8):
            if kind == b"trak":
                track = _read_trak(moov, start, end)
                self._tracks[track.track_id] = track
                if track.video and not self._video.video:
                    self._video = track
            elif kind == b"mvex":
                for inner, s, _ in boxes(moov, start, end):
                    if inner == b"trex":
                        track_id, _desc, default_duration = struct.unpack_from(">III", moov, s + 4)
                        if track_id in self._tracks:
                            self._tracks[track_id].default_duration = default_duration

    def _read_moof(self, moof: bytes) -> tuple[int, int, bool]:
        for kind, start, end in boxes(moof, 8):
            if kind != b"traf":
                continue
            timing = _read_traf(moof, start, end, self._tracks)
            if timing is not None and timing[0] == self._video.track_id:
                return timing[1:]
        return 0, 0, False

    @property
    def timescale(self) -> int:
        return self._video.timescale


def _read_trak(data: bytes, start: int, end: int) -> _Track:
    track = _Track()
    for kind, s, e in boxes(data, start, end):
        if kind == b"tkhd":
            version = data[s]
            track.track_id = struct.unpack_from(">I", data, s + (20 if version == 1 else 12))[0]
        elif kind == b"mdia":
            for inner, s2, _ in boxes(data, s, e):
                if inner == b"mdhd":
                    version = data[s2]
                    offset = s2 + (20 if version == 1 else 12)
                    track.timescale = struct.unpack_from(">I", data, offset)[0]
                elif inner == b"hdlr":
                    track.video = data[s2 + 8 : s2 + 12] == b"vide"
    return track


def _read_traf(
    data: bytes, start: int, end: int, tracks: dict[int, _Track]
) -> tuple[int, int, int, bool] | None:
    """(track id, decode time, duration, starts with a sync sample) of one traf."""
    track_id = default_duration = default_flags = decode_time = 0
    duration = 0
    independent = False
    for kind, s, _ in boxes(data, start, end):
        if kind == b"tfhd":
            flags = int.from_bytes(data[s + 1 : s + 4], "big")
            track_id = struct.unpack_from(">I", data, s + 4)[0]
            at = s + 8
            at += 8 if flags & 0x01 else 0  # base data offset
            at += 4 if flags & 0x02 else 0  # sample description index
            track = tracks.get(track_id)
            default_duration = track.default_duration if track else 0
            if flags & 0x08:
                default_duration = struct.unpack_from(">I", data, at)[0]
                at += 4
            at += 4 if flags & 0x10 else 0  # default sample size
            if flags & 0x20:
                default_flags = struct.unpack_from(">I", data, at)[0]
        elif kind == b"tfdt":
            version = data[s]
            fmt = ">Q" if version == 1 else ">I"
            decode_time = struct.unpack_from(fmt, data, s + 4)[0]
        elif kind == b"trun":
            run_duration, first_sync = _read_trun(data, s, default_duration, default_flags)
            if duration == 0:
                independent = first_sync
            duration += run_duration
    if not track_id:
        return None
    return track_id, decode_time, duration, independent


def _read_trun(data: bytes, s: int, default_duration: int, default_flags: int) -> tuple[int, bool]:
    flags = int.from_bytes(data[s + 1 : s + 4], "big")
    count = struct.unpack_from(">I", data, s + 4)[0]
    at = s + 8
    at += 4 if flags & 0x001 else 0  # data offset
    first_flags = default_flags
    if flags & 0x004:
        first_flags = struct.unpack_from(">I", data, at)[0]
        at += 4
    fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit]
    total = 0
    for index in range(count):
        sample_duration = default_duration
        for bit in fields:
            value = struct.unpack_from(">I", data, at)[0]
            at += 4
            if bit == 0x100:
                sample_duration = value
            elif bit == 0x400 and index == 0 and not flags & 0x004:
                first_flags = value
        total += sample_duration
    return total, not first_flags & _NON_SYNC
