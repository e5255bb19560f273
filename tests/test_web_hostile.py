"""The HTTP server against clients that misbehave before they authenticate: bounded heads, slowloris,
too many connections, abandoned live streams, cookie bombs; nothing reaches stderr.

The server runs on its own here with the in-memory cameras of tests/test_web.py; the same attacks
against a real `surveil run` daemon, with its RSS and analysed fps measured, are in
tests/test_web_daemon_hostile.py."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from surveil.config import WebConfig
from surveil.web.limits import (
    CLIENT_LOG_LINES,
    MAX_COOKIE_BYTES,
    MAX_HEAD_BYTES,
    MAX_HEADER_LINE,
    MAX_HEADERS,
    MAX_REQUEST_LINE,
    session_cookie,
)
from surveil.web.server import SESSION_COOKIE, WebServer
from tests.test_web import TOKEN, FakeCameras, get

pytestmark = pytest.mark.timeout(60)  # a hang guard: every loop below is bounded in count and time


@pytest.fixture
def serve():
    servers = []

    def start(max_connections=None, head_timeout_s=2.0, **web) -> tuple[WebServer, FakeCameras]:
        cameras = FakeCameras()
        server = WebServer(
            "127.0.0.1",
            0,
            cameras,
            registry=CollectorRegistry(),
            config=WebConfig(**web),
            max_connections=max_connections,
            head_timeout_s=head_timeout_s,
        ).start()
        servers.append(server)
        return server, cameras

    yield start
    for server in servers:
        server.close()


def connect(server: WebServer, timeout: float = 10) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def exchange(server: WebServer, raw: bytes) -> bytes:
    """Send ``raw``, read the reply to EOF (the server answers one request per connection)."""
    with connect(server) as sock:
        # the server may reply and close before it has read everything: the reply is still there
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(raw)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else 0


def header_lines(count: int, size: int) -> bytes:
    return b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * (size - 14)) for i in range(count))


CASES = [  # (what, raw request, expected status)
    ("a plain GET", b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 200),
    ("bare LF line ends", b"GET /metrics HTTP/1.0\nHost: x\n\n", 200),
    ("request line at the limit", b"GET /?" + b"a" * (MAX_REQUEST_LINE - 17) + b" HTTP/1.0\r\n\r\n", 200),
    ("request line over the limit", b"GET /?" + b"a" * MAX_REQUEST_LINE + b" HTTP/1.0\r\n\r\n", 414),
    ("request line over the limit, never ended", b"GET /" + b"a" * (MAX_REQUEST_LINE + 10), 414),
    ("header line over the limit", b"GET / HTTP/1.0\r\nX-Big: " + b"a" * MAX_HEADER_LINE + b"\r\n\r\n", 431),
    ("as many headers as allowed", b"GET /metrics HTTP/1.0\r\n" + header_lines(MAX_HEADERS, 100) + b"\r\n", 200),
    ("one header too many", b"GET / HTTP/1.0\r\n" + header_lines(MAX_HEADERS + 1, 100) + b"\r\n", 431),
    ("head over the limit", b"GET / HTTP/1.0\r\n" + header_lines(5, MAX_HEAD_BYTES // 5 + 100) + b"\r\n", 431),
    ("65 k backslash cookie", b"GET / HTTP/1.0\r\nCookie: a=" + b"\\" * 65536 + b"\r\n\r\n", 431),
    ("junk request line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    ("unknown method", b"BREW / HTTP/1.0\r\n\r\n", 501),
    ("header without a colon", b"GET / HTTP/1.0\r\nno colon here\r\n\r\n", 200),
]


@pytest.mark.parametrize(("what", "raw", "status"), CASES, ids=[c[0] for c in CASES])
def test_request_heads_are_bounded(serve, what, raw, status):
    server, _ = serve()
    assert status_of(exchange(server, raw)) == status, what


def test_a_slow_head_is_dropped_at_the_deadline_and_others_are_served_meanwhile(serve):
    server, _ = serve(head_timeout_s=1.0)
    slow = [connect(server) for _ in range(5)]
    try:
        for sock in slow:
            sock.sendall(b"GET / HTTP/1.0\r\n")
        for second in range(8):  # one header line a second, never the blank line: a slowloris
            assert get(server, "/metrics")[0] == 200, "served while the slow clients drip"
            dropped = 0
            for sock in slow:
                try:
                    sock.sendall(b"X-A: %d\r\n" % second)
                    sock.settimeout(0.01)
                    dropped += sock.recv(1) == b""
                except TimeoutError:
                    pass
                except OSError:
                    dropped += 1
            if dropped == len(slow):
                break
            time.sleep(0.5)
        assert dropped == len(slow), "every slow client was dropped"
    finally:
        for sock in slow:
            sock.close()


def test_connections_over_the_cap_get_503_at_once_and_the_slots_come_back(serve):
    server, _ = serve(max_connections=4, head_timeout_s=30.0)
    idle = [connect(server) for _ in range(4)]
    try:
        assert wait_for(lambda: status_of(exchange(server, b"GET /metrics HTTP/1.0\r\n\r\n")) == 503, 50)
        reply = exchange(server, b"GET /metrics HTTP/1.0\r\n\r\n")
        assert status_of(reply) == 503 and b"Retry-After: 5" in reply
    finally:
        for sock in idle:
            sock.close()
    assert wait_for(lambda: get(server, "/metrics")[0] == 200, 50), "the slots are free again"


@pytest.mark.parametrize(
    ("held_from", "asker", "expected"),
    [
        ("127.0.0.1", "127.0.0.1", 503),  # the address that holds its cap is refused
        ("127.0.0.1", "127.0.0.2", 200),  # another address is served beside it
        ("127.0.0.2", "127.0.0.1", 200),
    ],
)
def test_one_address_cannot_hold_more_than_its_connections(serve, held_from, asker, expected):
    server, _ = serve(max_connections=50, head_timeout_s=30.0, max_connections_per_address=3)
    idle = [connect_from(server, held_from) for _ in range(3)]
    try:
        assert wait_for(lambda: status_of(exchange_from(server, asker)) == expected, 50), expected
    finally:
        for sock in idle:
            sock.close()
    assert wait_for(lambda: status_of(exchange_from(server, held_from)) == 200, 50), "its slots come back"


def connect_from(server: WebServer, address: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10, source_address=(address, 0))


def exchange_from(server: WebServer, address: str) -> bytes:
    with connect_from(server, address) as sock:
        try:  # a refused client may see a reset (the server closes at once): the next poll asks again
            sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            return sock.recv(64)
        except ConnectionResetError:
            return b""


def wait_for(predicate, polls: int, interval: float = 0.1) -> bool:
    """``predicate`` true within ``polls`` polls (a count, not a duration)."""
    for _ in range(polls):
        if predicate():
            return True
        time.sleep(interval)
    return False


def test_abandoned_streams_of_a_camera_without_a_frame_free_their_slots(serve):
    server, cameras = serve(max_streams=3)
    viewers = []
    for _ in range(3):  # "yard" has no frame: the server has nothing to write to these viewers
        sock = connect(server)
        sock.sendall(b"GET /cameras/yard/live.mjpeg HTTP/1.0\r\n\r\n")
        viewers.append(sock)
        assert status_of(sock.recv(64)) == 200, "the viewer has its slot before the next one asks"
    assert wait_for(lambda: get(server, "/cameras/gate/live.mjpeg")[0] == 503, 50), "every slot is taken"
    for sock in viewers:
        sock.close()
    cameras.advance("gate")
    assert wait_for(lambda: stream_status(server, "/cameras/gate/live.mjpeg") == 200, 30)


def stream_status(server: WebServer, path: str) -> int:
    with connect(server, timeout=5) as sock:
        sock.sendall(b"GET %s HTTP/1.0\r\n\r\n" % path.encode())
        return status_of(sock.recv(64))


def test_a_viewer_who_resets_the_connection_frees_the_slot_too(serve):
    server, _ = serve(max_streams=1)
    sock = connect(server)
    sock.sendall(b"GET /cameras/yard/live.mjpeg HTTP/1.0\r\n\r\n")
    assert status_of(sock.recv(64)) == 200
    assert wait_for(lambda: get(server, "/cameras/gate/live.mjpeg")[0] == 503, 50)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # close = RST
    sock.close()
    assert wait_for(lambda: stream_status(server, "/cameras/yard/live.mjpeg") == 200, 30)


COOKIES = [  # (Cookie header, whether it authenticates)
    (lambda s: f"{SESSION_COOKIE}={s}", True),
    (lambda s: f"theme=dark; {SESSION_COOKIE}={s}; lang=en", True),
    (lambda s: f'a="\\\\\\"; {SESSION_COOKIE}={s}', True),
    (lambda s: f"{SESSION_COOKIE}=forged", False),
    (lambda s: "\\" * (MAX_COOKIE_BYTES - 100) + f"; {SESSION_COOKIE}={s}", True),
    (lambda s: "\\" * MAX_COOKIE_BYTES + f"; {SESSION_COOKIE}={s}", False),  # too long: ignored
    (lambda s: "a=" + "\\" * (MAX_HEADER_LINE - 100), False),  # the quadratic case for http.cookies
    (lambda s: "a=" + '"' + "\\\\" * 3000 + '"', False),
]


@pytest.mark.parametrize(("cookie", "ok"), COOKIES)
def test_the_session_cookie_is_found_by_hand_within_a_length_limit(serve, cookie, ok):
    server, _ = serve(auth_token=TOKEN)
    session = server.auth.session
    assert get(server, "/cameras.json", {"Cookie": cookie(session)})[0] == (200 if ok else 401)


def test_session_cookie_parser():
    assert session_cookie(None, "s") is None
    assert session_cookie("s=1; t=2", "t") == "2"
    assert session_cookie(" s = 1 ", "s") == "1"
    assert session_cookie("xs=1", "s") is None
    assert session_cookie("s", "s") is None
    assert session_cookie("s=" + "1" * MAX_COOKIE_BYTES, "s") is None


def test_hostile_clients_leave_stderr_clean_and_log_one_line_each(serve, capfd, caplog):
    server, _ = serve(head_timeout_s=0.5)
    caplog.set_level(logging.DEBUG, logger="surveil.web")
    for _, raw, _ in CASES:
        exchange(server, raw)
    with connect(server) as sock:  # goes away half-way through its head
        sock.sendall(b"GET / HTT")
    with connect(server) as sock:  # resets
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    with connect(server) as sock:  # slowloris, dropped at the deadline
        sock.sendall(b"GET / HTTP/1.0\r\n")
        sock.settimeout(10)
        assert sock.recv(1) == b""
    assert get(server, "/metrics")[0] == 200
    out, err = capfd.readouterr()
    assert err == "" and "Traceback" not in out
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()
        assert "\n" not in record.getMessage()


def test_a_server_bug_is_logged_through_logging_not_stderr(serve, capfd, caplog):
    server, cameras = serve()

    def broken():
        raise RuntimeError("bug")

    cameras.camera_views = broken
    assert get(server, "/cameras.json")[0] == 500
    _, err = capfd.readouterr()
    assert err == ""
    assert any(r.levelno == logging.ERROR and r.exc_info for r in caplog.records)


def test_many_threads_of_hostile_clients_at_once_then_normal_service(serve):
    server, cameras = serve(max_connections=16, head_timeout_s=1.0, max_streams=2)
    cameras.advance("gate")
    stop = threading.Event()

    def attack(raw: bytes, wait_for_reply: bool) -> None:
        for _ in range(30):  # bounded in count, and stopped early by the test
            if stop.is_set():
                return
            try:
                if wait_for_reply:
                    exchange(server, raw)
                else:  # send and vanish
                    with connect(server) as sock:
                        sock.sendall(raw)
            except OSError:
                pass

    hostile = [(CASES[5][1], True), (CASES[8][1], True), (CASES[9][1], True), (b"GET / HTTP/1.0\r\n", False)]
    hostile.append((b"GET /cameras/yard/live.mjpeg HTTP/1.0\r\n\r\n", False))
    threads = [threading.Thread(target=attack, args=case, daemon=True) for case in hostile]
    for thread in threads:
        thread.start()
    try:
        assert wait_for(lambda: get(server, "/metrics")[0] in (200, 503), 50)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert wait_for(lambda: get(server, "/metrics")[0] == 200, 50)
    assert wait_for(lambda: stream_status(server, "/cameras/gate/live.mjpeg") == 200, 50)


def test_a_flood_of_bad_requests_logs_a_bounded_number_of_lines(serve, caplog):
    """Junk from many connections: at most CLIENT_LOG_LINES lines about them, the rest counted in one
    warning when the server stops; the server still answers."""
    server, _ = serve()
    caplog.set_level(logging.INFO, logger="surveil.web")
    floods = CLIENT_LOG_LINES * 3
    for _ in range(floods):
        assert status_of(exchange(server, b"\x16\x03\x01 junk\r\n\r\n")) == 400
    assert get(server, "/metrics")[0] == 200
    server.close()
    about_clients = [r for r in caplog.records if r.levelno == logging.INFO and r.getMessage().startswith("web 127.")]
    dropped = [r.getMessage() for r in caplog.records if "client error(s) not logged" in r.getMessage()]
    assert len(about_clients) == CLIENT_LOG_LINES
    assert len(dropped) == 1 and dropped[0].startswith(f"web: {floods - CLIENT_LOG_LINES} more")
