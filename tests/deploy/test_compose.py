"""docker-compose.yml and .env.example, checked by the real docker-compose (v1, Debian):
`config` needs no Docker engine."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
GRAFANA_ENTRYPOINT = ROOT / "deploy" / "grafana" / "entrypoint.sh"
# Variables for compose itself, not for the monitor.
COMPOSE_VARIABLES = {"GRAFANA_ADMIN_PASSWORD", "BIND_ADDR"}

# Every variable the monitor reads (README's deployment section documents them too).
MONITOR_VARIABLES = (
    "INJEST_URL",
    "INGEST_URL",
    "PLAYBACK_URL",
    "REGION",
    "INGEST_REGION",
    "PLAYBACK_REGION",
    "STREAM_NAME",
    "DURATION",
    "GRACE_PERIOD",
    "METRICS_ADDR",
    "STREAMER_CONFIG",
    "STREAMER_CACHE_DIR",
    "LOG_FORMAT",
    "EXPECTED_RENDITIONS",
    "PLAYBACK_PROTOCOLS",
    "WHEP_URL",
    "ICE_SERVERS",
    "FREEZE_MS",
    "LIVEPEER_INGEST_PROTOCOL",
    "LIVEPEER_API_KEY",
    "LIVEPEER_API_KEY_FILE",
    "LIVEPEER_API_URL",
    "LIVEPEER_SIGNING_KEY",
    "LIVEPEER_SIGNING_KEY_FILE",
    "LIVEPEER_SIGNING_KEY_ID",
    "DISCORD_WEBHOOK_URL",
    "SLACK_WEBHOOK_URL",
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
    "PAGERDUTY_ROUTING_KEY",
    "DASHBOARD_URL",
    "ALERT_AFTER_FAILURES",
    "ALERT_STATE_FILE",
    "STATUS_MAX_SSE_CLIENTS",
)


def docker_compose() -> str:
    found = shutil.which("docker-compose")
    assert found, "docker-compose is not installed (Debian package docker-compose)"
    return found


def compose_config(project_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # A clean environment: only .env in the project folder may supply values.
    return subprocess.run(
        [docker_compose(), "-f", "docker-compose.yml", "config", *extra],
        cwd=project_dir,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(project_dir)},
        check=False,
    )


def resolved(project_dir: Path) -> dict[str, Any]:
    result = compose_config(project_dir)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def published_ports(service: dict[str, Any]) -> set[tuple[str, int, int]]:
    """(host address, published, target) of a service: v1 prints `ip:published:target/tcp`
    when an address is given, v2 a mapping."""
    ports: set[tuple[str, int, int]] = set()
    for spec in service.get("ports", []):
        if isinstance(spec, dict):
            ports.add((spec.get("host_ip", ""), int(spec["published"]), int(spec["target"])))
        else:
            host, published, target = spec.split("/")[0].rsplit(":", 2)
            ports.add((host, int(published), int(target)))
    return ports


def volume(spec: str | dict[str, Any]) -> dict[str, Any]:
    """A volume entry in long form: v1 prints `source:target[:mode]`, v2 a mapping."""
    if isinstance(spec, dict):
        return spec
    source, target = spec.split(":")[:2]
    kind = "bind" if source.startswith(("/", ".")) else "volume"
    return {"type": kind, "source": source, "target": target}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the compose project, so that a .env can be tried without touching the repo."""
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    return tmp_path


def test_compose_file_is_valid_in_the_repository() -> None:
    result = compose_config(ROOT, "-q")
    assert result.returncode == 0, result.stderr


def test_without_env_file_the_monitor_gets_empty_settings(project: Path) -> None:
    assert not (project / ".env").exists()
    result = compose_config(project, "-q")
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr  # no "variable is not set" warnings
    env = resolved(project)["services"]["monitor"]["environment"]
    # Empty means "not configured": the monitor falls back to its embedded origin.
    assert env["INJEST_URL"] == ""
    assert env["PLAYBACK_URL"] == ""
    assert env["METRICS_ADDR"] == "0.0.0.0:9090"
    assert env["STREAMER_CACHE_DIR"] == "/cache"
    assert env["DASHBOARD_URL"] == "http://localhost:3000/d/streamer"


