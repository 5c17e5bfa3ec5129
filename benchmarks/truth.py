"""Ground truth from the origin's own files: when nginx published each playlist version.

nginx-rtmp writes a media playlist to a temporary file and renames it into place, so the
file's modification time is when that version was published (same wall clock as the
monitor's `time.time()`). A watcher thread opens every playlist of the HLS directory
often, reads the modification time and the text of the very file it opened (fstat on the
open descriptor: the time and the text always belong to the same version), and records,
for every segment, the modification time of the first version that listed it. Versions
change once per segment (2 s here), so polling every 50 ms sees each one; the timestamp
comes from the file, not from when the watcher looked.

Segment files' own modification times (when nginx closed them, right before it rewrote the
playlist) are kept as a cross-check.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from pathlib import Path

_MEDIA_SEQUENCE = re.compile(rb"^#EXT-X-MEDIA-SEQUENCE:(\d+)", re.MULTILINE)


def listed_sequences(body: bytes) -> list[int]:
    """Sequence numbers of the segments a media playlist lists, in order."""
    match = _MEDIA_SEQUENCE.search(body)
    first = int(match.group(1)) if match else 0
    count = sum(
        1 for line in body.splitlines() if line.strip() and not line.lstrip().startswith(b"#")
    )
    return list(range(first, first + count))


FileVersion = tuple[tuple[int, int], float, bytes]  # (inode, mtime_ns), mtime seconds, body


def read_new_version(path: str | Path, last_key: tuple[int, int] | None) -> FileVersion | None:
    """The file's content when it differs from the version `last_key` names, else None.

    nginx replaces a playlist by renaming a new file into place: inode and mtime together
    name a version. Reading through one open descriptor keeps content and stat consistent.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        stat = os.fstat(fd)
        key = (stat.st_ino, stat.st_mtime_ns)
        if key == last_key:
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return key, stat.st_mtime_ns / 1e9, b"".join(chunks)


class PlaylistTruth:
    """Watches `directory` for `*.m3u8` media playlists (masters are ignored)."""

    def __init__(self, directory: Path, every: float = 0.05) -> None:
        self.directory = directory
        self.every = every
        # playlist file name -> sequence -> mtime of the first version listing it
        self.first_listed: dict[str, dict[int, float]] = {}
        self.segment_mtimes: dict[str, float] = {}
        self.versions = 0
        self._seen: dict[str, tuple[int, int]] = {}  # name -> (inode, mtime_ns)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._names: set[str] | None = None

    def only(self, names: set[str]) -> PlaylistTruth:
        """Restricts watching to these playlist file names (fewer files to open)."""
        self._names = set(names)
        return self

    def start(self) -> PlaylistTruth:
        self._thread = threading.Thread(target=self._run, name="playlist-truth", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> PlaylistTruth:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def listed_at(self, playlist: str, sequence: int) -> float | None:
        return self.first_listed.get(playlist, {}).get(sequence)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.scan()
            self._stop.wait(self.every)

    def scan(self) -> None:
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return
        for entry in entries:
            name = entry.name
            if name.endswith(".m3u8"):
                if self._names is None or name in self._names:
                    self._read_playlist(entry.path, name)
            elif name.endswith(".ts") and name not in self.segment_mtimes:
                pass  # final mtime only known once closed: read below, when listed
        for name, sequences in list(self.first_listed.items()):
            stem = name.removesuffix(".m3u8")
            for sequence in list(sequences)[-3:]:
                segment = f"{stem}-{sequence}.ts"
                if segment not in self.segment_mtimes:
                    with contextlib.suppress(FileNotFoundError):
                        self.segment_mtimes[segment] = (
                            self.directory / segment
                        ).stat().st_mtime_ns / 1e9

    def _read_playlist(self, path: str, name: str) -> None:
        version = read_new_version(path, self._seen.get(name))
        if version is None:
            return
        key, mtime, body = version
        self._seen[name] = key
        if b"#EXT-X-STREAM-INF" in body or b"#EXTINF" not in body:
            return
        self.versions += 1
        listed = self.first_listed.setdefault(name, {})
        for sequence in listed_sequences(body):
            listed.setdefault(sequence, mtime)


def clock_granularity(directory: Path, samples: int = 50) -> float:
    """Largest lag of a file's mtime behind `time.time()` taken just before writing it: the
    coarseness of the kernel's file timestamps, the floor under any error measured here."""
    worst = 0.0
    probe = directory / ".mtime-probe"
    for _ in range(samples):
        before = time.time()
        probe.write_bytes(b"x")
        worst = max(worst, before - probe.stat().st_mtime_ns / 1e9)
        time.sleep(0.001)
    with contextlib.suppress(FileNotFoundError):
        probe.unlink()
    return worst
