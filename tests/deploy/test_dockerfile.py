"""The Dockerfile and .dockerignore. No Docker engine runs here, so the file is read as
Docker reads it, the build context is checked against .dockerignore, and the HEALTHCHECK
command is run for real against a local /healthz."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Instruction:
    stage: int
    name: str
    args: str


def instructions() -> list[Instruction]:
    lines: list[str] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    result: list[Instruction] = []
    stage = -1
    for line in lines:
        name, _, args = line.partition(" ")
        name = name.upper()
        if name == "FROM":
            stage += 1
        result.append(Instruction(stage, name, args.strip()))
    return result


INSTRUCTIONS = instructions()
FINAL = max(i.stage for i in INSTRUCTIONS)


def final(name: str) -> list[Instruction]:
    return [i for i in INSTRUCTIONS if i.stage == FINAL and i.name == name]


def test_multi_stage_on_python_slim() -> None:
    args = {
        i.args.split("=", 1)[0]: i.args.split("=", 1)[1]
        for i in INSTRUCTIONS
        if i.name == "ARG" and i.stage == -1 and "=" in i.args
    }
    froms = [i.args for i in INSTRUCTIONS if i.name == "FROM"]
    assert len(froms) == 2
    assert re.fullmatch(r"\$\{PYTHON_IMAGE\} AS build", froms[0], re.IGNORECASE)
    assert froms[1] == "${PYTHON_IMAGE}"
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    build_runs = " ".join(i.args for i in INSTRUCTIONS if i.stage == 0 and i.name == "RUN")
    assert re.search(r"pip wheel .*\s\.$", build_runs), "stage 1 builds wheels of the project"
    install = " ".join(i.args for i in final("RUN"))
    assert "pip install --no-index" in install, "stage 2 installs only the built wheels"
    assert "from=build" in install


def test_no_system_ffmpeg_or_curl() -> None:
    for i in INSTRUCTIONS:
        if i.name == "RUN":
            assert "ffmpeg" not in i.args, "PyAV wheels carry FFmpeg"
            assert "curl" not in i.args


def test_runs_as_a_non_root_user() -> None:
    [user] = final("USER")
    name = user.args.split(":")[0]
    assert name not in {"root", "0"}
    assert name.isdigit(), "a numeric uid lets Kubernetes' runAsNonRoot verify it"
    # The chart's pod securityContext uses the same uid.
    values = (ROOT / "deploy/helm/streamer/values.yaml").read_text()
    assert f"runAsUser: {name}" in values


def test_runtime_settings() -> None:
    env = " ".join(i.args for i in final("ENV"))
    assert re.search(r"\bSTREAMER_CACHE_DIR=/cache\b", env)
    assert [json.loads(i.args) for i in final("VOLUME")] == [["/cache"]]
    assert [i.args for i in final("EXPOSE")] == ["9090"]
    assert [json.loads(i.args) for i in final("ENTRYPOINT")] == [["streamer"]]
    assert [json.loads(i.args) for i in final("CMD")] == [["monitor"]]
    # The cache is writable by the runtime user.
    runs = " ".join(i.args for i in final("RUN"))
    assert "chown streamer:streamer /cache" in runs
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "streamer" in scripts, "ENTRYPOINT needs the `streamer` console script"


# --- HEALTHCHECK, run for real --------------------------------------------------------------


def healthcheck_command() -> list[str]:
    [check] = final("HEALTHCHECK")
    options, _, command = check.args.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv: list[str] = json.loads(command)
    assert argv[0] == "python", "slim images have no curl: python's urllib does the check"
    assert "urllib" in argv[-1] and "/healthz" in argv[-1]
    return argv


@contextmanager
def healthz_server(status: int) -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/healthz" else 404)
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"stuck")

        def log_message(self, fmt: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def run_healthcheck(port: int) -> int:
    argv = healthcheck_command()
    result = subprocess.run(
        [sys.executable, *argv[1:]],
        env={"METRICS_ADDR": f"0.0.0.0:{port}"},
        capture_output=True,
        timeout=30,
        check=False,
    )
    return result.returncode


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_follows_healthz(status: int, healthy: bool) -> None:
    with healthz_server(status) as port:
        assert (run_healthcheck(port) == 0) is healthy


def test_healthcheck_fails_when_nothing_listens() -> None:
    assert run_healthcheck(free_port()) != 0


# --- build context ------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def excluded(path: str) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; a pattern matching a
    parent folder matches everything in it."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(p) for p in prefixes):
            result = not negate
    return result


def test_build_context_has_what_the_build_copies() -> None:
    sources = [
        src
        for i in INSTRUCTIONS
        if i.name == "COPY" and "--from" not in i.args
        for src in i.args.split()[:-1]
    ]
    assert {"pyproject.toml", "README.md", "src"} <= set(sources)
    for src in sources:
        assert not excluded(src), f"{src} is copied but .dockerignore excludes it"
    assert not excluded("src/streamer/cli.py")


@pytest.mark.parametrize(
    "path", [".env", ".venv/bin/python", ".git/config", "tests/conftest.py", "deploy/x.yml"]
)
def test_build_context_leaves_out_secrets_and_bulk(path: str) -> None:
    assert excluded(path)


def test_pycache_is_left_out() -> None:
    assert excluded("src/streamer/__pycache__/cli.cpython-311.pyc")