def test_env_file_values_reach_the_monitor(project: Path) -> None:
    (project / ".env").write_text(
        "INJEST_URL=rtmp://ingest.example.test/live/abcd-efgh\n"
        "PLAYBACK_URL=https://cdn.example.test/hls/xyz/index.m3u8\n"
        "REGION=fra\n"
        "DURATION=2m\n"
        "DISCORD_WEBHOOK_URL=https://discord.example.test/api/webhooks/1/t\n"
    )
    env = resolved(project)["services"]["monitor"]["environment"]
    assert env["INJEST_URL"] == "rtmp://ingest.example.test/live/abcd-efgh"
    assert env["PLAYBACK_URL"] == "https://cdn.example.test/hls/xyz/index.m3u8"
    assert env["REGION"] == "fra"
    assert env["DURATION"] == "2m"
    assert env["DISCORD_WEBHOOK_URL"] == "https://discord.example.test/api/webhooks/1/t"
    assert env["GRACE_PERIOD"] == ""


def test_env_example_copied_as_is_is_a_valid_env_file(project: Path) -> None:
    shutil.copy(ENV_EXAMPLE, project / ".env")
    config = resolved(project)
    env = config["services"]["monitor"]["environment"]
    assert env["INJEST_URL"] == ""
    assert env["LOG_FORMAT"] == "text"
    # No admin/admin: empty means "generated on first start" (see the entrypoint tests).
    assert config["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == ""
    assert all(
        host == "127.0.0.1" for s in config["services"].values() for host, *_ in published_ports(s)
    )


def test_services_ports_and_mounts() -> None:
    config = resolved(ROOT)
    services = config["services"]
    assert set(services) == {"monitor", "prometheus", "grafana"}

    # Only on this machine by default: Prometheus and the status page have no login.
    assert published_ports(services["monitor"]) == {("127.0.0.1", 9091, 9090)}
    assert published_ports(services["prometheus"]) == {("127.0.0.1", 9090, 9090)}
    assert published_ports(services["grafana"]) == {("127.0.0.1", 3000, 3000)}
    assert Path(services["monitor"]["build"]["context"]) == ROOT
    assert services["prometheus"]["image"].startswith("prom/prometheus")
    assert services["grafana"]["image"].startswith("grafana/grafana")

    # Every bind mount's source exists in the repository.
    binds = {
        v["target"]: Path(v["source"])
        for service in services.values()
        for v in map(volume, service.get("volumes", []))
        if v["type"] == "bind"
    }
    for target, source in binds.items():
        assert source.exists(), f"{source} (mounted at {target}) is missing"
        assert ROOT in source.parents
    assert binds["/etc/prometheus/prometheus.yml"] == ROOT / "deploy/prometheus/prometheus.yml"
    assert binds["/etc/prometheus/rules.yml"] == ROOT / "deploy/prometheus/rules.yml"
    assert binds["/etc/grafana/provisioning"] == ROOT / "deploy/grafana/provisioning"

    # Grafana's dashboard provider reads the folder compose mounts the dashboards at.
    dash_target = next(t for t, s in binds.items() if s == ROOT / "deploy/grafana/dashboards")
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/streamer.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == dash_target
    grafana_env = services["grafana"]["environment"]
    assert grafana_env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert grafana_env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert grafana_env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].startswith(dash_target)

    # The clip cache is a writable volume at STREAMER_CACHE_DIR on an otherwise
    # read-only container.
    monitor = services["monitor"]
    assert monitor["read_only"] is True
    cache = [v for v in map(volume, monitor["volumes"]) if v["target"] == "/cache"]
    assert cache and cache[0]["type"] == "volume"


def test_prometheus_scrapes_the_compose_monitor() -> None:
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    [job] = [j for j in prometheus["scrape_configs"] if j["job_name"] == "streamer"]
    assert job["static_configs"][0]["targets"] == ["monitor:9090"]
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"


