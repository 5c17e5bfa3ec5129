"""The stream `streamer probe` tests, configured exactly as the monitor would configure it.

Precedence, lowest first: the probe's defaults, or the stream's entry in `--config` (loaded,
`${VAR}`-expanded and validated as `streamer monitor --config` does each stream; the file's
other streams are left alone); then the options given on the command line.
`--check KIND.key=value` settings merge over the stream's `checks:`.

The ingest URL comes from exactly one of `--ingest-url`, `--ingest-url-file` or, without
`--config` (as the monitor reads its environment), INGEST_URL / INJEST_URL: a stream key in
a file or the environment stays out of `ps`. In Livepeer API mode (`--livepeer`, or a
`livepeer:` block in the stream file) the API creates the stream, so no URL is given.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from streamer.checks import validate_settings
from streamer.config import (
    DEFAULT_REGION,
    ConfigError,
    StreamConfig,
    livepeer_from_environment,
    load_stream,
    stream_entries,
)

PROBE_DEFAULTS: Mapping[str, Any] = {
    "name": "probe",
    "duration": "30s",
    "ingest_region": DEFAULT_REGION,
    "playback_region": DEFAULT_REGION,
}
INGEST_VARIABLES = ("INGEST_URL", "INJEST_URL")
CHECK_FORMAT = "KIND.key=value, e.g. frozen_video.enabled=false"

# (argparse attribute, option, StreamConfig field) of the options that set one field.
_FIELD_OPTIONS = (
    ("name", "--name", "name"),
    ("duration", "--duration", "duration"),
    ("startup_timeout", "--startup-timeout", "startup_timeout"),
    ("expected_renditions", "--expected-renditions", "expected_renditions"),
    ("tls_ca_file", "--tls-ca-file", "tls_ca_file"),
    ("playback_url", "--playback-url", "playback_url"),
    ("whep_url", "--whep-url", "whep_url"),
    ("playback_protocol", "--playback-protocol", "playback"),
)


def probe_stream(args: argparse.Namespace, env: Mapping[str, str]) -> StreamConfig:
    """The probed stream; raises ConfigError naming the option, variable or file field."""
    if args.config is None and args.stream is not None:
        raise ConfigError("--stream: needs --config, the streams file to pick it from")
    fields = _file_stream(args.config, args.stream, env) if args.config else dict(PROBE_DEFAULTS)
    origin: dict[str, str] = {}  # field -> the option that set it, for error messages
    for attribute, option, field in _FIELD_OPTIONS:
        value = getattr(args, attribute)
        if value is not None:
            fields[field], origin[field] = value, option
    if args.region is not None:
        for field in ("ingest_region", "playback_region"):
            fields[field], origin[field] = args.region, "--region"
    ingest = _ingest_source(args, env, from_file=args.config is not None)
    if args.livepeer or fields.get("livepeer") is not None:
        _use_api_mode(fields, ingest, args, env)
    else:
        if ingest is not None:
            origin["ingest_url"], fields["ingest_url"] = ingest
        _require_urls(fields)
    if args.check:
        fields["checks"] = merge_checks(fields.get("checks") or {}, parse_checks(args.check))
        origin["checks"] = "--check"
    return _validated(fields, origin)


# -- the streams file ------------------------------------------------------------------------


def _file_stream(path: str, name: str | None, env: Mapping[str, str]) -> dict[str, Any]:
    """The chosen stream of the file; only its own `${VAR}`s need to be set."""
    entries = stream_entries(Path(path))
    names = [entry.get("name") if isinstance(entry, dict) else None for entry in entries]
    listed = ", ".join(repr(n) if n else f"streams[{i}]" for i, n in enumerate(names))
    if name is None:
        if len(entries) > 1:
            raise ConfigError(
                f"--stream: {path} lists {len(entries)} streams ({listed}); "
                "choose one with --stream NAME"
            )
        index = 0
    else:
        matches = [i for i, n in enumerate(names) if n == name]
        if not matches:
            raise ConfigError(
                f"--stream: {path} has no stream named {name!r}; its streams: {listed}"
            )
        if len(matches) > 1:
            raise ConfigError(f"--stream: {path} has {len(matches)} streams named {name!r}")
        (index,) = matches
    return load_stream(entries, index, env).model_dump()


# -- the ingest URL ----------------------------------------------------------------------


def _ingest_source(
    args: argparse.Namespace, env: Mapping[str, str], *, from_file: bool
) -> tuple[str, str] | None:
    """(where it came from, the URL), or None; more than one source is a usage error."""
    sources: list[tuple[str, str]] = []
    if args.ingest_url is not None:
        sources.append(("--ingest-url", args.ingest_url))
    if args.ingest_url_file is not None:
        sources.append(("--ingest-url-file", read_url_file(args.ingest_url_file)))
    if not from_file:  # the monitor, too, reads these only when no streams file is given
        sources += [(variable, env[variable]) for variable in INGEST_VARIABLES if env.get(variable)]
    if len(sources) > 1:
        given = " and ".join(_describe_source(name) for name, _ in sources)
        raise ConfigError(f"{sources[0][0]}: the ingest URL is given by {given}; give it once")
    return sources[0] if sources else None


def _describe_source(name: str) -> str:
    return f"{name} (environment or .env)" if name in INGEST_VARIABLES else name


def read_url_file(path: str) -> str:
    """The one URL in the file; errors never quote the content (it holds a stream key)."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"--ingest-url-file: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--ingest-url-file: {path} is not UTF-8 text") from None
    if not text:
        raise ConfigError(f"--ingest-url-file: {path} is empty")
    if len(text.splitlines()) > 1:
        raise ConfigError(f"--ingest-url-file: {path} must hold one URL on one line")
    return text


