"""Playback protocols by name: adding one is a module and a line here."""

from __future__ import annotations

from collections.abc import Callable

from streamer.playback.base import Playback, PlaybackObserver, PlaybackOptions
from streamer.playback.fetch import Fetcher
from streamer.playback.hls import HlsPlayback
from streamer.playback.webrtc import WebRtcPlayback

PlaybackFactory = Callable[[str, Fetcher, PlaybackObserver, PlaybackOptions], Playback]

PLAYBACK_PROTOCOLS: dict[str, PlaybackFactory] = {"hls": HlsPlayback, "webrtc": WebRtcPlayback}
DEFAULT_PLAYBACK_PROTOCOL = "hls"


def open_playback(
    protocol: str,
    url: str,
    fetcher: Fetcher,
    observer: PlaybackObserver,
    options: PlaybackOptions,
) -> Playback:
    """A playback of `url` over `protocol`; KeyError for an unknown protocol (configuration
    validates the name first)."""
    return PLAYBACK_PROTOCOLS[protocol](url, fetcher, observer, options)
