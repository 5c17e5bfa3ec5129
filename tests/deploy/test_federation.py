"""Many regions: the shipped Prometheus examples (deploy/prometheus/*-example.yml), checked by
promtool, and run for real: two regions, each a real Prometheus scraping real monitors (one
region sharded over two processes), federated by a central Prometheus configured from
federation-example.yml. The Grafana dashboard's variables must list every region's streams
and regions there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamer.sharding import shard_of
from tests.deploy import dashboard as dash
from tests.support.ports import free_port, wait_for_port
from tests.support.prometheus import PrometheusServer

pytestmark = pytest.mark.e2e

PROM_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
FEDERATION = PROM_DIR / "federation-example.yml"
REMOTE_WRITE = PROM_DIR / "remote-write-example.yml"

# Stream names are unique across the fleet: they are the stream's identity in every view.
EU_STREAMS = ["eu-rtmp-hls", "eu-rtmps-hls", "eu-rtmp-llhls", "eu-rtmps-llhls"]
US_STREAMS = ["us-rtmp-hls"]


class ConfiguredPrometheus(PrometheusServer):
    """A real Prometheus run with a given configuration instead of the helper's own."""

    def __init__(self, workdir: Path, configuration: dict[str, Any]) -> None:
        super().__init__(workdir)
        self._configuration = configuration

    def config(self) -> dict[str, Any]:
        return self._configuration


