"""The `streamer` command: probe (one session), monitor (forever), origin (a local origin)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from streamer import __version__
from streamer.config import ConfigError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamer",
        description="Synthetic end-to-end monitor for live video platforms.",
    )
    parser.add_argument("--version", action="version", version=f"streamer {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    probe = commands.add_parser("probe", help="run one test session and report")
    probe.add_argument("--ingest-url", required=True, help="rtmp[s]://host/app/STREAM_KEY")
    probe.add_argument("--playback-url", required=True, help="HLS master or media playlist")
    probe.add_argument("--duration", default="30s", help="session length (default 30s)")
    probe.add_argument("--json", action="store_true", help="print only the JSON report")
    probe.add_argument("--name", default="probe", help="stream name in the report")
    probe.add_argument("--region", default="unknown", help="region label")
    probe.add_argument("--startup-timeout", default="30s")
    probe.add_argument("--expected-renditions", type=int, default=None)
    probe.add_argument("--tls-ca-file", default=None, help="CA bundle for RTMPS ingest")

    monitor = commands.add_parser("monitor", help="run test sessions forever, export metrics")
    monitor.add_argument("--config", default=None, help="YAML streams file")
    monitor.add_argument("--metrics-addr", default=None, help="host:port (default :9090)")

    origin = commands.add_parser("origin", help="a local RTMP->HLS origin with a ladder")
    origin.add_argument("--rtmp-port", type=int, default=1935)
    origin.add_argument("--http-port", type=int, default=8080)
    origin.add_argument("--host", default="127.0.0.1")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
        return 130


def print_json(document: object) -> None:
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
    sys.stdout.flush()
