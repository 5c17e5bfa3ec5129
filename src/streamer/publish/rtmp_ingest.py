"""RTMP and RTMPS as an ingest protocol: the first implementation of the ingest seam."""

from __future__ import annotations

import ssl

from streamer.publish.flv import FlvClip
from streamer.publish.ingest import Ingest, IngestOptions
from streamer.publish.publisher import Publisher
from streamer.testsignal.clip import ClipSpec
from streamer.urls import RTMP_SCHEMES, mask_ingest, parse_ingest


class RtmpIngest:
    name = "rtmp"
    schemes = tuple(RTMP_SCHEMES)

    def validate(self, url: str) -> None:
        parse_ingest(url)

    def secrets(self, url: str) -> tuple[str, ...]:
        return (parse_ingest(url).stream_key,)

    def mask(self, url: str) -> str:
        return mask_ingest(url)

    def open(self, url: str, flv: FlvClip, clip: ClipSpec, options: IngestOptions) -> Ingest:
        ingest = parse_ingest(url)
        tls = None
        if ingest.secure and options.tls_ca_file:
            tls = ssl.create_default_context(cafile=options.tls_ca_file)
        return Publisher(
            flv,
            clip.frame_count,
            clip.fps,
            ingest,
            tls_context=tls,
            connect_timeout=options.connect_timeout_seconds,
            io_timeout=options.io_timeout_seconds,
            faults=options.faults,
        )
