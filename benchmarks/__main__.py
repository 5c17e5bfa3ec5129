"""`python -m benchmarks [--soak]
[--only accuracy,density,detection,verdicts,hostile,srt,llhls,webrtc]
[--quick|--full]`.

Runs the benchmarks against real servers on loopback, prints one table (figure, measured,
target, baseline, status) and writes the same figures as JSON under benchmarks/results/
(`latest.json`, `full.json` with --full, or `soak.json` with --soak; a markdown copy of
the table beside it).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from benchmarks.table import Figure, render_markdown, render_text, to_document, write_document

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT = ("accuracy", "density", "detection", "verdicts", "hostile", "srt", "llhls", "webrtc")


def _runner(
    name: str, full: bool = False
) -> Callable[[Path, bool], Coroutine[Any, Any, list[Figure]]]:
    if name == "accuracy":
        from benchmarks import accuracy

        return accuracy.run
    if name == "density":
        from benchmarks import density

        return density.run_full if full else density.run
    if name == "detection":
        from benchmarks import detection

        return detection.run
    if name == "verdicts":
        from benchmarks import verdicts

        return verdicts.run
    if name == "hostile":
        from benchmarks import hostile

        return hostile.run
    if name == "srt":
        from benchmarks import srt

        return srt.run
    if name == "llhls":
        from benchmarks import llhls

        return llhls.run
    if name == "webrtc":
        from benchmarks import webrtc

        return webrtc.run
    if name == "soak":
        from benchmarks import soak

        return soak.run
    raise SystemExit(f"unknown benchmark {name!r}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--soak", action="store_true", help="run the memory/soak benchmark")
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(DEFAULT))
    parser.add_argument("--quick", action="store_true", help="short windows (development)")
    parser.add_argument(
        "--full", action="store_true", help="density: more draws, longer windows, N=1 too"
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    names = ("soak",) if args.soak else DEFAULT
    if args.only:
        names = tuple(n.strip() for n in args.only.split(",") if n.strip())
    command = " ".join(
        ["python -m benchmarks", shlex.join(sys.argv[1:] if argv is None else argv)]
    ).strip()
    started = time.time()
    workdir = Path(tempfile.mkdtemp(prefix="streamer-bench-"))
    figures: list[Figure] = []
    failed: list[str] = []
    try:
        for name in names:
            print(f"== {name} ...", file=sys.stderr, flush=True)
            begun = time.time()
            try:
                figures.extend(asyncio.run(_runner(name, args.full)(workdir / name, args.quick)))
            except Exception:
                traceback.print_exc()
                failed.append(name)
                figures.append(
                    Figure(name, "benchmark run", None, note=f"{name} crashed: see stderr")
                )
            print(f"== {name}: {time.time() - begun:.0f} s", file=sys.stderr, flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    document = to_document(figures, command, started, {"benchmarks": list(names)})
    out = args.out or RESULTS / (
        "soak.json" if args.soak else "full.json" if args.full else "latest.json"
    )
    write_document(document, out)
    out.with_suffix(".md").write_text(
        f"`{command}` ({document['started_at']}, {document['elapsed_seconds']:.0f} s)\n\n"
        + render_markdown(figures)
        + "\n"
    )
    print(render_text(figures))
    print(f"\n{len(figures)} figures in {document['elapsed_seconds']:.0f} s; JSON: {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
