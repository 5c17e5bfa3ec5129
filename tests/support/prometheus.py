"""A real Prometheus server (the Debian `prometheus` binary) on a free loopback port.

    with PrometheusServer(tmp_path, targets=["127.0.0.1:9100"]) as prom:
        prom.wait_for('up{job="streamer"}', lambda r: bool(r) and r[0]["value"][1] == "1")
        rows = prom.query("streamer_active_tests")

It scrapes the given targets every `scrape_interval` (1 s by default) under one job,
optionally evaluates rule files, keeps its TSDB in a temp folder and is stopped on exit.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from tests.support.ports import free_port

Result = list[dict[str, Any]]


class PrometheusError(RuntimeError):
    """Prometheus did not start, or answered a query with an error."""


class PrometheusServer:
    def __init__(
        self,
        workdir: Path,
        *,
        targets: Sequence[str] = (),
        job: str = "streamer",
        rule_files: Sequence[Path] = (),
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        binary: str = "prometheus",
        start_timeout: float = 30.0,
    ) -> None:
        self.workdir = workdir
        self.targets = list(targets)
        self.job = job
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.start_timeout = start_timeout
        found = shutil.which(binary)
        if found is None:
            raise PrometheusError(
                f"{binary!r} is not installed (Debian package `prometheus`; "
                "scripts/install-deps.sh test installs it)"
            )
        self.binary = found
        self.port = 0
        self.config_file = workdir / "prometheus.yml"
        self.storage_dir = workdir / "prometheus-data"
        self.log_file = workdir / "prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        """The configuration this server runs with."""
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": self.job,
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": self.targets}],
                }
            ],
        }

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> PrometheusServer:
        if self._process is not None:
            raise PrometheusError("already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage_dir.mkdir(exist_ok=True)
        self.config_file.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        # A free port can be taken between choosing and binding: try a few.
        for _attempt in range(3):
            self.port = free_port()
            self._spawn()
            if self._wait_ready():
                return self
            self._terminate()
            if "address already in use" not in self.log_tail():
                break
        raise PrometheusError(f"Prometheus did not become ready:\n{self.log_tail()}")

    def _spawn(self) -> None:
        log = self.log_file.open("ab")
        try:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config_file}",
                    f"--storage.tsdb.path={self.storage_dir}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1d",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        finally:
            log.close()

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        return False

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def stop(self) -> None:
        self._terminate()

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # --- HTTP API ---------------------------------------------------------------------------

    def api(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET /api/v1/<path>; returns the `data` member, raises on an error status."""
        if self._process is None:
            raise PrometheusError("not running")
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        url = f"{self.url}/api/v1/{path}{query}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as err:
            # 400/422 carry the error (e.g. a PromQL parse error) in the JSON body.
            try:
                body = json.loads(err.read())
            except ValueError:
                raise PrometheusError(f"{url}: HTTP {err.code}") from err
        if body.get("status") != "success":
            raise PrometheusError(
                f"{path} failed: {body.get('errorType')}: {body.get('error')} ({params})"
            )
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> Result:
        """Instant query: the result list of a vector (one dict per series: `metric` labels and
        `value` [timestamp, "string value"]). A scalar or string result is returned as a
        one-element list with an empty `metric`."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", params)
        result = data["result"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": result}]
        rows: Result = result
        return rows

    def query_range(self, expr: str, start: float, end: float, step: float) -> Result:
        """Range query: one dict per series with `metric` and `values` [[ts, "value"], ...]."""
        data = self.api(
            "query_range",
            {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"},
        )
        rows: Result = data["result"]
        return rows

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[Result], bool] = bool,
        timeout: float = 30.0,
        interval: float = 0.5,
    ) -> Result:
        """Poll an instant query until `predicate(result)` holds; returns that result.

        Raises TimeoutError with the last result when it never does."""
        deadline = time.monotonic() + timeout
        last: Result = []
        while True:
            last = self.query(expr)
            if predicate(last):
                return last
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{expr!r} did not satisfy the predicate in {timeout}s: {last}")
            time.sleep(interval)

    def targets_health(self) -> list[dict[str, Any]]:
        """Active scrape targets with their `health` and `lastError`."""
        data = self.api("targets", {"state": "active"})
        targets: list[dict[str, Any]] = data["activeTargets"]
        return targets

    def metric_names(self) -> set[str]:
        """Every metric name in the TSDB."""
        names: list[str] = self.api("label/__name__/values")
        return set(names)


def values(result: Result) -> list[float]:
    """The float values of an instant-query result."""
    return [float(row["value"][1]) for row in result]
