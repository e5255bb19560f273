"""Small helpers every real-service test uses: free loopback ports and polling with a deadline."""

from __future__ import annotations

import random
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
PORTS_BELOW = 8000  # how many ports under the ephemeral range free_port draws from
_draw = random.Random()  # its own generator: a test seeding `random` must not make every port the same


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range of local ports for outgoing connections (Linux's default where unreadable)."""
    try:
        low, high = (int(v) for v in EPHEMERAL_RANGE.read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago, drawn from below the kernel's ephemeral range.

    Port 0 would give one inside that range, where any outgoing connection may take it as its local
    port: a broker restarted on its port after an outage then finds it in use, and a client that
    keeps reconnecting to a closed port in that range may connect to itself (seen in CI).
    """
    low, _ = ephemeral_range()
    first = max(1024, low - PORTS_BELOW)
    for _ in range(100):
        port = _draw.randrange(first, low) if low > first else 0
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError(f"no free TCP port on {host} in {first}-{low - 1} after 100 draws")


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is truthy or ``timeout`` seconds pass; its last verdict."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(interval)


def scraped_metric(port: int, name: str) -> float:
    """Sum of every sample of ``name`` on a daemon's /metrics over HTTP (0 while it is not serving)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith((name + "{", name + " ")))
