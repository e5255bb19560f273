"""Checks before the daemon starts anything: what it must listen on and write to is usable.

Each problem is a :class:`StartupError` whose message names the option, the path or address
and the reason; the CLI prints it and exits 2, which systemd does not restart (a restart
cannot fix a port in use or a read-only folder). They run before the model is loaded, so an
operator learns about them in a second, not after the detector warmed up.

The same failures can still happen later (a race for the port, a disk that turns read-only);
there the code that opens the resource reports them (``PipelineError`` for the sinks).
"""

from __future__ import annotations

import errno
import socket
import tempfile
from pathlib import Path

from surveil.config import Config


class StartupError(Exception):
    """The daemon cannot start with this config on this machine; the message says why and where."""


def preflight(config: Config) -> None:
    """Raise StartupError for the first unusable output folder, output file or listen address."""
    if config.state_dir:
        check_writable_dir(Path(config.state_dir), "state_dir")
    if config.mqtt.enabled:
        check_writable_file(Path(config.mqtt.spool_path), "mqtt.spool_path")
    if config.alerts.jsonl_path:
        check_writable_file(Path(config.alerts.jsonl_path), "alerts.jsonl_path")
    metrics = config.metrics
    if metrics.enabled or getattr(getattr(config, "web", None), "enabled", False):
        check_listen(metrics.host, metrics.port, "metrics.listen")


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
