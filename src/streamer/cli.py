"""The `streamer` command: probe (one session), monitor (forever), origin (a local origin)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from streamer import __version__
from streamer.config import ConfigError
from streamer.exit_codes import EXIT_INTERRUPTED, EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamer",
        description="Synthetic end-to-end monitor for live video platforms.",
    )
    parser.add_argument("--version", action="version", version=f"streamer {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    probe = commands.add_parser(
        "probe",
        help="run one test session and report",
        description="Run one test session and report. Options given beside --config override "
        "the stream file's values.",
    )
    stream = probe.add_argument_group("the stream")
    stream.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="YAML streams file: probe one of its streams as the monitor would",
    )
    stream.add_argument(
        "--stream", default=None, metavar="NAME", help="which stream of --config (if several)"
    )
    stream.add_argument(
        "--ingest-url",
        default=None,
        metavar="URL",
        help="rtmp[s]://host/app/STREAM_KEY or srt://host:port?streamid=STREAM_KEY (shown "
        "by ps: prefer --ingest-url-file or "
        "INGEST_URL in the environment)",
    )
    stream.add_argument(
        "--ingest-url-file", default=None, metavar="PATH", help="a file holding the ingest URL"
    )
    stream.add_argument(
        "--playback-url", default=None, metavar="URL", help="HLS master or media playlist"
    )
    stream.add_argument(
        "--playback-protocol",
        default=None,
        metavar="LIST",
        help="hls, webrtc, or both (hls,webrtc): each measured under its own label "
        "(default hls, or the stream file's `playback`)",
    )
    stream.add_argument(
        "--whep-url",
        default=None,
        metavar="URL",
        help="WHEP endpoint for webrtc playback (default: --playback-url)",
    )
    stream.add_argument(
        "--livepeer",
        action="store_true",
        help="Livepeer API mode: create a test stream, probe it, delete it "
        "(API key from LIVEPEER_API_KEY or LIVEPEER_API_KEY_FILE)",
    )
    stream.add_argument("--name", default=None, help="stream name in the report (default probe)")
    stream.add_argument("--region", default=None, help="region label (default unknown)")
    settings = probe.add_argument_group("the session")
    settings.add_argument(
        "--duration", default=None, help="session length (default 30s, or the stream file's)"
    )
    settings.add_argument(
        "--startup-timeout", default=None, help="time allowed to the first segment (default 30s)"
    )
    settings.add_argument("--expected-renditions", type=int, default=None)
    settings.add_argument("--tls-ca-file", default=None, help="CA bundle for RTMPS ingest")
    settings.add_argument(
        "--check",
        action="append",
        default=[],
        metavar="KIND.KEY=VALUE",
        help="a check setting, e.g. frozen_video.enabled=false or stale_playlist.factor=2 "
        "(repeatable)",
    )
    probe.add_argument("--json", action="store_true", help="print only the JSON report")

    monitor = commands.add_parser("monitor", help="run test sessions forever, export metrics")
    monitor.add_argument("--config", default=None, help="YAML streams file")
    monitor.add_argument("--metrics-addr", default=None, help="host:port (default :9090)")
    monitor.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="monitor only the streams that fall to shard I of N (I is 0-based: 0/3, 1/3, "
        "2/3); auto/N takes I from POD_INDEX or POD_NAME's ordinal (default: "
        "STREAMER_SHARD, else every stream)",
    )

    origin = commands.add_parser(
        "origin",
        help="a local origin: RTMP/SRT/WHIP in, an HLS ladder and WHEP (WebRTC) out",
        description="A local live origin. Publish to rtmp://HOST:RTMP_PORT/live/KEY, "
        "srt://HOST:SRT_PORT?streamid=KEY or over WebRTC to the WHIP endpoint "
        "http://HOST:HTTP_PORT/whip/KEY (H.264 and Opus: forwarded to WHEP as sent). "
        "Play http://HOST:HTTP_PORT/hls/KEY/index.m3u8 (LL-HLS: .../hls/KEY/ll/"
        "index.m3u8) or over WebRTC from the WHEP endpoint http://HOST:HTTP_PORT/whep/KEY.",
    )
    origin.add_argument("--rtmp-port", type=int, default=1935)
    origin.add_argument("--http-port", type=int, default=8080)
    origin.add_argument(
        "--srt-port",
        type=int,
        default=None,
        help="UDP port for SRT publishers (0: none; default 2935, skipped if taken)",
    )
    origin.add_argument("--host", default="127.0.0.1")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "probe":
            from streamer.probe import probe_command

            return probe_command(args)
        if args.command == "monitor":
            from streamer.monitor import monitor_command

            return monitor_command(args)
        from streamer.origin.server import origin_command

        return origin_command(args)
    except ConfigError as exc:
        print(f"streamer: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