@pytest.mark.parametrize("example", [FEDERATION, REMOTE_WRITE], ids=lambda p: p.name)
def test_examples_are_valid_prometheus_configs(example: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (Debian package prometheus)"
    result = subprocess.run(
        [promtool, "check", "config", example.name],
        cwd=PROM_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_remote_write_example_labels_the_region_and_keeps_only_streamer_series() -> None:
    config = yaml.safe_load(REMOTE_WRITE.read_text())
    assert config["global"]["external_labels"]["cluster"]
    [write] = config["remote_write"]
    [keep] = write["write_relabel_configs"]
    assert keep["action"] == "keep"
    assert keep["source_labels"] == ["__name__", "job"]
    [job] = config["scrape_configs"]
    assert job["job_name"] == "streamer"  # what rules.yml and the dashboard select


def _streams_file(path: Path, names: list[str], region: str) -> Path:
    # Nothing listens on port 1: every session fails at once, and every series exists.
    path.write_text(
        yaml.safe_dump(
            {
                "streams": [
                    {
                        "name": name,
                        "duration": "10s",
                        "grace_period": "5s",
                        "ingest_region": region,
                        "playback_region": region,
                        "ingest_url": f"rtmp://127.0.0.1:1/live/fedkey{index}",
                        "playback_url": f"http://127.0.0.1:1/hls/fedkey{index}.m3u8",
                    }
                    for index, name in enumerate(names)
                ]
            }
        )
    )
    return path


@contextmanager
def _monitors(tmp_path: Path, runs: list[tuple[Path, str | None]]) -> Iterator[list[str]]:
    """`streamer monitor --config FILE [--shard I/N]` per run; yields their targets."""
    targets: list[str] = []
    with ExitStack() as stack:
        processes = []
        for number, (config, shard) in enumerate(runs):
            port = free_port()
            log = stack.enter_context((tmp_path / f"monitor-{number}.log").open("w"))
            args = ["--config", str(config)] + (["--shard", shard] if shard else [])
            env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMER_SHARD")}
            process = subprocess.Popen(
                [sys.executable, "-m", "streamer", "monitor", *args],
                cwd=tmp_path,
                env={**env, "METRICS_ADDR": f"127.0.0.1:{port}", "LOG_FORMAT": "json"},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            processes.append(process)
            targets.append(f"127.0.0.1:{port}")
        try:
            for target in targets:
                wait_for_port(int(target.rsplit(":", 1)[1]), timeout=30)
            yield targets
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=10)


def _regional(workdir: Path, cluster: str, targets: list[str]) -> ConfiguredPrometheus:
    """A region's Prometheus as remote-write-example.yml sets it up (external label, rules,
    job streamer), scraping the monitors directly and every second, writing nowhere."""
    config = yaml.safe_load(REMOTE_WRITE.read_text())
    config["global"] = {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
        "external_labels": {**config["global"]["external_labels"], "cluster": cluster},
    }
    config["rule_files"] = [str(PROM_DIR / name) for name in config["rule_files"]]
    [job] = config["scrape_configs"]
    job.pop("dns_sd_configs")
    job["static_configs"] = [{"targets": targets}]
    config.pop("remote_write")
    return ConfiguredPrometheus(workdir, config)


def _central(workdir: Path, regions: list[str]) -> ConfiguredPrometheus:
    """The central Prometheus exactly as federation-example.yml configures it, with the
    regional Prometheus servers as targets, every second."""
    config = yaml.safe_load(FEDERATION.read_text())
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s"}
    [job] = config["scrape_configs"]
    job["static_configs"] = [{"targets": [region]} for region in regions]
    return ConfiguredPrometheus(workdir, config)


def _label_values(prom: PrometheusServer, query: str) -> set[str]:
    """What a Grafana `label_values(selector, label)` variable lists from `prom`."""
    selector, label = dash.label_values(query)
    values: list[str] = prom.api(f"label/{label}/values", {"match[]": selector})
    return set(values)


def test_a_central_prometheus_sees_every_region_and_shard(tmp_path: Path) -> None:
    eu = _streams_file(tmp_path / "eu.yaml", EU_STREAMS, "eu-west")
    us = _streams_file(tmp_path / "us.yaml", US_STREAMS, "us-east")
    assert {shard_of(name, 2) for name in EU_STREAMS} == {0, 1}, "both eu shards have streams"
    runs: list[tuple[Path, str | None]] = [(eu, "0/2"), (eu, "1/2"), (us, None)]
    with (
        _monitors(tmp_path, runs) as targets,
        _regional(tmp_path / "prom-eu", "eu-west", targets[:2]) as eu_prom,
        _regional(tmp_path / "prom-us", "us-east", targets[2:]) as us_prom,
        _central(
            tmp_path / "prom-central", [f"127.0.0.1:{eu_prom.port}", f"127.0.0.1:{us_prom.port}"]
        ) as central,
    ):
        everything = len(EU_STREAMS) + len(US_STREAMS)
        rows = central.wait_for(
            "group by (job, cluster, stream, ingest_region) (streamer_active_tests)",
            lambda r: len(r) == everything,
            timeout=45,
        )
        seen = {
            (r["metric"]["job"], r["metric"]["cluster"], r["metric"]["stream"]): r["metric"][
                "ingest_region"
            ]
            for r in rows
        }
        assert seen == {
            **{("streamer", "eu-west", name): "eu-west" for name in EU_STREAMS},
            **{("streamer", "us-east", name): "us-east" for name in US_STREAMS},
        }
        # Each stream from exactly one monitor (shard) of its region.
        per_stream = central.query("count by (stream) (streamer_active_tests)")
        assert {r["metric"]["stream"]: r["value"][1] for r in per_stream} == {
            name: "1" for name in EU_STREAMS + US_STREAMS
        }
        up = central.wait_for('up{job="streamer"} == 1', lambda r: len(r) == 3, timeout=20)
        assert {r["metric"]["cluster"] for r in up} == {"eu-west", "us-east"}
        assert not any("shard" in label for r in rows for label in r["metric"])

        # The dashboard's variables, resolved on the central Prometheus, list every region.
        variables = dash.variables(dash.load())
        everything_selected = {"stream": ".*", "region": ".*", "rendition": ".*"}
        for name, expected in (
            ("stream", set(EU_STREAMS + US_STREAMS)),
            ("region", {"eu-west", "us-east"}),
        ):
            query = dash.substitute(dash.variable_query(variables[name]), everything_selected)
            assert _label_values(central, query) == expected, name
        # The region variable follows the streams picked, whichever region they are in.
        query = dash.substitute(dash.variable_query(variables["region"]), {"stream": "us-.*"})
        assert _label_values(central, query) == {"us-east"}
        # A region picked narrows the panels to it.
        picked = central.query(
            dash.substitute(
                'sum by (ingest_region) (streamer_active_tests{stream=~"$stream", '
                'ingest_region=~"$region"})',
                {"stream": ".*", "region": "us-east"},
            )
        )
        assert [r["metric"]["ingest_region"] for r in picked] == ["us-east"]
        # Every panel query runs on the central Prometheus (PrometheusError otherwise).
        values = {
            **everything_selected,
            "window": str(variables["window"]["current"]["value"]),
        }
        for target in dash.targets(dash.load()):
            central.query(dash.substitute(target.expr, values))
