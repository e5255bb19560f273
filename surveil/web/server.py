"""The daemon's HTTP server: Prometheus text and a live view of every camera.

    /                              HTML: the cameras with status, processed fps and the live image
    /cameras.json                  the same list as JSON
    /status.json                   the cameras, MQTT state, spool size and open incidents (the page refreshes from it)
    /review...                     incident review: snapshots and clips (surveil.web.review)
    /cameras/<name>/latest.jpg     the newest analysed frame, annotated (404 unknown camera, 503 before a first frame)
    /cameras/<name>/live.mjpeg     the same as multipart/x-mixed-replace, at most ``web.max_fps``
    /metrics                       Prometheus text exposition
    /healthz, /readyz              200 or 503 with one line why: liveness and readiness for Kubernetes (no auth)

A frame is drawn and encoded only when someone asks for it, once per new analysed frame however
many people watch. The server knows nothing of the pipeline: it asks a :class:`ViewProvider`
(the daemon, which asks its current pipeline, so a reload does not interrupt the server).
Pages show camera names, never camera URLs; status reasons are shown with URLs and paths removed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import re
import secrets
import select
import socket
import sys
import threading
import time
from collections.abc import Hashable, Sequence
from dataclasses import asdict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import parse_qs, quote, unquote, urlsplit

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from surveil import __version__
from surveil.analysis.render import encode_jpeg
from surveil.config import WebConfig
from surveil.service.status import CameraView
from surveil.web import review
from surveil.web.limits import (
    HEAD_TIMEOUT_S,
    MAX_CONNECTIONS,
    ClientErrorLog,
    HeadError,
    lower_priority,
    read_head,
    session_cookie,
)
from surveil.web.live_page import render_live_page

log = logging.getLogger(__name__)

BOUNDARY = "surveilframe"
KEEPALIVE_S = 10.0  # a live stream without a new frame repeats the last one this often (notices a gone client)
SESSION_COOKIE = "surveil_session"
_PROBES = {"/healthz": "liveness", "/readyz": "readiness"}  # path -> optional ViewProvider method () -> (ok, why)
_CAMERA_PATH = re.compile(r"^/cameras/([^/]+)/(latest\.jpg|live\.mjpeg)$")


# ---------------------------------------------------------------- what the server asks of the daemon


class ViewProvider(Protocol):
    def camera_views(self) -> Sequence[CameraView]: ...

    def frame_version(self, camera: str) -> Hashable | None:
        """Changes with every analysed frame (None before the first); KeyError for an unknown camera."""

    def annotated_frame(self, camera: str) -> tuple[Hashable, np.ndarray] | None:
        """(version, the newest analysed frame with its overlay drawn), None before the first; KeyError if unknown."""


# ---------------------------------------------------------------- auth


class Auth:
    """Optional bearer token (header, ``?token=`` or the session cookie it earns) and/or basic auth.

    Every comparison is constant-time. The session cookie holds an HMAC of the secret, never the secret."""

    def __init__(self, config: WebConfig):
        self._token = config.auth_token.get_secret_value().encode() if config.auth_token else None
        self._basic: tuple[bytes, bytes] | None = None
        if config.username is not None and config.password is not None:
            self._basic = (config.username.encode(), config.password.get_secret_value().encode())
        secret = b"\0".join(filter(None, [self._token, *(self._basic or ())]))
        self.session = hmac.new(secret, b"surveil-web-session", hashlib.sha256).hexdigest() if secret else ""
        self.protect_metrics = config.protect_metrics

    @property
    def enabled(self) -> bool:
        return self._token is not None or self._basic is not None

    def check(self, headers, query: dict[str, list[str]], raw_query: str = "") -> str | None:
        """How the request authenticated ("token", "basic", "cookie", "open"), or None.

        ``?token=`` is compared both form-decoded (``+`` is a space, ``%2B`` a plus: what a form or
        ``encodeURIComponent`` sends) and as sent (only %-escapes decoded), so a token with a ``+``
        works typed into the address bar as is."""
        if not self.enabled:
            return "open"
        authorization = headers.get("Authorization", "")
        scheme, _, value = authorization.partition(" ")
        if self._token is not None:
            if scheme.lower() == "bearer":
                offered = [value.strip()]
            else:
                offered = [(query.get("token") or [""])[0], _raw_parameter(raw_query, "token")]
            matches = [bool(o) and hmac.compare_digest(o.encode(), self._token) for o in offered]
            if any(matches):
                return "token"
        if self._basic is not None and scheme.lower() == "basic" and self._basic_ok(value.strip()):
            return "basic"
        session = session_cookie(headers.get("Cookie"), SESSION_COOKIE)  # by hand: http.cookies is quadratic
        if session is not None and hmac.compare_digest(session.encode(), self.session.encode()):
            return "cookie"
        return None

    def _basic_ok(self, value: str) -> bool:
        try:
            user, _, password = base64.b64decode(value, validate=True).partition(b":")
        except ValueError:
            return False
        if self._basic is None:
            return False
        expected_user, expected_password = self._basic
        return hmac.compare_digest(user, expected_user) & hmac.compare_digest(password, expected_password)


def _raw_parameter(raw_query: str, name: str) -> str:
    """The first ``name=`` value of a query string with %-escapes decoded but ``+`` kept as a plus."""
    for part in raw_query.split("&"):
        key, sep, value = part.partition("=")
        if sep and unquote(key) == name:
            return unquote(value)
    return ""


# ---------------------------------------------------------------- the server


class WebServer:
    """A ThreadingHTTPServer on ``host:port`` in a daemon thread; ``close()`` stops it and every stream."""

    def __init__(
        self,
        host: str,
        port: int,
        provider: ViewProvider,
        registry: CollectorRegistry | None = None,
        config: WebConfig | None = None,
        max_connections: int | None = None,
        head_timeout_s: float = HEAD_TIMEOUT_S,
    ):
        self.provider = provider
        self.head_timeout_s = head_timeout_s  # a client must send its whole request head within this
        self._max_connections = max_connections
        self.registry = registry
        self.closing = threading.Event()
        self._streams = 0
        self._lock = threading.Lock()
        self._jpegs: dict[str, tuple[Hashable, bytes]] = {}
        self.configure(config or WebConfig())
        server_class = _IPv6Server if ":" in host else _Server
        self._httpd = server_class((host, port), _Handler)
        self._httpd.app = self
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        host = self._httpd.server_address[0]
        assert isinstance(host, str)  # an AF_INET / AF_INET6 address: (host, port, ...)
        return host

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def connection_cap(self) -> int:
        """Most connections open at once (streams included); by default room for the pages beside every stream."""
        return self._max_connections or max(MAX_CONNECTIONS, self.config.max_streams + 16)

    def configure(self, config: WebConfig) -> None:
        """Apply a (reloaded) web config: auth, rate and stream limits; the socket stays. Open
        streams check their request again against the new auth and end if it no longer passes
        (a revoked token ends the streams it opened)."""
        self.config, self.auth = config, Auth(config)

    def start(self) -> WebServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="web", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self.closing.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()
        self._httpd.client_log.flush()

    # --------------------------------------------------------- frames, shared by every watcher

    def jpeg(self, camera: str) -> tuple[Hashable, bytes] | None:
        """The newest annotated frame of ``camera`` as JPEG; drawn and encoded once per analysed frame."""
        version = self.provider.frame_version(camera)
        if version is None:
            return None
        with self._lock:
            cached = self._jpegs.get(camera)
        if cached is not None and cached[0] == version:
            return cached
        drawn = self.provider.annotated_frame(camera)
        if drawn is None:
            return None
        data = encode_jpeg(drawn[1], self.config.jpeg_quality)
        if data is None:
            return None
        with self._lock:
            self._jpegs[camera] = (drawn[0], data)
        return drawn[0], data

    def open_stream(self) -> bool:
        with self._lock:
            if self._streams >= self.config.max_streams:
                return False
            self._streams += 1
            return True

    def close_stream(self) -> None:
        with self._lock:
            self._streams -= 1


_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 18\r\n"
    b"Retry-After: 5\r\nConnection: close\r\n\r\ntoo many clients\r\n"
)


class _Server(ThreadingHTTPServer):
    """One thread per connection, at most ``connection_cap`` of them: more are answered 503 and closed at once.

    Errors from handlers reach the log as one line (client errors without a traceback), never stderr."""

    daemon_threads = True
    block_on_close = False
    app: WebServer

    def __init__(self, *args, **kwargs):
        self._connections = 0
        self._per_address: dict[str, int] = {}  # open connections by client address (web.max_connections_per_address)
        self._connections_lock = threading.Lock()
        self.client_log = ClientErrorLog(log)  # refused and malformed requests: bounded lines, not a flood
        super().__init__(*args, **kwargs)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        lower_priority()  # this thread accepts; the handler threads it starts inherit the lower priority
        super().serve_forever(poll_interval)

    def process_request(self, request, client_address) -> None:
        address = client_address[0]
        with self._connections_lock:
            mine = self._per_address.get(address, 0)
            busy = self._connections >= self.app.connection_cap or mine >= self.app.config.max_connections_per_address
            if not busy:
                self._connections += 1
                self._per_address[address] = mine + 1
        if busy:
            self.client_log.info("web %s: refused, %d connections open (%d from it)", address, self._connections, mine)
            try:  # non-blocking, from the accept thread: the reply fits any socket buffer
                request.setblocking(False)
                request.send(_BUSY)
                request.recv(65536)  # what has arrived of the request: unread data would turn close into a reset
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # the thread did not start
            self._release(address)
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(client_address[0])

    def _release(self, address: str) -> None:
        with self._connections_lock:
            self._connections -= 1
            left = self._per_address.pop(address) - 1
            if left:
                self._per_address[address] = left

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError | ValueError):  # the client went away, reset, timed out or sent junk
            log.debug("web %s: %s", client_address[0], error.__class__.__name__)
        else:
            log.error("web %s: error handling a request: %r", client_address[0], error, exc_info=error)


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = f"surveil/{__version__}"
    protocol_version = "HTTP/1.0"
    default_request_version = "HTTP/1.0"  # (http.server's 0.9 answers junk with an error without a status line)
    timeout = 30  # a client that stops reading ends its stream

    @property
    def app(self) -> WebServer:
        return self.server.app

    def handle_one_request(self) -> None:
        """Read the head within the limits (surveil.web.limits), then let http.server parse it."""
        self.close_connection = True  # one request per connection (HTTP/1.0)
        self.command, self.path, self.requestline = "", "", ""
        self.request_version = self.default_request_version
        try:
            head = read_head(self.connection, self.app.head_timeout_s)
        except HeadError as error:
            self.server.client_log.info("web %s: %s", self.client_address[0], error.why)
            if error.status is not None:
                self.connection.settimeout(5)
                self.send_error(error.status, error.why)
                self.wfile.flush()
                self._linger()
            return
        self.connection.settimeout(self.timeout)
        self.rfile.close()
        self.rfile = io.BytesIO(head)  # the real one is unread: the head came straight from the socket
        super().handle_one_request()

    def _linger(self, seconds: float = 1.0, most: int = 256 * 1024) -> None:
        """Read (and drop) what the client is still sending, briefly, so that closing does not reset the
        connection and lose the error reply before the client has read it (Apache's lingering close)."""
        try:
            self.connection.shutdown(socket.SHUT_WR)
            deadline, read = time.monotonic() + seconds, 0
            while read < most and (remaining := deadline - time.monotonic()) > 0:
                self.connection.settimeout(remaining)
                chunk = self.connection.recv(65536)
                if not chunk:
                    return
                read += len(chunk)
        except OSError:
            pass

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("web %s %s %s", self.client_address[0], urlsplit(self.path).path[:200], code)

    def log_error(self, format: str, *args) -> None:
        self.server.client_log.info("web %s: %s", self.client_address[0], _one_line(format % args))

    def log_message(self, format: str, *args) -> None:
        log.debug("web %s: %s", self.client_address[0], _one_line(format % args))

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        path = url.path
        self._raw_query = url.query
        try:
            self._route(path, query)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        except Exception:
            log.exception("web: error serving %s", path)
            self._send_text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n")

    def _route(self, path: str, query: dict[str, list[str]]) -> None:
        app = self.app
        registry = app.registry
        if path in _PROBES:  # Kubernetes probes: no auth, whatever web.enabled says; no URLs in them
            return self._probe(_PROBES[path])
        if path == "/metrics" and registry is None:
            return self._send_text(HTTPStatus.NOT_FOUND, "metrics are disabled (metrics.enabled: false)\n")
        if path != "/metrics" and not app.config.enabled:
            return self._send_text(HTTPStatus.NOT_FOUND, "the live view is disabled (web.enabled: false)\n")
        how = app.auth.check(self.headers, query, self._raw_query)
        self._query = (query, self._raw_query)  # a stream checks them again after a reload
        if how is None and not (path == "/metrics" and not app.auth.protect_metrics):
            return self._unauthorized()
        self._cookie = how in ("token", "basic")
        if how == "token" and "token" in query and path == "/":
            return self._redirect("/")  # keep the token out of the address bar and the history
        if path == "/metrics" and registry is not None:  # (None returned 404 above)
            return self._send(HTTPStatus.OK, CONTENT_TYPE_LATEST, generate_latest(registry))
        if path == "/":
            return self._index()
        if path == "/review" or path.startswith("/review/"):  # incident review (surveil.web.review)
            review_store = getattr(app.provider, "review_store", None)
            return review.serve(self, review_store() if review_store else None, path, query)
        if path == "/cameras.json":
            body = json.dumps([_public(view) for view in app.provider.camera_views()]).encode()
            return self._send(HTTPStatus.OK, "application/json", body)
        if path == "/status.json":  # what the live page refreshes itself from
            return self._send(HTTPStatus.OK, "application/json", json.dumps(_status(app.provider)).encode())
        match = _CAMERA_PATH.match(path)
        if match is None:
            return self._send_text(HTTPStatus.NOT_FOUND, "not found\n")
        camera, what = unquote(match.group(1)), match.group(2)
        if camera not in {view.name for view in app.provider.camera_views()}:
            return self._send_text(HTTPStatus.NOT_FOUND, "no such camera\n")
        if what == "latest.jpg":
            return self._latest(camera)
        return self._live(camera)

    # --------------------------------------------------------- responses

    def _probe(self, method: str) -> None:
        check = getattr(self.app.provider, method, None)
        if check is None:
            return self._send_text(HTTPStatus.NOT_FOUND, "not found\n")
        ok, why = check()
        return self._send_text(
            HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, f"{'ok' if ok else 'fail'}: {why}\n"
        )

    def _latest(self, camera: str) -> None:
        try:
            found = self.app.jpeg(camera)
        except KeyError:
            found = None  # removed by a reload a moment ago
        if found is None:
            return self._send_text(HTTPStatus.SERVICE_UNAVAILABLE, "no analysed frame yet\n", {"Retry-After": "1"})
        self._send(HTTPStatus.OK, "image/jpeg", found[1])

    def _live(self, camera: str) -> None:
        app = self.app
        if not app.open_stream():
            return self._send_text(HTTPStatus.SERVICE_UNAVAILABLE, "too many live streams\n", {"Retry-After": "5"})
        try:
            self.send_response(HTTPStatus.OK)
            self._common_headers()
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.end_headers()
            self.wfile.write(f"--{BOUNDARY}\r\n".encode())
            self._stream(camera)
        finally:
            app.close_stream()

    def _still_allowed(self, auth: Auth) -> bool:
        """After a reload: the stream's own request, checked against the current auth and web config."""
        app = self.app
        if app.auth is auth:
            return True
        return app.config.enabled and app.auth.check(self.headers, *self._query) is not None

    def _stream(self, camera: str) -> None:
        app = self.app
        sent_version, sent_at = None, 0.0
        auth = app.auth
        while not app.closing.is_set():
            if not self._still_allowed(auth):
                log.info("web: ending a live stream of %s: its credentials no longer pass after a reload", camera)
                return
            auth = app.auth
            interval = 1.0 / app.config.max_fps
            started = time.monotonic()
            try:
                found = app.jpeg(camera)
            except KeyError:
                return  # the camera went away in a reload
            if found is not None and (found[0] != sent_version or started - sent_at >= KEEPALIVE_S):
                version, data = found
                # each part ends with the next boundary, so that a browser shows it without waiting for the next frame
                head = f"Content-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                self.wfile.write(head + data + f"\r\n--{BOUNDARY}\r\n".encode())
                self.wfile.flush()
                sent_version, sent_at = version, started
            if self._client_gone(max(0.0, interval - (time.monotonic() - started)), auth):
                return

    def _client_gone(self, timeout: float, auth: Auth | None = None) -> bool:
        """Wait ``timeout`` s for the next frame; True as soon as the client has closed or reset the connection.

        Without this, a viewer who leaves while there is nothing to send (a camera without a frame)
        would hold a ``max_streams`` slot until the next write failed."""
        deadline = time.monotonic() + timeout
        poller = select.poll()
        poller.register(self.connection, select.POLLIN | select.POLLPRI)
        while not self.app.closing.is_set() and (auth is None or self.app.auth is auth):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if not poller.poll(min(remaining, 0.25) * 1000):
                continue
            try:
                if not self.connection.recv(4096, socket.MSG_DONTWAIT):
                    return True  # EOF: the viewer is gone
            except BlockingIOError:
                continue
            except OSError:
                return True
        return False

    def _index(self) -> None:
        nonce = secrets.token_urlsafe(12)
        body = render_index(self.app.provider.camera_views(), nonce).encode()
        csp = f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; img-src 'self'; connect-src 'self'"
        self._send(HTTPStatus.OK, "text/html; charset=utf-8", body, {"Content-Security-Policy": csp})

    def _unauthorized(self) -> None:
        headers = (
            {"WWW-Authenticate": 'Basic realm="surveil", charset="UTF-8"'}
            if self.app.config.username
            else {"WWW-Authenticate": 'Bearer realm="surveil"'}
        )
        self._cookie = False
        self._send_text(HTTPStatus.UNAUTHORIZED, "authentication required\n", headers)

    def _redirect(self, location: str) -> None:
        self.send_response(HTTPStatus.SEE_OTHER)
        self._common_headers()
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_text(self, status: HTTPStatus, text: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, "text/plain; charset=utf-8", text.encode(), headers)

    def _send(self, status: HTTPStatus, content_type: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self._common_headers()
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _common_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        if getattr(self, "_cookie", False):
            self.send_header(
                "Set-Cookie", f"{SESSION_COOKIE}={self.app.auth.session}; Path=/; HttpOnly; SameSite=Strict"
            )


def _one_line(text: str) -> str:
    """A client-supplied text fit for one log line: printable, short."""
    return text.encode("ascii", "backslashreplace").decode()[:300].replace("\n", "\\n").replace("\r", "\\r")


# ---------------------------------------------------------------- the page

_URLISH = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*|(?:[A-Za-z]:)?[/\\][^\s'\"]*")


def public_reason(reason: str) -> str:
    """A status reason fit for a page: URLs and file paths (which may hold credentials) removed."""
    return _URLISH.sub("…", reason)[:200]


def _status(provider: ViewProvider) -> dict:
    """The cameras, the time, and what the provider adds (``service_status()``: MQTT, spool, open incidents)."""
    extra = getattr(provider, "service_status", None)
    return {"now": time.time(), "cameras": [_public(v) for v in provider.camera_views()], **(extra() if extra else {})}


def _public(view: CameraView) -> dict:
    item = asdict(view)
    item["reason"] = public_reason(view.reason)
    item["fps"] = round(view.fps, 2)
    item["offered_fps"] = round(view.offered_fps, 2)
    item["drop_ratio"] = round(view.drop_ratio, 3)
    base = f"/cameras/{quote(view.name, safe='')}"
    item.update(latest=f"{base}/latest.jpg", live=f"{base}/live.mjpeg")
    return item


def render_index(views: Sequence[CameraView], nonce: str) -> str:
    """The live page (surveil.web.live_page): every value escaped, camera names only (no URLs)."""
    return render_live_page([_public(view) for view in views], nonce)
