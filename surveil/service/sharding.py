"""Which daemon of a fleet runs which camera: rendezvous (highest-random-weight) hashing.

Every instance computes the same answer from the camera names alone, with nothing shared at
run time: camera ``c`` belongs to the instance ``i`` in ``0..N-1`` with the highest weight
``sha256(c, i)``, unless ``pin`` names its instance. Growing the fleet from N to N+1 moves only
the cameras the new instance wins (about 1/(N+1) of them), and no camera moves between two
old instances. The weight is SHA-256 (stable across processes and Python versions), never
Python's salted ``hash()``.

Where the shard comes from, first match wins: ``surveil run --shard i/N``, the environment
``SURVEIL_SHARD=i/N``, the config's ``sharding`` section; an ``index: auto`` there takes the
ordinal at the end of the host name (a StatefulSet pod ``surveil-3`` is index 3).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ENV_VAR = "SURVEIL_SHARD"
MAX_INSTANCES = 1024
_SHARD = re.compile(r"^\s*(\d{1,4})\s*/\s*(\d{1,4})\s*$")
_ORDINAL = re.compile(r"-(\d{1,4})$")


class ShardError(ValueError):
    """A shard written wrongly (``--shard``, ``SURVEIL_SHARD``, a host name without an ordinal)."""


@dataclass(frozen=True)
class Shard:
    index: int
    instances: int

    def __post_init__(self) -> None:
        if not 1 <= self.instances <= MAX_INSTANCES:
            raise ShardError(f"the number of instances must be 1-{MAX_INSTANCES}, not {self.instances}")
        if not 0 <= self.index < self.instances:
            raise ShardError(
                f"the index must be 0-{self.instances - 1} for {self.instances} instance(s), not {self.index}"
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.instances}"


def weight(camera: str, index: int) -> int:
    """The camera's stable pseudo-random weight on instance ``index``."""
    digest = hashlib.sha256(f"{camera}\x00{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def owner(camera: str, instances: int, pins: Mapping[str, int] | None = None) -> int:
    """The index of the instance that runs ``camera``."""
    if pins and camera in pins:
        return pins[camera]
    return _hashed_owner(camera, instances)


@functools.lru_cache(maxsize=65536)
def _hashed_owner(camera: str, instances: int) -> int:
    return max(range(instances), key=lambda i: weight(camera, i))


def assign(cameras: Iterable[str], instances: int, pins: Mapping[str, int] | None = None) -> dict[int, list[str]]:
    """Every instance index (all of them, empty or not) -> its cameras, in the given order."""
    table: dict[int, list[str]] = {i: [] for i in range(instances)}
    for camera in cameras:
        table[owner(camera, instances, pins)].append(camera)
    return table


def parse_shard(text: str, source: str) -> Shard:
    """``"i/N"`` -> Shard; ShardError naming ``source`` (e.g. ``--shard``) for anything else."""
    match = _SHARD.match(text or "")
    if match is None:
        raise ShardError(f"{source}: expected INDEX/INSTANCES such as 0/3, got {text!r}")
    try:
        return Shard(int(match.group(1)), int(match.group(2)))
    except ShardError as exc:
        raise ShardError(f"{source}: {exc}") from None


def ordinal_from_hostname(hostname: str) -> int:
    """The StatefulSet ordinal at the end of a pod's host name: ``surveil-3`` -> 3."""
    match = _ORDINAL.search(hostname.split(".", 1)[0])
    if match is None:
        raise ShardError(
            f"sharding.index is auto but the host name {hostname!r} does not end in -<ordinal> "
            "(as a StatefulSet pod's does); set sharding.index, SURVEIL_SHARD or --shard"
        )
    return int(match.group(1))


def resolve(instances: int, index: int | str, flag: str | None, environ: Mapping[str, str], hostname: str) -> Shard:
    """The shard this process runs: ``--shard``, else ``SURVEIL_SHARD``, else the config (``auto``: the host name)."""
    if flag is not None:
        return parse_shard(flag, "--shard")
    if environ.get(ENV_VAR):
        return parse_shard(environ[ENV_VAR], ENV_VAR)
    if index == "auto" and instances == 1:
        return Shard(0, 1)
    if index == "auto":
        ordinal = ordinal_from_hostname(hostname)
        try:
            return Shard(ordinal, instances)
        except ShardError as exc:
            raise ShardError(f"host name {hostname!r}: {exc} (sharding.instances is {instances})") from None
    return Shard(int(index), instances)


def apply(config, flag: str | None = None, environ: Mapping[str, str] | None = None, hostname: str | None = None):
    """``config`` (a :class:`surveil.config.Config`) as the shard this process runs; ShardError if it cannot be."""
    import os
    import socket

    from pydantic import ValidationError

    sharding = config.sharding
    environ = os.environ if environ is None else environ
    if flag is None and not environ.get(ENV_VAR) and sharding.index != "auto":
        return config
    shard = resolve(sharding.instances, sharding.index, flag, environ, hostname or socket.gethostname())
    try:
        return config.with_shard(shard.index, shard.instances)
    except ValidationError as exc:
        raise ShardError(f"shard {shard}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None


def default_instance_name(hostname: str, shard: Shard | None) -> str:
    """The broker name of a daemon without ``mqtt.instance``: its host name, plus its shard when sharded.

    Two shards on one host therefore never share a name: ``cam-host-shard0of3``,
    ``cam-host-shard1of3``. Characters a topic level cannot hold become ``_``."""
    host = re.sub(r"[/#+\s\x00]", "_", hostname) or "surveil"
    if shard is None or shard.instances == 1:
        return host
    return f"{host}-shard{shard.index}of{shard.instances}"


def instance_name(config, hostname: str | None = None) -> str:
    """This daemon's instance name on the broker: ``mqtt.instance`` if set, else :func:`default_instance_name`.

    ``config`` is a :class:`surveil.config.Config` after :func:`apply` (its shard resolved)."""
    import socket

    if config.mqtt.instance:
        return str(config.mqtt.instance)
    sharding = config.sharding
    shard = None if sharding.index == "auto" else Shard(int(sharding.index), sharding.instances)
    return default_instance_name(hostname or socket.gethostname(), shard)
