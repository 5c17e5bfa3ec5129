"""Which streams one monitor of a fleet takes: `--shard I/N` (or `STREAMER_SHARD=I/N`).

Every process of a fleet reads the same streams file and keeps the streams that fall to its
own shard. A stream falls to the shard with the highest weight, a stable hash (BLAKE2b, the
same on every machine and Python version, unlike `hash()`) of the shard's index and the
stream's name: rendezvous (highest-random-weight) hashing. With N+1 shards instead of N a
stream moves only when the new shard N outweighs its old one, which happens to about
1/(N+1) of the streams; none moves between two old shards. No coordinator is needed: the
shard index (0-based) and the count are all a process has to know.

In a Kubernetes StatefulSet the index is the pod's ordinal: `STREAMER_SHARD=auto/N` reads it
from `POD_INDEX` (the `apps.kubernetes.io/pod-index` label through the downward API, where
the cluster sets it) or else from `POD_NAME`, which ends in `-<ordinal>`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from streamer.config import ConfigError

SHARD_VARIABLE = "STREAMER_SHARD"
SHARD_OPTION = "--shard"
# Bounds the hashing work (streams x shards per start-up) and catches a typo like 0/30000.
MAX_SHARDS = 1024

_SPEC = re.compile(r"^\s*(?P<index>\d+|auto)\s*/\s*(?P<count>\d+)\s*$")
_ORDINAL = re.compile(r"-(\d+)$")
_DIGITS = re.compile(r"^\d+$")


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


@dataclass(frozen=True)
class Shard:
    """Shard `index` (0-based) of `count`."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ValueError(f"the shard count must be 1 to {MAX_SHARDS}, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(
                f"shard index {self.index} is out of range for {self.count} shards "
                f"(0-based: 0 to {self.count - 1})"
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, name: str) -> bool:
        return shard_of(name, self.count) == self.index

    def select(self, streams: Sequence[T]) -> list[T]:
        """The streams of this shard, in their order."""
        return [stream for stream in streams if self.owns(stream.name)]


def shard_of(name: str, count: int) -> int:
    """The shard (0-based) of `count` that the stream called `name` falls to."""
    # max() keeps the first of equal weights: ties (2^-64 apart) go to the lower index.
    return max(range(count), key=lambda index: _weight(name, index))


def _weight(name: str, index: int) -> int:
    # The index is the salt: one keyed hash per (name, shard), stable across processes.
    digest = hashlib.blake2b(
        name.encode("utf-8"), digest_size=8, salt=index.to_bytes(16, "big")
    ).digest()
    return int.from_bytes(digest, "big")


def parse_shard(
    text: str, env: Mapping[str, str] | None = None, field: str = SHARD_OPTION
) -> Shard:
    """`I/N` (0-based index I of N shards), or `auto/N` with the index from the pod
    (`POD_INDEX`, else the ordinal ending `POD_NAME`). Raises ConfigError naming `field`."""
    match = _SPEC.match(text)
    if match is None:
        raise ConfigError(
            f"{field}: expected I/N, the 0-based shard index I of N shards (e.g. 0/3), "
            f"or auto/N in a StatefulSet pod; got {text!r}"
        )
    count = int(match["count"])
    index_text = match["index"]
    index = _pod_ordinal(env or {}, field, count) if index_text == "auto" else int(index_text)
    try:
        return Shard(index, count)
    except ValueError as exc:
        raise ConfigError(f"{field}: {exc}") from None


def _pod_ordinal(env: Mapping[str, str], field: str, count: int) -> int:
    pod_index = env.get("POD_INDEX", "").strip()
    if pod_index:
        if not _DIGITS.match(pod_index):
            raise ConfigError(f"{field}: auto/{count}: POD_INDEX is not a number: {pod_index!r}")
        return int(pod_index)
    ordinal = _ORDINAL.search(env.get("POD_NAME", "").strip())
    if ordinal is None:
        raise ConfigError(
            f"{field}: auto/{count} needs POD_INDEX (the apps.kubernetes.io/pod-index label) or "
            "POD_NAME ending in -<ordinal> (a StatefulSet pod's name)"
        )
    return int(ordinal.group(1))


def shard_setting(option: str | None, env: Mapping[str, str]) -> Shard | None:
    """The process's shard: `--shard` wins over STREAMER_SHARD; None when neither is set."""
    if option is not None:
        return parse_shard(option, env, SHARD_OPTION)
    value = env.get(SHARD_VARIABLE, "").strip()
    return parse_shard(value, env, SHARD_VARIABLE) if value else None
