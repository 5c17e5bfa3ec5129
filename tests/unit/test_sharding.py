"""Stream sharding: parsing `--shard`/STREAMER_SHARD and the rendezvous assignment."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from streamer import cli
from streamer.config import ConfigError
from streamer.sharding import MAX_SHARDS, Shard, parse_shard, shard_of, shard_setting

# Stream names shaped like a platform team's: region x ingest x playback x ladder.
NAMES = [
    f"{region}-{ingest}-{playback}-{ladder}-{n}"
    for region in ("fra", "nyc", "sao", "sin", "syd")
    for ingest in ("rtmp", "rtmps", "srt", "webrtc")
    for playback in ("hls", "llhls", "webrtc", "dash", "cmaf")
    for ladder in ("src", "720p", "ladder4", "ladder6", "audio")
    for n in (1, 2)
]


@dataclass(frozen=True)
class Stream:
    name: str


def test_names_fixture_is_a_thousand_distinct_names() -> None:
    assert len(NAMES) == len(set(NAMES)) == 1000


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0/3", Shard(0, 3)), ("2/3", Shard(2, 3)), (" 1 / 4 ", Shard(1, 4)), ("0/1", Shard(0, 1))],
)
def test_parse(text: str, expected: Shard) -> None:
    assert parse_shard(text) == expected
    assert str(expected) == text.replace(" ", "")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("3/3", "index 3 is out of range for 3 shards (0-based: 0 to 2)"),
        ("1/0", "count must be 1 to"),
        (f"0/{MAX_SHARDS + 1}", "count must be 1 to"),
        ("1", "expected I/N"),
        ("-1/3", "expected I/N"),
        ("a/3", "expected I/N"),
        ("1/3/4", "expected I/N"),
        ("", "expected I/N"),
    ],
)
def test_bad_shards_name_the_field(text: str, problem: str) -> None:
    for field in ("--shard", "STREAMER_SHARD"):
        with pytest.raises(ConfigError, match=f"^{field}: ") as raised:
            parse_shard(text, {}, field)
        assert problem in str(raised.value)


def test_auto_takes_the_pod_index_label_first_then_the_pod_name() -> None:
    assert parse_shard("auto/3", {"POD_INDEX": "2", "POD_NAME": "mon-streamer-0"}) == Shard(2, 3)
    # Without the label (Kubernetes before 1.28) the downward API gives an empty value.
    assert parse_shard("auto/3", {"POD_INDEX": "", "POD_NAME": "mon-streamer-1"}) == Shard(1, 3)
    assert parse_shard("auto/12", {"POD_NAME": "a-b-2-11"}) == Shard(11, 12)


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({}, "needs POD_INDEX"),
        ({"POD_NAME": "streamer"}, "needs POD_INDEX"),
        ({"POD_NAME": "streamer-abc12"}, "needs POD_INDEX"),
        ({"POD_INDEX": "two"}, "POD_INDEX is not a number"),
        # kubectl scale past the chart's replicas: the extra pod refuses to start.
        ({"POD_NAME": "mon-streamer-3"}, "index 3 is out of range for 3 shards"),
    ],
)
def test_auto_errors(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=r"^STREAMER_SHARD: ") as raised:
        parse_shard("auto/3", env, "STREAMER_SHARD")
    assert problem in str(raised.value)


def test_option_wins_over_the_environment() -> None:
    env = {"STREAMER_SHARD": "1/2"}
    assert shard_setting(None, env) == Shard(1, 2)
    assert shard_setting("0/5", env) == Shard(0, 5)
    assert shard_setting(None, {}) is None
    assert shard_setting(None, {"STREAMER_SHARD": " "}) is None
    with pytest.raises(ConfigError, match=r"^STREAMER_SHARD: "):
        shard_setting(None, {"STREAMER_SHARD": "x"})


def test_the_option_is_documented_as_zero_based() -> None:
    [monitor] = [
        action
        for action in cli.build_parser()._subparsers._group_actions  # type: ignore[union-attr]
        if action.dest == "command"
    ]
    help_text = monitor.choices["monitor"].format_help()  # type: ignore[index]
    assert "--shard I/N" in help_text
    assert "0-based" in help_text


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 10])
def test_every_stream_falls_to_exactly_one_shard(count: int) -> None:
    streams = [Stream(name) for name in NAMES]
    taken = [
        stream.name for index in range(count) for stream in Shard(index, count).select(streams)
    ]
    assert sorted(taken) == sorted(NAMES)
    for index in range(count):
        # select keeps the file's order
        chosen = Shard(index, count).select(streams)
        assert chosen == [s for s in streams if shard_of(s.name, count) == index]


@pytest.mark.parametrize("count", [2, 3, 5, 10])
def test_shards_are_about_even(count: int) -> None:
    sizes = Counter(shard_of(name, count) for name in NAMES)
    expected = len(NAMES) / count
    assert set(sizes) == set(range(count))
    # A binomial spread: within 5 standard deviations of the mean (and far from all-in-one).
    sigma = (len(NAMES) * (1 / count) * (1 - 1 / count)) ** 0.5
    assert all(abs(size - expected) <= 5 * sigma for size in sizes.values()), sizes


@pytest.mark.parametrize("count", [1, 2, 3, 4, 9, 20])
def test_growing_by_one_shard_moves_about_one_in_n_plus_one(count: int) -> None:
    before = {name: shard_of(name, count) for name in NAMES}
    after = {name: shard_of(name, count + 1) for name in NAMES}
    moved = [name for name in NAMES if before[name] != after[name]]
    # Streams move only to the new shard, never between old ones.
    assert {after[name] for name in moved} <= {count}
    expected = len(NAMES) / (count + 1)
    sigma = (len(NAMES) * (1 / (count + 1)) * (count / (count + 1))) ** 0.5
    assert abs(len(moved) - expected) <= 4 * sigma, (len(moved), expected)
    # A modulo assignment would move most of them; rendezvous hashing does not.
    modulo_moved = sum(
        1
        for name in NAMES
        if int.from_bytes(name.encode(), "big") % count
        != int.from_bytes(name.encode(), "big") % (count + 1)
    )
    if count > 1:
        assert len(moved) < modulo_moved


def test_the_assignment_is_stable_across_processes() -> None:
    """The same names fall to the same shards in another interpreter with another hash seed
    (Python's hash() would not)."""
    sample = NAMES[:50]
    script = (
        "import sys; from streamer.sharding import shard_of; "
        "print(' '.join(str(shard_of(n, 7)) for n in sys.argv[1:]))"
    )
    src = Path(__file__).resolve().parents[2] / "src"
    result = subprocess.run(
        [sys.executable, "-c", script, *sample],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PYTHONPATH": str(src)},
    )
    assert result.stdout.split() == [str(shard_of(n, 7)) for n in sample]


def test_known_assignment_is_pinned() -> None:
    """Changing the hash would move every stream of every fleet at the next upgrade."""
    assert [shard_of(f"s{i:02d}", 3) for i in range(12)] == PINNED


PINNED = [0, 1, 1, 2, 1, 0, 2, 2, 0, 2, 1, 2]


def _streams_file(tmp_path: Path) -> Path:
    path = tmp_path / "streams.yaml"
    path.write_text(
        "streams:\n"
        "  - name: only\n"
        "    injest_url: rtmp://127.0.0.1:1/live/k\n"
        "    playback_url: http://127.0.0.1:1/a.m3u8\n"
    )
    return path


@pytest.mark.parametrize(
    ("args", "env", "field"),
    [
        (["--shard", "3/3"], {}, "--shard: shard index 3 is out of range"),
        (["--shard", "x"], {"STREAMER_SHARD": "0/2"}, "--shard: expected I/N"),
        ([], {"STREAMER_SHARD": "0/0"}, "STREAMER_SHARD: the shard count must be"),
        ([], {"STREAMER_SHARD": "auto/2"}, "STREAMER_SHARD: auto/2 needs POD_INDEX"),
    ],
)
def test_monitor_exits_2_naming_the_shard_field(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    env: dict[str, str],
    field: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    for variable in ("STREAMER_SHARD", "POD_INDEX", "POD_NAME", "STREAMER_CONFIG"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    code = cli.main(["monitor", "--config", str(_streams_file(tmp_path)), *args])
    assert code == 2
    assert f"configuration error: {field}" in capsys.readouterr().err


def test_sharding_the_embedded_origin_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for variable in ("STREAMER_CONFIG", "INJEST_URL", "INGEST_URL", "LIVEPEER_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("LIVEPEER_API_KEY_FILE", raising=False)
    assert cli.main(["monitor", "--shard", "0/2"]) == 2
    assert "--shard: sharding needs configured streams" in capsys.readouterr().err
