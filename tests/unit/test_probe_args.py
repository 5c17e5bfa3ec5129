"""`streamer probe` arguments: the stream file, precedence, `--check`, ingest URL sources and
Livepeer API mode, resolved before any session runs. Usage errors exit 2 naming the option."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.cli import build_parser, main
from streamer.config import ConfigError, StreamConfig
from streamer.exit_codes import EXIT_USAGE
from streamer.livepeer.mode import api_mode
from streamer.probe_config import probe_stream

INGEST = "rtmp://origin.example/live/sk_probe_secret_0001"
PLAYBACK = "https://cdn.example/hls/x/index.m3u8"
URLS = ["--ingest-url", INGEST, "--playback-url", PLAYBACK]
API_KEY = "lp-api-key-never-shown-0123456789"

STREAMS = """
streams:
  - name: eu
    duration: 2m
    ingest_region: eu-west
    ingest_url: "${EU_INGEST}"
    playback_url: https://cdn.example/hls/eu/index.m3u8
    expected_renditions: 2
    checks:
      stale_playlist: {factor: 2.0}
      av_desync: {max_late_seconds: 0.2, min_count: 3}
  - name: us
    ingest_url: rtmp://us.example/live/us_key
    playback_url: https://cdn.example/hls/us/index.m3u8
  - name: lp
    duration: 45s
    livepeer:
      api_url: "${LP_API}"
      playback_policy: public
"""


def _stream(argv: list[str], env: dict[str, str] | None = None) -> StreamConfig:
    return probe_stream(build_parser().parse_args(["probe", *argv]), env or {})


def _error(argv: list[str], env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        _stream(argv, env)
    return str(caught.value)


@pytest.fixture
def streams_file(tmp_path: Path) -> Path:
    path = tmp_path / "streams.yaml"
    path.write_text(STREAMS)
    return path


FILE_ENV = {"EU_INGEST": "rtmp://eu.example/live/eu_key", "LP_API": "http://127.0.0.1:1/api"}


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """`main()` reads the process environment and the working directory's .env."""
    for name in ("INGEST_URL", "INJEST_URL", "REGION", "LIVEPEER_API_KEY", "LIVEPEER_API_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    return workdir


def _exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["probe", *argv]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


# -- defaults and precedence -----------------------------------------------------------------


def test_without_a_file_the_probe_defaults_apply() -> None:
    stream = _stream(URLS)
    assert (stream.name, stream.duration, stream.startup_timeout) == ("probe", 30.0, 30.0)
    assert stream.ingest_region == stream.playback_region == "unknown"
    assert stream.checks == {} and stream.livepeer is None


def test_the_file_stream_is_taken_as_the_monitor_loads_it(streams_file: Path) -> None:
    stream = _stream(["--config", str(streams_file), "--stream", "eu"], {**FILE_ENV, "REGION": "g"})
    assert stream.ingest_url == "rtmp://eu.example/live/eu_key"  # ${VAR} expanded
    assert stream.duration == 120.0  # the file's, not the probe's 30 s default
    assert (stream.ingest_region, stream.playback_region) == ("eu-west", "g")  # REGION as well
    assert stream.expected_renditions == 2
    assert stream.checks["stale_playlist"] == {"factor": 2.0}


def test_options_beside_the_file_override_its_values(streams_file: Path) -> None:
    stream = _stream(
        [
            *("--config", str(streams_file), "--stream", "eu"),
            *("--duration", "10s", "--name", "eu-by-hand", "--region", "lab"),
            *("--expected-renditions", "3", "--playback-url", PLAYBACK),
            *("--ingest-url", INGEST),
        ],
        FILE_ENV,
    )
    assert (stream.duration, stream.name, stream.expected_renditions) == (10.0, "eu-by-hand", 3)
    assert stream.ingest_region == stream.playback_region == "lab"
    assert (stream.ingest_url, stream.playback_url) == (INGEST, PLAYBACK)
    assert stream.checks["stale_playlist"] == {"factor": 2.0}  # untouched: no --check given


def test_a_missing_variable_of_the_stream_names_it(streams_file: Path) -> None:
    message = _error(["--config", str(streams_file), "--stream", "eu"], {"LP_API": "x"})
    assert message == "streams[0].ingest_url: environment variable EU_INGEST is not set"


def test_only_the_probed_stream_needs_its_variables(streams_file: Path) -> None:
    assert _stream(["--config", str(streams_file), "--stream", "us"], {}).name == "us"


def test_a_bad_field_in_the_file_names_the_stream_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        f"streams:\n  - name: ok\n    ingest_url: {INGEST}\n    playback_url: {PLAYBACK}\n"
        "  - name: bad\n    duration: soon\n"
    )
    message = _error(["--config", str(path), "--stream", "bad"])
    assert message.startswith("streams[1] ('bad'): duration: ")


