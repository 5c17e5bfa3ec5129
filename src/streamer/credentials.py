"""Secrets from the environment: `NAME` directly, or the file named by `NAME_FILE`.

The `_FILE` form suits Docker/Kubernetes secrets mounted as files. Error messages name the
variable, never its value.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


class SecretError(ValueError):
    """A secret is configured but cannot be used (unreadable file, both forms set)."""


def load_secret(env: Mapping[str, str], name: str) -> str | None:
    """The value of `name` or of the file named by `name_FILE`, stripped; None when unset."""
    direct = env.get(name, "").strip()
    file_name = env.get(f"{name}_FILE", "").strip()
    if direct and file_name:
        raise SecretError(f"set either {name} or {name}_FILE, not both")
    if direct:
        return direct
    if not file_name:
        return None
    try:
        value = Path(file_name).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretError(f"{name}_FILE: cannot read the file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise SecretError(f"{name}_FILE: the file is not UTF-8 text") from None
    if not value:
        raise SecretError(f"{name}_FILE: the file is empty")
    return value
