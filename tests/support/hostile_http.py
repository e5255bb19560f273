"""Hostile HTTP clients for the server-limit tests, and what they measure on the daemon they attack.

Every attack is one function ``attack(port, stop)`` that runs until ``stop`` is set or its own
bound on connections is reached, whichever comes first, and always closes what it opened;
``run_for`` repeats it until its window is over. All
connections go to 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

Attack = Callable[[int, threading.Event], None]


def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid`` in MiB (VmRSS in /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _connect(port: int, timeout: float = 2.0) -> socket.socket | None:
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError:
        return None


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _held() -> Iterator[list[socket.socket]]:
    sockets: list[socket.socket] = []
    try:
        yield sockets
    finally:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()


def slowloris(port: int, stop: threading.Event, connections: int = 200, most: int = 1000) -> None:
    """``connections`` clients each drip one header line a second and never end their head; a dropped
    one is replaced (at most ``most`` connections in all)."""
    opened = 0
    with _held() as sockets:
        while not stop.is_set() and opened < most:
            while len(sockets) < connections and opened < most and not stop.is_set():
                sock = _connect(port)
                opened += 1
                if sock is not None and _send(sock, b"GET / HTTP/1.1\r\nHost: x\r\n"):
                    sockets.append(sock)
            for sock in list(sockets):
                if not _send(sock, b"X-Drip: %d\r\n" % opened):
                    sockets.remove(sock)
                    sock.close()
            stop.wait(1.0)


def huge_headers(port: int, stop: threading.Event, connections: int = 150, lines: int = 90) -> None:
    """``connections`` clients (a thread each) each send ``lines`` header lines of 60 KiB (5.4 MB, fewer
    lines than http.server's own limit of 100) as fast as the server reads them, never finish their
    head, and hold the connection until ``stop``."""
    line = b"X-Big: " + b"b" * (60 * 1024) + b"\r\n"

    def client() -> None:
        sock = _connect(port, timeout=5)
        if sock is None:
            return
        with sock:
            if not _send(sock, b"GET / HTTP/1.1\r\nHost: x\r\n"):
                return
            for _ in range(lines):
                if stop.is_set() or not _send(sock, line):
                    return  # (dropped by the server)
            stop.wait(60)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=70)


def many_connections(port: int, stop: threading.Event, connections: int = 400) -> None:
    """Open ``connections`` connections that send nothing, hold them until ``stop``."""
    with _held() as sockets:
        for _ in range(connections):
            if stop.is_set():
                break
            sock = _connect(port)
            if sock is not None:
                sockets.append(sock)
        stop.wait(60)


def abandoned_streams(
    camera: str, headers: bytes = b""
) -> Attack:  # the streams of a camera without a frame, opened then dropped
    def attack(port: int, stop: threading.Event, rounds: int = 40, viewers: int = 12) -> None:
        for _ in range(rounds):
            if stop.is_set():
                return
            with _held() as sockets:
                for _ in range(viewers):
                    sock = _connect(port)
                    if sock is not None:
                        _send(sock, b"GET /cameras/%s/live.mjpeg HTTP/1.1\r\n%s\r\n" % (camera.encode(), headers))
                        sockets.append(sock)
                stop.wait(0.3)  # then vanish without a word

    return attack


def cookie_bombs(port: int, stop: threading.Event, most: int = 2000) -> None:
    """Requests whose Cookie headers are the slow cases of http.cookies: 65 k backslashes (one line
    over the limit) and 8 k of them (within it), as fast as the server answers."""
    bombs = [b"a=" + b"\\" * 65536, b"a=" + b"\\" * 8000, b'a="' + b"\\\\" * 3900 + b'"']
    for count in range(most):
        if stop.is_set():
            return
        sock = _connect(port, timeout=5)
        if sock is None:
            continue
        with sock:
            if _send(sock, b"GET /cameras.json HTTP/1.1\r\nHost: x\r\nCookie: %s\r\n\r\n" % bombs[count % len(bombs)]):
                with contextlib.suppress(OSError):
                    sock.recv(4096)


def run_for(attack: Attack, port: int, seconds: float, sample: Callable[[], None], every: float = 0.2) -> int:
    """Keep ``attack`` going in a thread for ``seconds`` (then stop it), calling ``sample()`` every ``every`` s
    meanwhile; returns how many rounds of it ran.

    An attack ends early when its own bound is reached or the server has dropped all it opened (on
    a quiet machine 2000 cookie bombs take about a second), so a round that ends before the window
    does is started again at once: the whole window is under attack, and a rate measured over it is
    not a few frames over a second or two."""
    stop = threading.Event()
    rounds = [0]

    def attack_until_stopped() -> None:
        while not stop.is_set():
            rounds[0] += 1
            attack(port, stop)
            stop.wait(0.01)  # an attack that fails at once (nothing listening) does not spin

    thread = threading.Thread(target=attack_until_stopped, name="hostile", daemon=True)
    thread.start()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            sample()
            time.sleep(every)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive(), "the attack did not stop"
    return rounds[0]