def test_a_bad_option_beside_the_file_names_the_option(streams_file: Path) -> None:
    message = _error(
        ["--config", str(streams_file), "--stream", "us", "--duration", "soon"], FILE_ENV
    )
    assert message.startswith("--duration: ")


# -- --stream ------------------------------------------------------------------------------


def test_a_file_with_one_stream_needs_no_stream_option(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(
        f"streams:\n  - name: only\n    ingest_url: {INGEST}\n    playback_url: {PLAYBACK}\n"
    )
    assert _stream(["--config", str(path)]).name == "only"


def test_several_streams_without_stream_is_an_error_naming_them(
    streams_file: Path, clean_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = _error(["--config", str(streams_file)], FILE_ENV)
    assert message.startswith("--stream: ")
    assert all(repr(name) in message for name in ("eu", "us", "lp"))
    err = _exit_2(["--config", str(streams_file)], capsys)
    assert "--stream" in err


def test_an_unknown_stream_is_an_error_naming_the_streams(streams_file: Path) -> None:
    message = _error(["--config", str(streams_file), "--stream", "asia"], FILE_ENV)
    assert message.startswith("--stream: ") and "'asia'" in message
    assert all(repr(name) in message for name in ("eu", "us", "lp"))


def test_stream_without_config_is_an_error() -> None:
    assert _error([*URLS, "--stream", "eu"]).startswith("--stream: needs --config")


# -- --check ---------------------------------------------------------------------------------


def test_check_values_are_yaml_scalars_merged_over_the_file(streams_file: Path) -> None:
    stream = _stream(
        [
            *("--config", str(streams_file), "--stream", "eu"),
            *("--check", "frozen_video.enabled=false"),
            *("--check", "stale_playlist.factor=3"),
            *("--check", "av_desync.max_late_seconds=0.5"),
            *("--check", " segment_latency.max_seconds = 12.5"),
        ],
        FILE_ENV,
    )
    assert stream.checks == {
        "frozen_video": {"enabled": False},
        "stale_playlist": {"factor": 3},
        "av_desync": {"max_late_seconds": 0.5, "min_count": 3},  # the file's min_count kept
        "segment_latency": {"max_seconds": 12.5},
    }


def test_the_last_of_two_checks_for_one_setting_wins() -> None:
    stream = _stream(
        [*URLS, "--check", "frame_drop.min_gap_frames=1", "--check", "frame_drop.min_gap_frames=4"]
    )
    assert stream.checks == {"frame_drop": {"min_gap_frames": 4}}


@pytest.mark.parametrize(
    ("option", "reason"),
    [
        ("frozen_video=false", "expected KIND.key=value"),
        ("frozen_video.enabled", "expected KIND.key=value"),
        (".enabled=false", "expected KIND.key=value"),
        ("frozen_video.=1", "expected KIND.key=value"),
        ("no_such_check.enabled=false", "unknown check"),
        ("frozen_video.no_such_setting=1", "unknown setting"),
        ("frozen_video.min_freeze_frames=-1", "must be a number"),
        ("frozen_video.min_freeze_frames=lots", "must be a number"),
        ("frozen_video.enabled=perhaps", "enabled must be true or false"),
        ("frozen_video.min_freeze_frames=", "must be true/false, a number or a string"),
        ("frozen_video.min_freeze_frames=[1, 2]", "must be true/false, a number or a string"),
        ("frozen_video.min_freeze_frames={a: 1}", "must be true/false, a number or a string"),
        ("frozen_video.min_freeze_frames=[1", "must be true/false, a number or a string"),
    ],
)
def test_a_bad_check_exits_2_naming_the_option(
    option: str, reason: str, clean_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _exit_2([*URLS, "--check", "stale_playlist.factor=2", "--check", option], capsys)
    assert f"--check {option}: " in err
    assert reason in err
    assert "stale_playlist" not in err  # the valid option is not blamed


# -- the ingest URL --------------------------------------------------------------------------


def test_ingest_url_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "ingest"
    path.write_text(f"  {INGEST}\n")
    stream = _stream(["--ingest-url-file", str(path), "--playback-url", PLAYBACK])
    assert stream.ingest_url == INGEST


@pytest.mark.parametrize("variable", ["INGEST_URL", "INJEST_URL"])
def test_ingest_url_from_the_environment(variable: str) -> None:
    assert _stream(["--playback-url", PLAYBACK], {variable: INGEST}).ingest_url == INGEST


@pytest.mark.parametrize(
    ("argv", "env", "first", "second"),
    [
        (
            ["--ingest-url", INGEST, "--ingest-url-file", "f"],
            {},
            "--ingest-url",
            "--ingest-url-file",
        ),
        (["--ingest-url", INGEST], {"INGEST_URL": INGEST}, "--ingest-url", "INGEST_URL"),
        (["--ingest-url-file", "f"], {"INJEST_URL": INGEST}, "--ingest-url-file", "INJEST_URL"),
        ([], {"INGEST_URL": INGEST, "INJEST_URL": INGEST}, "INGEST_URL", "INJEST_URL"),
    ],
)
def test_two_ingest_sources_are_a_usage_error(
    tmp_path: Path, argv: list[str], env: dict[str, str], first: str, second: str
) -> None:
    (tmp_path / "f").write_text(INGEST)
    argv = [str(tmp_path / "f") if a == "f" else a for a in argv]
    message = _error([*argv, "--playback-url", PLAYBACK], env)
    assert message.startswith(f"{first}: the ingest URL is given by ")
    assert second in message
    assert "sk_probe_secret" not in message


def test_with_a_file_the_environment_url_is_not_a_source(streams_file: Path) -> None:
    """As for the monitor: with --config, INGEST_URL only feeds ${INGEST_URL} expansion."""
    stream = _stream(
        ["--config", str(streams_file), "--stream", "us"], {**FILE_ENV, "INGEST_URL": INGEST}
    )
    assert stream.ingest_url == "rtmp://us.example/live/us_key"


def test_an_ingest_url_file_overrides_the_stream_file(streams_file: Path, tmp_path: Path) -> None:
    (tmp_path / "ingest").write_text(INGEST)
    stream = _stream(
        [
            "--config",
            str(streams_file),
            "--stream",
            "us",
            "--ingest-url-file",
            str(tmp_path / "ingest"),
        ],
        FILE_ENV,
    )
    assert stream.ingest_url == INGEST


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "cannot read"),
        ("", "is empty"),
        (f"{INGEST}\n{INGEST}\n", "one URL on one line"),
        ("http://origin.example/live/sk_probe_secret_0001", "must start with rtmp"),
    ],
)
def test_a_bad_ingest_url_file_names_the_option_not_the_key(
    tmp_path: Path, content: str | None, reason: str
) -> None:
    path = tmp_path / "ingest"
    if content is not None:
        path.write_text(content)
    message = _error(["--ingest-url-file", str(path), "--playback-url", PLAYBACK])
    assert message.startswith("--ingest-url-file: ") and reason in message
    assert "sk_probe_secret" not in message