def test_every_monitor_variable_is_passed_and_documented() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    passed = set(compose["services"]["monitor"]["environment"])
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    for name in MONITOR_VARIABLES:
        assert name in passed, f"docker-compose.yml does not pass {name}"
        assert name in documented, f".env.example does not document {name}"
    assert documented >= COMPOSE_VARIABLES
    assert documented <= passed | COMPOSE_VARIABLES


# --- safe defaults ------------------------------------------------------------------------------


def test_bind_address_comes_from_env(project: Path) -> None:
    (project / ".env").write_text("BIND_ADDR=0.0.0.0\n")
    services = resolved(project)["services"]
    for name, published in (("monitor", 9091), ("prometheus", 9090), ("grafana", 3000)):
        [(host, port, _)] = published_ports(services[name])
        assert (host, port) == ("0.0.0.0", published)


def test_prometheus_has_no_lifecycle_api() -> None:
    # --web.enable-lifecycle serves an unauthenticated POST /-/quit and /-/reload.
    prometheus = resolved(ROOT)["services"]["prometheus"]
    assert not [arg for arg in prometheus["command"] if "lifecycle" in arg]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]


def test_grafana_admin_password_comes_from_env(project: Path) -> None:
    grafana = resolved(project)["services"]["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == ""
    (project / ".env").write_text("GRAFANA_ADMIN_PASSWORD=s3cret-Grafana-pw\n")
    grafana = resolved(project)["services"]["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "s3cret-Grafana-pw"
    # The image's own entrypoint runs behind the script that settles the password.
    script, wrapped = grafana["entrypoint"][-2:]
    assert wrapped == "/run.sh"
    mounts = {v["target"]: v for v in map(volume, grafana["volumes"])}
    assert Path(mounts[script]["source"]).name == GRAFANA_ENTRYPOINT.name


def run_grafana_entrypoint(data: Path, password: str | None) -> subprocess.CompletedProcess[str]:
    """The compose entrypoint script, run by a real POSIX shell, in front of `env`."""
    env = {"PATH": "/usr/bin:/bin", "GF_PATHS_DATA": str(data)}
    if password is not None:
        env["GF_SECURITY_ADMIN_PASSWORD"] = password
    return subprocess.run(
        ["sh", str(GRAFANA_ENTRYPOINT), "env"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def grafana_password(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    [line] = [x for x in result.stdout.splitlines() if x.startswith("GF_SECURITY_ADMIN_PASSWORD=")]
    return line.split("=", 1)[1]


def test_grafana_entrypoint_generates_a_password_once_and_never_logs_it(tmp_path: Path) -> None:
    first = run_grafana_entrypoint(tmp_path, "")
    password = grafana_password(first)
    assert re.fullmatch(r"[A-Za-z0-9]{24}", password)
    stored = tmp_path / "admin-password"
    assert stored.read_text() == password
    assert stat.S_IMODE(os.stat(stored).st_mode) == 0o600
    assert "GRAFANA_ADMIN_PASSWORD is not set" in first.stderr  # loud ...
    assert f"cat {stored}" in first.stderr  # ... says where to read it ...
    assert password not in first.stderr  # ... and does not show it
    # A restart keeps it (Grafana applies it only when it creates its database).
    assert grafana_password(run_grafana_entrypoint(tmp_path, None)) == password
    other = tmp_path / "other"
    other.mkdir()
    assert grafana_password(run_grafana_entrypoint(other, "")) != password


def test_grafana_entrypoint_takes_the_configured_password_and_refuses_admin(
    tmp_path: Path,
) -> None:
    given = run_grafana_entrypoint(tmp_path, "s3cret-Grafana-pw")
    assert grafana_password(given) == "s3cret-Grafana-pw"
    assert given.stderr == ""
    assert not (tmp_path / "admin-password").exists()
    refused = run_grafana_entrypoint(tmp_path, "admin")
    assert refused.returncode == 1
    assert "GRAFANA_ADMIN_PASSWORD=admin is refused" in refused.stderr
    assert "GF_SECURITY_ADMIN_PASSWORD" not in refused.stdout  # Grafana never started
