"""The alert state file: per stream, the failure streak and the firing alert, across restarts.

A monitor restarted while a stream's alert fires must resolve that alert on the next
success and must not trigger it a second time; without this file it would forget both.

JSON, replaced atomically (written to a temp file in the same folder, then renamed), so a
reader never sees half a file. Only streams that are not clean (failures in a row, or
firing) are stored. Several monitors may share one file (one per shard on a host, say):
each rewrites only the stream that changed, under an advisory lock, and keeps the others'.
A corrupt or unreadable file is logged and ignored; alerting then starts clean, it never
crashes the monitor.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

_log = logging.getLogger(__name__)

STATE_FILE_NAME = "alert-state.json"
MAX_AGE_SECONDS = 30 * 24 * 3600.0  # entries of streams no longer monitored are dropped
_MAX_FILE_BYTES = 16 * 1024 * 1024


class StoredCheck(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str
    rendition: str | None = None
    detail: str = ""


class StoredStream(BaseModel):
    """What alerting must remember about one stream."""

    model_config = ConfigDict(frozen=True)

    ingest_region: str
    playback_region: str
    consecutive_failures: int = Field(ge=0)
    since: float | None = None  # epoch seconds of the first failure of the streak
    firing_at: float | None = None  # None: not firing
    firing_checks: tuple[StoredCheck, ...] = ()  # what the firing alert named
    updated_at: float


class _StateDocument(BaseModel):
    version: Literal[1] = 1
    streams: dict[str, StoredStream] = Field(default_factory=dict)


def default_state_path(env: Mapping[str, str]) -> Path:
    """`alert-state.json` in the clip cache folder: the one writable place the container has,
    a volume in docker-compose."""
    configured = env.get("STREAMER_CACHE_DIR", "").strip()
    if configured:
        return Path(configured) / STATE_FILE_NAME
    cache_home = env.get("XDG_CACHE_HOME", "").strip()
    base = Path(cache_home) if cache_home else Path.home() / ".cache"
    return base / "streamer" / STATE_FILE_NAME


class AlertStateFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._save_failing = False

    def load(self) -> dict[str, StoredStream]:
        """The stored streams; empty (and a warning logged) if the file cannot be used."""
        try:
            return self._read()
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            _log.warning(
                "alert state file %s ignored, alerting starts clean: %s", self.path, _reason(exc)
            )
            return {}

    def save(self, stream: str, entry: StoredStream | None, now: float) -> None:
        """Stores (or, with None, forgets) one stream's entry; keeps every other stream's."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._locked():
                try:
                    streams = self._read()
                except (OSError, ValueError):
                    streams = {}  # unusable: reported by load(), replaced now
                if entry is None:
                    streams.pop(stream, None)
                else:
                    streams[stream] = entry
                kept = {
                    name: stored
                    for name, stored in streams.items()
                    if now - stored.updated_at <= MAX_AGE_SECONDS
                }
                self._write(_StateDocument(streams=kept))
        except OSError as exc:
            if not self._save_failing:  # once per run of failures, not once per session
                _log.warning(
                    "cannot save the alert state to %s (%s): a restart will forget it",
                    self.path,
                    _reason(exc),
                )
            self._save_failing = True
            return
        if self._save_failing:
            _log.info("alert state saved to %s again", self.path)
            self._save_failing = False

    def _read(self) -> dict[str, StoredStream]:
        with self.path.open("rb") as file:
            raw = file.read(_MAX_FILE_BYTES + 1)
        if len(raw) > _MAX_FILE_BYTES:
            raise ValueError(f"larger than {_MAX_FILE_BYTES} bytes")
        try:
            document = _StateDocument.model_validate_json(raw)
        except ValidationError as exc:
            errors = exc.errors()
            if any(e["type"] == "json_invalid" for e in errors):
                raise ValueError("not valid JSON") from None
            # pydantic's own text quotes the input: name the failing fields only.
            where = ", ".join(".".join(map(str, e["loc"])) or "document" for e in errors)
            raise ValueError(f"not a streamer alert state file ({where[:200]})") from None
        return dict(document.streams)

    def _write(self, document: _StateDocument) -> None:
        fd, tmp_name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(document.model_dump_json(indent=1))
                # No fsync: this guards against process restarts, which keep the page cache;
                # a file torn by a power cut is detected on load and ignored.
            os.replace(tmp_name, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc)
