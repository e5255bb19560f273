"""Run the real `surveil` command: check-config on many files in one process, or the daemon."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.polling import free_port

REPO = Path(__file__).resolve().parents[2]
SHIPPED_MODEL = REPO / "models" / "pedestrian-mnv2.pt"


@dataclass
class CheckResult:
    returncode: int
    stdout: str
    stderr: str

    def message_for(self, path: Path) -> str:
        """The part of stderr/stdout about ``path`` (each message starts with the file name)."""
        blocks, current = [], []
        for line in (self.stderr + self.stdout).splitlines():
            if not line.startswith(" ") and current:
                blocks.append("\n".join(current))
                current = []
            current.append(line)
        if current:
            blocks.append("\n".join(current))
        return "\n".join(b for b in blocks if str(path) in b.split("\n", 1)[0])


def check_config(*paths: Path, env: dict[str, str] | None = None, timeout: float = 120) -> CheckResult:
    """`python -m surveil check-config PATH...` as a subprocess."""
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin"), **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", "surveil", "check-config", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=REPO,
    )
    return CheckResult(result.returncode, result.stdout, result.stderr)


def run_surveil(
    config: Path, env: dict[str, str] | None = None, timeout: float = 120, user: int | None = None
) -> subprocess.CompletedProcess:
    """`python -m surveil run -c CONFIG` to completion (for configs that must not start)."""
    command = [sys.executable, "-m", "surveil", "run", "-c", str(config)]
    if user is not None:
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}, cwd=REPO
    )


def start_surveil(config: Path, env: dict[str, str] | None = None, log_path: Path | None = None) -> subprocess.Popen:
    """Start the daemon; stdout and stderr go together to ``log_path`` (or a pipe)."""
    out = open(log_path, "w") if log_path else subprocess.PIPE  # noqa: SIM115 (the Popen owns it)
    return subprocess.Popen(
        [sys.executable, "-m", "surveil", "run", "-c", str(config)],
        env={**os.environ, **(env or {})},
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )


def stop_surveil(process: subprocess.Popen, timeout: float = 20) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def closed_port() -> int:
    """A loopback port nobody listens on (connection refused at once), outside the ephemeral range so
    that a client retrying it cannot connect to itself (:func:`free_port`)."""
    return free_port()


class NotifyListener:
    """A systemd notify socket that records (time, message) for every datagram."""

    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.path = path
        self.received: list[tuple[float, str]] = []

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                self.received.append((time.monotonic(), self.sock.recv(4096).decode()))

    def wait_for(self, field: str, timeout: float, count: int = 1) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.count(field) < count:
            self.poll(0.1)
        return self.count(field) >= count

    def count(self, field: str) -> int:
        return sum(field in m.split("\n") for _, m in self.received)

    def times(self, field: str) -> list[float]:
        return [t for t, m in self.received if field in m.split("\n")]

    def close(self) -> None:
        self.sock.close()
