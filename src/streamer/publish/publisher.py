"""Publishes the pre-encoded clip over RTMP in real time, looped, in copy mode.

One thread per publish: PyAV's muxing is blocking. The thread sends each packet at its
real-time instant, rewrites timestamps so that they keep rising across loops, and records
the send time of every video frame in the send log.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import av

from streamer.publish.errors import PublishError
from streamer.publish.sendlog import SendLog
from streamer.signal.clip import Clip

_TIME_BASE = Fraction(1, 90_000)
# Timestamps start a little above zero: AAC priming gives the first audio packet a
# slightly negative PTS, which FLV cannot carry.
_TIMESTAMP_OFFSET = Fraction(1, 10)


@dataclass(frozen=True)
class FaultInjection:
    """Test-only publisher faults: withhold some video frames, shift audio against video."""

    skip_frames: frozenset[int] = field(default_factory=frozenset)  # absolute frame numbers
    audio_shift_seconds: float = 0.0


class Publisher:
    def __init__(
        self,
        clip: Clip,
        target_url: str,
        *,
        faults: FaultInjection | None = None,
        on_first_packet: Callable[[float], None] | None = None,
        on_done: Callable[[PublishError | None], None] | None = None,
    ) -> None:
        self._clip = clip
        self._url = target_url  # a loopback relay URL; never logged (it holds the key)
        self._faults = faults or FaultInjection()
        self._on_first_packet = on_first_packet
        self._on_done = on_done
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self.send_log = SendLog(clip.spec.frame_count, clip.spec.fps)
        self.error: PublishError | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._publish()
        except PublishError as exc:
            self.error = exc
        except (av.FFmpegError, OSError) as exc:
            if not self._stop.is_set():  # errors after a stop request are just the teardown
                self.error = PublishError(f"ingest connection failed: {_describe(exc)}")
        except Exception as exc:  # never let the thread die silently
            self.error = PublishError(f"publisher crashed: {exc.__class__.__name__}")
        finally:
            if self._on_done is not None:
                self._on_done(self.error)

    def _publish(self) -> None:
        clip = self._clip
        loop_seconds = clip.loop_seconds
        with av.open(self._url, "w", format="flv", options={"flush_packets": "1"}) as out:
            with av.open(str(clip.path)) as source:
                video = out.add_stream_from_template(source.streams.video[0])
                audio = out.add_stream_from_template(source.streams.audio[0])
            audio_shift = Fraction(self._faults.audio_shift_seconds).limit_denominator(90_000)
            start: float | None = None
            loop = 0
            while not self._stop.is_set():
                base = loop * loop_seconds + _TIMESTAMP_OFFSET
                for p in clip.packets:
                    absolute = loop * clip.spec.frame_count + p.frame if p.frame is not None else -1
                    if p.is_video and absolute in self._faults.skip_frames:
                        continue
                    shift = Fraction(0) if p.is_video else audio_shift
                    due = base + p.dts + shift
                    if start is not None:
                        delay = start + float(due - _TIMESTAMP_OFFSET) - time.time()
                        if delay > 0 and self._stop.wait(delay):
                            return
                    packet = av.Packet(p.data)
                    packet.stream = video if p.is_video else audio
                    packet.time_base = _TIME_BASE
                    packet.pts = round((base + p.pts + shift) / _TIME_BASE)
                    packet.dts = round(due / _TIME_BASE)
                    packet.duration = round(p.duration / _TIME_BASE)
                    packet.is_keyframe = p.is_keyframe
                    out.mux(packet)
                    now = time.time()
                    if start is None:
                        start = now
                        self.send_log.first_packet_at = now
                        if self._on_first_packet is not None:
                            self._on_first_packet(now)
                    if p.is_video:
                        self.send_log.record(absolute, now)
                    if self._stop.is_set():
                        return
                loop += 1


def _describe(exc: BaseException) -> str:
    if isinstance(exc, av.FFmpegError):
        with contextlib.suppress(Exception):
            return str(exc.strerror or exc.__class__.__name__)
    return exc.__class__.__name__