def test_a_bad_environment_url_names_the_variable() -> None:
    message = _error(["--playback-url", PLAYBACK], {"INJEST_URL": "srt://h/live/k"})
    assert message.startswith("INJEST_URL: ")


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["--playback-url", PLAYBACK], "--ingest-url: required"),
        (["--ingest-url", INGEST], "--playback-url: required"),
    ],
)
def test_missing_urls_exit_2(
    argv: list[str], option: str, clean_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert option in _exit_2(argv, capsys)


def test_a_dot_env_ingest_url_counts_as_the_environment(
    clean_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (clean_environment / ".env").write_text(f"INJEST_URL={INGEST}\n")
    err = _exit_2(URLS, capsys)
    assert "INJEST_URL (environment or .env)" in err
    assert "sk_probe_secret" not in err


# -- Livepeer API mode -----------------------------------------------------------------------


def test_livepeer_without_a_file_takes_its_settings_from_the_environment() -> None:
    env = {
        "LIVEPEER_API_KEY": API_KEY,
        "LIVEPEER_API_URL": "http://127.0.0.1:9/api",
        "LIVEPEER_PLAYBACK_POLICY": "public",
        "LIVEPEER_INGEST_BASE": "rtmp://{region}.example/live",
    }
    stream = _stream(["--livepeer", "--duration", "8s"], env)
    assert stream.livepeer is not None
    assert stream.livepeer.api_url == "http://127.0.0.1:9/api"
    assert stream.livepeer.ingest_base == "rtmp://{region}.example/live"
    assert stream.ingest_url is None and stream.playback_url is None
    mode = api_mode(stream, env)
    assert mode is not None and mode.api_key == API_KEY


def test_a_file_stream_with_a_livepeer_block_is_probed_in_api_mode(
    streams_file: Path, tmp_path: Path
) -> None:
    (tmp_path / "key").write_text(API_KEY + "\n")
    env = {**FILE_ENV, "LIVEPEER_API_KEY_FILE": str(tmp_path / "key")}
    stream = _stream(["--config", str(streams_file), "--stream", "lp"], env)
    assert stream.livepeer is not None and stream.livepeer.api_url == "http://127.0.0.1:1/api"
    assert stream.duration == 45.0
    mode = api_mode(stream, env)
    assert mode is not None and mode.api_key == API_KEY


def test_livepeer_turns_a_url_stream_of_the_file_to_api_mode(streams_file: Path) -> None:
    stream = _stream(["--config", str(streams_file), "--stream", "us", "--livepeer"], FILE_ENV)
    assert stream.livepeer is not None
    assert stream.ingest_url is None and stream.playback_url is None


@pytest.mark.parametrize(
    ("argv", "env", "option"),
    [
        (["--livepeer", "--ingest-url", INGEST], {}, "--ingest-url"),
        (["--livepeer", "--playback-url", PLAYBACK], {}, "--playback-url"),
        (["--livepeer"], {"INGEST_URL": INGEST}, "INGEST_URL"),
    ],
)
def test_urls_in_api_mode_are_a_usage_error(
    argv: list[str], env: dict[str, str], option: str
) -> None:
    message = _error(argv, env)
    assert message.startswith(f"{option}: not used in Livepeer API mode")


def test_livepeer_without_a_key_exits_2_naming_the_variables(
    clean_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _exit_2(["--livepeer"], capsys)
    assert "LIVEPEER_API_KEY" in err and "LIVEPEER_API_KEY_FILE" in err


def test_an_unreadable_key_file_exits_2_without_the_key(
    clean_environment: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LIVEPEER_API_KEY", API_KEY)
    monkeypatch.setenv("LIVEPEER_API_KEY_FILE", str(clean_environment / "key"))
    err = _exit_2(["--livepeer"], capsys)
    assert "LIVEPEER_API_KEY" in err and API_KEY not in err
