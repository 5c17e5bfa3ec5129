"""The playback seam: play a target like a viewer and report what was observed.

A playback protocol (HLS today; LL-HLS parts and WebRTC WHEP next) is one module whose
class implements `Playback`, registered in `playback/registry.py`. It discovers the
renditions, follows them, and hands every decoded unit (a segment today; a part or a batch
of frames later) to its observer, the session. Observations end in the same frame
placement (streamer.placement), so every check works on every path. A playback decides
nothing about health: failures of the platform are reported to the observer, which
judges them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from streamer.events import Measurement
from streamer.playback.follower import FollowerObserver
from streamer.playback.playlist import MasterPlaylist


@dataclass(frozen=True, kw_only=True)
class PlaybackOptions:
    poll_step_seconds: float = 0.05  # startup: its step bounds the first unit's listed time
    max_renditions: int = 16  # followed at most; a master may list thousands
    gop_seconds: float = 2.0  # the test signal's: a sanity check on declared durations
    startup_deadline: float = 0.0  # monotonic: until then, no answer yet is not a fault
    ice_servers: tuple[str, ...] = ()  # WebRTC: STUN/TURN URLs; none contacted by default
    freeze_ms: float = 500.0  # WebRTC: no new frame this long is a freeze


class PlaybackObserver(FollowerObserver, Protocol):
    """What a playback tells the session, beside each rendition's observations."""

    def on_rendition(
        self, name: str, resolution: str | None, codecs: str | None, bandwidth: int | None
    ) -> None:
        """A rendition is followed from now on."""
        ...

    def on_rendition_retired(self, name: str) -> None:
        """A rendition left the stream and is no longer followed."""
        ...

    def on_master(self, master: MasterPlaylist, names: list[str], at: float) -> None:
        """The renditions as the platform lists them (names as the playback gives them)."""
        ...

    def on_recovered(self, rendition: str | None, source: str) -> None:
        """A request of `source` kind succeeded again (ends a run of failures)."""
        ...

    def on_measurement(self, measurement: Measurement) -> None:
        """A transport measurement (WebRTC: connect time, a freeze, receiver stats)."""
        ...


class Playback(Protocol):
    @property
    def last_error(self) -> str | None:
        """The last answer before anything played, for a startup timeout's report."""
        ...

    async def run(self) -> None:
        """Discovers and follows the renditions until cancelled."""
        ...

    def renditions(self) -> Mapping[str, bool]:
        """The renditions followed now, each with whether the platform ended it."""
        ...

    async def wait_downloads(self) -> None:
        """Returns once every unit listed so far is downloaded and analysed."""
        ...
