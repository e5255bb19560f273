"""What the HTTP server reads from a client before it knows who the client is, and how long it waits.

Everything here runs before authentication, so every limit is a constant bound on memory and CPU
per connection: the request head is read straight from the socket into one buffer of at most
``MAX_HEAD_BYTES`` within ``HEAD_TIMEOUT_S`` (a slowloris client is dropped), its lines are counted
and measured as they arrive, and the one cookie the server needs is found by hand in a header of at
most ``MAX_COOKIE_BYTES`` (``http.cookies`` is quadratic on some inputs).

These are module constants: the daemon serves a few operators and Prometheus, whose requests are
far below them. The one cap an installation may need to change, connections per client address
(a reverse proxy is one address for every viewer), is ``web.max_connections_per_address``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus

log = logging.getLogger(__name__)

MAX_REQUEST_LINE = 8 * 1024  # bytes in "GET /path HTTP/1.1"; longer: 414
MAX_HEADER_LINE = 8 * 1024  # bytes in one header line; longer: 431
MAX_HEADERS = 64  # header lines; more: 431
MAX_HEAD_BYTES = 32 * 1024  # request line + headers + the blank line; more: 431
HEAD_TIMEOUT_S = 10.0  # the whole head must arrive within this (slowloris); then the connection is dropped
MAX_CONNECTIONS = 64  # open connections (live streams included); more are answered 503 and closed at once
MAX_COOKIE_BYTES = 4 * 1024  # a longer Cookie header is ignored (no session from it)
WEB_NICE = 10  # the server's threads run this much nicer than the rest of the daemon (see lower_priority)
CLIENT_LOG_LINES = 20  # client-error log lines per CLIENT_LOG_WINDOW_S, all clients together; the rest are counted
CLIENT_LOG_WINDOW_S = 60.0
_CHUNK = 4096


def lower_priority(nice: int | None = None) -> None:
    """Make the calling thread (and the threads it starts later, which inherit it) ``nice`` steps nicer.

    A flood of requests costs the server CPU mostly outside the GIL (accept, a thread per
    connection, socket reads): measured at about half a core under cookie bombs, taken from the
    detector on a busy 2-core host. Linux keeps a nice value per thread, so only the web threads
    yield the CPU; the analysis threads keep theirs. Elsewhere (or if refused) nothing changes.
    ``nice`` defaults to ``WEB_NICE`` as it is at the call (bench/web_hostile.py sets it to 0 for its A/B)."""
    nice = WEB_NICE if nice is None else nice
    if not nice or not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as exc:
        log.debug("web: could not lower the server threads' priority: %s", exc)


class HeadError(Exception):
    """The head broke a limit: reply ``status`` (``None``: just drop the connection) and log ``why``."""

    def __init__(self, status: HTTPStatus | None, why: str):
        super().__init__(why)
        self.status, self.why = status, why


def read_head(sock: socket.socket, timeout_s: float = HEAD_TIMEOUT_S) -> bytes:
    """The request head (request line to blank line, inclusive) read from ``sock`` within ``timeout_s``.

    Raises :class:`HeadError` when a limit is broken, the deadline passes or the client goes away.
    Bytes after the head (a pipelined request or a body, which a GET has not) are dropped: the
    server answers one request per connection."""
    deadline = time.monotonic() + timeout_s
    buffer = bytearray()
    scan = _LineScan()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise HeadError(None, f"no complete request head within {timeout_s:g} s")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(_CHUNK)
        except TimeoutError:
            raise HeadError(None, f"no complete request head within {timeout_s:g} s") from None
        except OSError as exc:
            raise HeadError(None, f"connection lost while reading the head ({exc.__class__.__name__})") from None
        if not chunk:
            raise HeadError(None, "closed before a complete request head" if buffer else "closed without a request")
        buffer += chunk
        end = scan.feed(buffer)
        if (len(buffer) if end is None else end) > MAX_HEAD_BYTES:
            raise HeadError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"request head over {MAX_HEAD_BYTES} bytes")
        if end is not None:
            return bytes(buffer[:end])


class _LineScan:
    """Checks the head's lines as they arrive (each byte looked at once); knows where the head ends."""

    def __init__(self) -> None:
        self.line_start = 0  # offset of the line being read
        self.lines = 0  # complete lines so far (the request line is line 1)

    def feed(self, buffer: bytearray) -> int | None:
        """Offset just after the head's blank line once ``buffer`` holds it; raises HeadError on a limit."""
        while (newline := buffer.find(b"\n", self.line_start)) >= 0:
            length = newline + 1 - self.line_start
            blank = length <= 2 and buffer[self.line_start : newline + 1] in (b"\r\n", b"\n")
            self._check(length, counted=not blank)
            self.lines += 1
            self.line_start = newline + 1
            if blank and self.lines > 1:
                return self.line_start
        self._check(len(buffer) - self.line_start, counted=False)
        return None

    def _check(self, length: int, counted: bool) -> None:
        if self.lines == 0:
            if length > MAX_REQUEST_LINE:
                raise HeadError(HTTPStatus.REQUEST_URI_TOO_LONG, f"request line over {MAX_REQUEST_LINE} bytes")
            return
        if length > MAX_HEADER_LINE:
            raise HeadError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"a header line over {MAX_HEADER_LINE} bytes")
        if counted and self.lines > MAX_HEADERS:
            raise HeadError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"more than {MAX_HEADERS} header lines")


def session_cookie(header: str | None, name: str) -> str | None:
    """The value of cookie ``name`` in a Cookie header, found by hand; None if absent or the header is too long."""
    if not header or len(header) > MAX_COOKIE_BYTES:
        return None
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key.strip() == name:
            return value.strip()
    return None


class ClientErrorLog:
    """Log lines about misbehaving clients (refused, malformed, too slow), at most ``lines`` per
    ``window_s`` for all clients together: a flood of bad requests must not flood the journal, and a
    budget per address would grow with the addresses an attacker has. What the budget drops is counted
    and said in one line when the next window opens (or at ``flush``, when the server stops)."""

    def __init__(
        self,
        logger: logging.Logger,
        lines: int = CLIENT_LOG_LINES,
        window_s: float = CLIENT_LOG_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log, self._lines, self._window_s, self._clock = logger, lines, window_s, clock
        self._lock = threading.Lock()
        self._window_start = clock()
        self._logged = self._dropped = 0

    def info(self, message: str, *args: object) -> None:
        with self._lock:
            now = self._clock()
            if now - self._window_start >= self._window_s:
                self._say_dropped()
                self._window_start, self._logged = now, 0
            if self._logged >= self._lines:
                self._dropped += 1
                return
            self._logged += 1
        self._log.info(message, *args)

    def flush(self) -> None:
        with self._lock:
            self._say_dropped()

    def _say_dropped(self) -> None:
        if self._dropped:
            self._log.warning(
                "web: %d more client error(s) not logged (at most %d lines per %.0f s)",
                self._dropped,
                self._lines,
                self._window_s,
            )
            self._dropped = 0
