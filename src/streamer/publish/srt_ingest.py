"""SRT as an ingest protocol: MPEG-TS over SRT (live mode, caller), as hardware encoders and
OBS send it."""

from __future__ import annotations

from streamer.publish import libsrt
from streamer.publish.flv import FlvClip
from streamer.publish.ingest import Ingest, IngestOptions
from streamer.publish.srt_publisher import SrtPublisher
from streamer.publish.srt_url import SRT_SCHEMES, mask_srt, parse_srt, srt_secrets
from streamer.testsignal.clip import ClipSpec
from streamer.urls import InvalidURLError


class SrtIngest:
    name = "srt"
    schemes: tuple[str, ...] = SRT_SCHEMES

    def validate(self, url: str) -> None:
        parse_srt(url)
        try:
            libsrt.library()
        except libsrt.SrtUnavailableError as exc:
            raise InvalidURLError(str(exc)) from None

    def secrets(self, url: str) -> tuple[str, ...]:
        return srt_secrets(url)

    def mask(self, url: str) -> str:
        return mask_srt(url)

    def open(self, url: str, flv: FlvClip, clip: ClipSpec, options: IngestOptions) -> Ingest:
        self.validate(url)
        return SrtPublisher(
            flv,
            clip.frame_count,
            clip.fps,
            parse_srt(url),
            connect_timeout=options.connect_timeout_seconds,
            io_timeout=options.io_timeout_seconds,
            on_link_stats=options.on_link_stats,
        )
