"""How fast the machine is, moment by moment: a fixed piece of work, timed all along a run.

CPU seconds for the same work are not a constant on a shared virtual machine: the same
Python code takes up to twice as long when the host's other tenants are busy (no steal
time shows it). Two `make bench` runs on an idle machine of the same kind differed by 15
to 40 % in CPU per stream-minute, the ffmpeg baseline included. So the density benchmark
runs this probe beside everything it measures:

    python -m benchmarks.speed OUT_FILE

times one fixed chunk of interpreter work (build a dict, JSON round trip, sort: what the
monitor's event loop does most) every `EVERY` seconds, in its own process, and appends
`wall_time thread_cpu_ms` lines to OUT_FILE until it is stopped. It costs about 2 % of a
core. A window's speed is the mean chunk time inside it (chunk times are bimodal, about
3 and 5 ms here, as if a sibling hyperthread were busy or not: a median jumps between
the two, a mean follows the mix, and halved the draw-to-draw spread of CPU per
stream-minute in a 4-minute N=50 run against the raw figure); the run's reference is the
chunk time the machine reached at its fastest (2nd percentile over the whole run: the
hardware's own speed, which two runs share even when one was slow throughout). A CPU
figure is then normalised to the reference: `cpu_seconds * reference / window_mean`,
"CPU seconds as this machine spends them at its full speed". The raw figures stay in the
JSON beside the normalised ones.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.usage import Usage

EVERY = 0.25  # seconds between chunks
CHUNK_KEYS = 6000  # about 3-5 ms of CPU per chunk on this class of machine
REFERENCE_QUANTILE = 0.02


def _chunk() -> int:
    table = {str(i): i * 3 for i in range(CHUNK_KEYS)}
    decoded: dict[str, int] = json.loads(json.dumps(table))
    return sum(sorted(decoded.values(), reverse=True)[:1000])


def _probe(out: Path) -> None:
    with open(out, "a", buffering=1) as handle:
        while True:
            started = time.thread_time()
            _chunk()
            spent_ms = (time.thread_time() - started) * 1000
            handle.write(f"{time.time():.3f} {spent_ms:.3f}\n")
            time.sleep(EVERY)


@dataclass(frozen=True)
class Sample:
    at: float  # wall clock
    chunk_ms: float


class SpeedProbe:
    """The probe process and what it wrote."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> SpeedProbe:
        self.out.unlink(missing_ok=True)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.speed", str(self.out)],
            cwd=Path(__file__).resolve().parent.parent,
        )
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait()
            self._process = None

    def samples(self) -> list[Sample]:
        if not self.out.exists():
            return []
        out = []
        for line in self.out.read_text().splitlines():
            fields = line.split()
            if len(fields) == 2:
                out.append(Sample(float(fields[0]), float(fields[1])))
        return out


def window_ms(samples: list[Sample], start: float, end: float) -> float | None:
    """The mean chunk time between `start` and `end` (wall clock); None without samples."""
    inside = [s.chunk_ms for s in samples if start <= s.at <= end]
    return statistics.fmean(inside) if inside else None


def reference_ms(samples: list[Sample]) -> float | None:
    """The chunk time of the machine at its fastest over the run."""
    if len(samples) < 10:
        return None
    ordered = sorted(s.chunk_ms for s in samples)
    return ordered[int(len(ordered) * REFERENCE_QUANTILE)]


def normalised(cpu_seconds: float, window: float | None, reference: float | None) -> float:
    """`cpu_seconds` at the reference speed (unchanged when the speed is unknown)."""
    if window is None or reference is None or window <= 0:
        return cpu_seconds
    return cpu_seconds * reference / window


@dataclass(frozen=True)
class Speed:
    """What the probe saw over a run, applied to the windows measured in it."""

    samples: list[Sample]

    @property
    def reference_ms(self) -> float | None:
        return reference_ms(self.samples)

    def chunk_ms(self, usage: Usage) -> float | None:
        return window_ms(self.samples, usage.started_at, usage.ended_at)

    def cpu_seconds(self, usage: Usage) -> float:
        """The window's CPU seconds at the run's reference speed."""
        return normalised(usage.cpu_seconds, self.chunk_ms(usage), self.reference_ms)

    def cores(self, usage: Usage) -> float:
        return self.cpu_seconds(usage) / usage.window_seconds

    def per_stream_minute(self, usage: Usage, n: int) -> float:
        return self.cpu_seconds(usage) / (n * usage.window_seconds / 60)


if __name__ == "__main__":
    _probe(Path(sys.argv[1]))
