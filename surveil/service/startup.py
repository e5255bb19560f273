"""Checks before the daemon starts anything: what it must listen on and write to is usable.

Each problem is a :class:`StartupError` whose message names the option, the path or address
and the reason; the CLI prints it and exits 2, which systemd does not restart (a restart
cannot fix a port in use or a read-only folder). They run before the model is loaded, so an
operator learns about them in a second, not after the detector warmed up.

The same failures can still happen later (a race for the port, a disk that turns read-only);
there the code that opens the resource reports them (``PipelineError`` for the sinks).

Two checks make each daemon's identity its own: the spool's lock (``<spool>.lock``, taken here
and held for the life of the process, so a second daemon on the same spool stops at once), and the
instance name on the broker (another live daemon already answering to it stops this one; a stale
retained ``online`` does not, see :mod:`surveil.sinks.mqtt.identity`).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import tempfile
import time
from pathlib import Path

from surveil.config import Config
from surveil.config.inputs import InputPathError, check_regular_file
from surveil.service.sharding import instance_name
from surveil.sinks.mqtt.identity import probe_instance
from surveil.sinks.spool import SpoolLock, SpoolLockedError

log = logging.getLogger(__name__)

_HELD: list[SpoolLock] = []  # spool locks taken by preflight: held until the process ends


class StartupError(Exception):
    """The daemon cannot start with this config on this machine; the message says why and where."""


def preflight(config: Config) -> None:
    """Raise StartupError for the first unusable input file, output folder, output file or listen address."""
    check_input_files(config)
    if config.state_dir:
        check_writable_dir(Path(config.state_dir), "state_dir")
    if config.mqtt.enabled:
        check_writable_file(Path(config.mqtt.spool_path), "mqtt.spool_path")
        claim_spool(Path(config.mqtt.spool_path), "mqtt.spool_path")
    if config.alerts.jsonl_path:
        check_writable_file(Path(config.alerts.jsonl_path), "alerts.jsonl_path")
    metrics = config.metrics
    if metrics.enabled or getattr(getattr(config, "web", None), "enabled", False):
        check_listen(metrics.host, metrics.port, "metrics.listen")
    if config.mqtt.enabled:
        check_instance_free(config)


def check_input_files(config: Config) -> None:
    """The detector's weights and every enabled file camera's video must be regular files: a FIFO
    would block the model loader or the camera's open for ever, a directory or device read without
    end. A missing file is left to the model loader and the camera, which say so in their own words."""
    weights = config.detector.weights
    if weights != "coco" and os.path.lexists(weights):
        try:
            check_regular_file(weights, "detector weights")
        except InputPathError as exc:
            raise StartupError(f"detector.weights: {exc.reason}: {weights}") from None
    for camera in config.enabled_cameras:
        if camera.kind != "file" or not os.path.lexists(str(camera.url)):
            continue
        try:
            check_regular_file(str(camera.url), "video file")
        except InputPathError as exc:
            raise StartupError(f"cameras.{camera.name}.url: {exc.reason}: {camera.url}") from None


def claim_spool(path: Path, option: str) -> None:
    """Take the spool's lock for the life of this process; StartupError when another process holds it."""
    try:
        _HELD.append(SpoolLock.acquire(path))
    except SpoolLockedError as exc:
        raise StartupError(f"{option}: {exc}") from None
    except OSError as exc:
        raise StartupError(
            f"{option}: cannot create the lock file {SpoolLock.lock_path(path)}: {_reason(exc)}"
        ) from None


def check_instance_free(config: Config, **probe: float) -> None:
    """StartupError when a live daemon already runs under this daemon's instance name on the broker.

    A retained ``online`` that nobody answers for is stale (a crash the broker has not noticed yet,
    a broker restarted without its wills): logged, not refused. An unreachable broker is not
    refused either: the daemon spools until it is back, as always."""
    mqtt = config.mqtt
    instance = instance_name(config)
    result = probe_instance(mqtt, instance, **probe)
    if result.state == "live":
        holder = result.holder or {}
        started = holder.get("started")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, float) else "?"
        raise StartupError(
            f"mqtt.instance: another live surveil already runs as {instance!r} on the broker {mqtt.host}:{mqtt.port} "
            f"(host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, started {since}); two daemons with one "
            "name overwrite each other's availability and camera list. Give each its own `mqtt.instance`, or leave "
            "it unset (the default is the host name, with `-shard<i>of<n>` when sharded), or stop the other one"
        )
    if result.state == "stale":
        log.warning(
            "MQTT: %s/%s/available reads online but no daemon answers: stale, starting", mqtt.topic_prefix, instance
        )
    elif result.state == "unreachable":
        log.info("MQTT: could not check the instance name %r on the broker (%s); starting", instance, result.detail)


def check_writable_dir(folder: Path, option: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"{option}: cannot create the folder {folder}: {_reason(exc)}") from None
    if not folder.is_dir():
        raise StartupError(f"{option}: {folder} is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".surveil-write-test-"):
            pass
    except OSError as exc:
        raise StartupError(
            f"{option}: cannot write to the folder {folder}: {_reason(exc)} "
            "(the daemon keeps its alert spool and alert log there; make it writable for the service user, "
            "or set `state_dir`)"
        ) from None


def check_writable_file(path: Path, option: str) -> None:
    check_writable_dir(path.parent, f"{option} (its folder)")
    if path.is_dir():
        raise StartupError(f"{option}: {path} is a folder, not a file")
    if path.exists():
        try:
            with open(path, "ab"):
                pass
        except OSError as exc:
            raise StartupError(f"{option}: cannot open {path} for writing: {_reason(exc)}") from None


def check_listen(host: str, port: int, option: str) -> None:
    """Bind (as the HTTP server will, with SO_REUSEADDR) and release the address at once."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise StartupError(f"{option}: cannot resolve {host!r}: {_reason(exc)}") from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
            sock.listen(1)
        except OSError as exc:
            hint = " (another surveil, or another program, is using it)" if exc.errno == errno.EADDRINUSE else ""
            raise StartupError(f"{option}: cannot listen on {host}:{port}: {_reason(exc)}{hint}") from None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__