def _require_urls(fields: dict[str, Any]) -> None:
    if not fields.get("ingest_url"):
        raise ConfigError(
            "--ingest-url: required (or --ingest-url-file, INGEST_URL in the environment, "
            "--livepeer, or --config)"
        )
    protocols = fields.get("playback") or ["hls"]
    if isinstance(protocols, str):
        protocols = protocols.replace(",", " ").split()
    whep_only = fields.get("whep_url") and "hls" not in protocols
    if not fields.get("playback_url") and not whep_only:
        raise ConfigError("--playback-url: required (or --livepeer, or --config)")


def _use_api_mode(
    fields: dict[str, Any],
    ingest: tuple[str, str] | None,
    args: argparse.Namespace,
    env: Mapping[str, str],
) -> None:
    explicit = [ingest[0]] if ingest is not None else []
    if args.playback_url is not None:
        explicit.append("--playback-url")
    if explicit:
        raise ConfigError(
            f"{explicit[0]}: not used in Livepeer API mode, which creates the stream "
            "through the API"
        )
    if fields.get("livepeer") is None:
        fields["livepeer"] = livepeer_from_environment(env)
    fields["ingest_url"] = fields["playback_url"] = None


# -- check settings --------------------------------------------------------------------------


def parse_checks(options: list[str]) -> dict[str, dict[str, Any]]:
    """`--check` options as a `checks:` mapping, each validated on its own so that an error
    names the option that caused it. The last of two options for one setting wins."""
    checks: dict[str, dict[str, Any]] = {}
    for option in options:
        kind, key, value = parse_check(option)
        checks.setdefault(kind, {})[key] = value
    return checks


def parse_check(option: str) -> tuple[str, str, Any]:
    where = f"--check {option}"
    target, equals, raw = option.partition("=")
    kind, dot, key = (part.strip() for part in target.partition("."))
    if not equals or not dot or not kind or not key:
        raise ConfigError(f"{where}: expected {CHECK_FORMAT}")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = None
    # bool is an int: both, and floats and strings, are the scalars a setting can take.
    if not isinstance(value, bool | int | float | str):
        raise ConfigError(f"{where}: the value must be true/false, a number or a string")
    try:
        validate_settings({kind: {key: value}})
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return kind, key, value


def merge_checks(
    base: Mapping[str, Mapping[str, Any]], overrides: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per check, the override's settings over the base's; the base's others are kept."""
    merged = {kind: dict(settings) for kind, settings in base.items()}
    for kind, settings in overrides.items():
        merged.setdefault(kind, {}).update(settings)
    return merged


# -- validation ------------------------------------------------------------------------------


def _validated(fields: dict[str, Any], origin: Mapping[str, str]) -> StreamConfig:
    try:
        return StreamConfig.model_validate(fields)
    except ValidationError as exc:
        messages = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            message = str(error["msg"]).removeprefix("Value error, ")
            messages.append(f"{origin.get(field, field or 'stream')}: {message}")
        raise ConfigError("; ".join(messages)) from None
