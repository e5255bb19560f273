"""Why a stream does not open: probe its URL ourselves and name the cause in plain words.

When OpenCV cannot open a stream (or a stream read fails), :func:`diagnose_stream` probes the URL
itself — name resolution, a TCP (or TLS, for ``rtsps://``) connect, and for RTSP a DESCRIBE — and
names the cause: cannot resolve, refused, no answer (timeout), unauthorised (401), not found (404),
no video track, not an RTSP server. :func:`reason_kind` maps a reason to the short name used as the
``reason`` label of ``surveil_camera_down_reason``.

The probe talks to whatever answers at the camera's address, so it trusts nothing it hears:

- **credentials only in answer to a challenge**: the first DESCRIBE carries none; after a 401 it
  answers a ``Digest`` challenge, and a ``Basic`` one only where Basic cannot be read off the wire
  by others — over ``rtsps://`` with a verified certificate — or where the caller allows it
  (``allow_basic``). A 401 without a challenge gets no credentials at all.
- **one deadline** for the whole probe (``timeout``: resolve, connect, TLS, every request and every
  read), so a server that drips one byte at a time ends at the deadline like a silent one;
- **byte caps** on the status line, the header block and the body of every answer, so an endpoint
  that streams bytes without a blank line cannot fill the memory or hold the reader.

:func:`probe_stream` returns the reason with the number of bytes read (tests check the caps).
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
import re
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from surveil.redact import redact

PROBE_TIMEOUT_S = 5.0
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "rtmp": 1935, "http": 80, "https": 443}
MAX_STATUS_LINE = 1024  # bytes of an answer's first line, its end of line included
MAX_HEADER_BYTES = 16 * 1024  # bytes of an answer's header block, its blank line included
MAX_HEADER_LINES = 100
MAX_BODY_BYTES = 64 * 1024  # bytes of a body read (an SDP is a few hundred); the rest is not read
MAX_ANSWER_BYTES = MAX_STATUS_LINE + MAX_HEADER_BYTES + MAX_BODY_BYTES  # most bytes read per answer
_REASON_KINDS = (  # (kind, pattern) in order; the first match names the reason
    ("dns", r"cannot resolve"),
    ("refused", r"connection refused"),
    ("timeout", r"no answer|timed out"),
    ("unauthorized", r"unauthori[sz]ed|\b401\b"),
    ("not_found", r"not found|\b404\b|no such device"),
    ("no_video", r"no video"),
    ("end_of_file", r"end of file"),
    ("stalled", r"no frame for"),
    ("read_failed", r"read failed"),
)


def reason_kind(reason: str) -> str:
    """The short name of a down reason: one of ``surveil.service.metrics.DOWN_REASONS``."""
    for kind, pattern in _REASON_KINDS:
        if re.search(pattern, reason, re.I):
            return kind
    return "error"


@dataclass(frozen=True)
class ProbeResult:
    reason: str
    bytes_read: int = 0  # bytes received from the endpoint, all answers together
    requests: int = 0  # DESCRIBE requests sent


class _ProbeError(Exception):
    """Ends a probe with a reason."""


class _Closed(_ProbeError):
    """The endpoint closed the connection."""


def diagnose_stream(
    url: str,
    timeout: float = PROBE_TIMEOUT_S,
    *,
    allow_basic: bool = False,
    tls_context: ssl.SSLContext | None = None,
) -> str:
    """Why a stream URL does not open, found by probing it ourselves within ``timeout`` (never raises)."""
    return probe_stream(url, timeout, allow_basic=allow_basic, tls_context=tls_context).reason


def probe_stream(
    url: str,
    timeout: float = PROBE_TIMEOUT_S,
    *,
    allow_basic: bool = False,
    tls_context: ssl.SSLContext | None = None,
) -> ProbeResult:
    """:func:`diagnose_stream` with the bytes read and the requests sent (never raises).

    ``allow_basic``: answer a Basic challenge over plain ``rtsp://`` too (the password crosses the
    network readable). ``tls_context``: the context that verifies ``rtsps://`` certificates (the
    system's trust store by default)."""
    probe = _Probe(time.monotonic() + max(0.01, timeout), timeout, allow_basic, tls_context)
    try:
        reason = probe.run(url)
    except _ProbeError as exc:
        reason = str(exc)
    except TimeoutError:
        reason = f"no answer from {probe.where or 'the camera'} within {timeout:g} s (timed out)"
    except Exception as exc:  # a probe must never take the capture thread down
        reason = f"cannot open ({type(exc).__name__} while diagnosing)"
    finally:
        probe.close()
    return ProbeResult(redact(reason), probe.bytes_read, probe.requests)  # a path may hold 'password=...'


@dataclass
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]


class _Probe:
    def __init__(self, deadline: float, timeout: float, allow_basic: bool, tls_context: ssl.SSLContext | None) -> None:
        self.deadline, self.timeout = deadline, timeout
        self.allow_basic, self.tls_context = allow_basic, tls_context
        self.sock: socket.socket | None = None
        self.buffer = b""
        self.bytes_read = 0
        self.requests = 0
        self.verified = False  # the TLS peer's certificate was verified
        self.where = ""
        self.address: tuple[socket.AddressFamily, socket.SocketKind, int, tuple[str, int]] | None = None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left

    # ---------------------------------------------------------------- connecting

    def run(self, url: str) -> str:
        try:
            parts = urlsplit(url)
            host, scheme = parts.hostname, parts.scheme.lower()
            port = parts.port or DEFAULT_PORTS.get(scheme)
        except ValueError:  # its text may quote the URL's password (a "port" that is not a number)
            return "malformed URL: it cannot be split into host and port"
        if not host or port is None:
            return "the URL names no host or port"
        self.where = f"{host}:{port}"
        self.connect(host, port, tls=scheme == "rtsps")  # the TLS of other schemes is not probed
        if scheme not in ("rtsp", "rtsps"):
            return f"{self.where} accepts connections, but no video could be opened from it"
        return self.describe(parts, host, port, tls=scheme == "rtsps")

    def connect(self, host: str, port: int, *, tls: bool) -> None:
        self.close()
        self.buffer = b""
        if self.address is None:
            self.address = self.resolve(host, port)
        sock = self.sock = self.plain_connection()
        try:
            sock.settimeout(self.remaining())
            sock.connect(self.address[3])
        except ConnectionRefusedError:
            raise _ProbeError(f"connection refused by {self.where} (nothing listens there)") from None
        except TimeoutError:
            raise _ProbeError(f"no answer from {self.where} within {self.timeout:g} s (timed out connecting)") from None
        except OSError as exc:
            raise _ProbeError(f"cannot connect to {self.where}: {exc.strerror or exc}") from None
        sock.setblocking(False)  # from here on every wait is a poll() bounded by the deadline
        if tls:
            self.sock = self.start_tls(sock, host)

    def plain_connection(self) -> socket.socket:
        assert self.address is not None
        family, kind, proto, _ = self.address
        return socket.socket(family, kind, proto)

    def resolve(self, host: str, port: int) -> tuple[socket.AddressFamily, socket.SocketKind, int, tuple[str, int]]:
        """getaddrinfo in a helper thread: it has no timeout of its own (the thread ends with it)."""
        found: list[object] = []
        worker = threading.Thread(target=_resolve_into, args=(found, host, port), daemon=True, name="probe-dns")
        worker.start()
        worker.join(max(0.0, self.deadline - time.monotonic()))
        if not found:
            raise _ProbeError(f"cannot resolve host {host} within {self.timeout:g} s (timed out)")
        result = found[0]
        if isinstance(result, BaseException):
            raise _ProbeError(f"cannot resolve host {host} ({getattr(result, 'strerror', None) or result})")
        family, kind, proto, _, address = result[0]  # type: ignore[index]
        return family, kind, proto, address

    def start_tls(self, sock: socket.socket, host: str) -> socket.socket:
        """TLS with a verified certificate where possible; else unverified (then Basic is never sent)."""
        context = self.tls_context or ssl.create_default_context()
        try:
            wrapped = self.handshake(context, sock, host)
            self.verified = context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
            return wrapped
        except ssl.SSLCertVerificationError:
            pass
        except TimeoutError:
            raise _ProbeError(f"no TLS handshake with {self.where} within {self.timeout:g} s (timed out)") from None
        except (ssl.SSLError, OSError) as exc:
            raise _ProbeError(f"TLS with {self.where} failed: {getattr(exc, 'reason', None) or exc}") from None
        self.close()  # the certificate was not trusted: start again without checking it
        assert self.address is not None
        plain = self.sock = self.plain_connection()
        plain.settimeout(self.remaining())
        plain.connect(self.address[3])
        unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
        try:
            return self.handshake(unverified, plain, host)
        except TimeoutError:
            raise _ProbeError(f"no TLS handshake with {self.where} within {self.timeout:g} s (timed out)") from None
        except (ssl.SSLError, OSError) as exc:
            raise _ProbeError(f"TLS with {self.where} failed: {getattr(exc, 'reason', None) or exc}") from None

    def handshake(self, context: ssl.SSLContext, sock: socket.socket, host: str) -> ssl.SSLSocket:
        """The TLS handshake, by the deadline (a socket timeout holds per read: a drip would pass it)."""
        sock.setblocking(False)
        wrapped = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
        self.sock = wrapped
        while True:
            try:
                wrapped.do_handshake()
                return wrapped
            except ssl.SSLWantReadError:
                self.wait(select.POLLIN)
            except ssl.SSLWantWriteError:
                self.wait(select.POLLOUT)

    def wait(self, event: int) -> None:
        """Until the socket is ready for ``event``, or TimeoutError at the deadline."""
        assert self.sock is not None
        poller = select.poll()  # not select.select: a daemon may hold more than 1024 descriptors
        poller.register(self.sock, event | select.POLLERR | select.POLLHUP)
        if not poller.poll(max(1, math.ceil(self.remaining() * 1000))):
            raise TimeoutError

    # ---------------------------------------------------------------- RTSP

    def describe(self, parts: SplitResult, host: str, port: int, *, tls: bool) -> str:
        bare = _request_url(parts, host)  # no credentials on the wire here
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        answer = self.exchange(bare, None)
        if answer.status == 401:
            if not user:
                return "unauthorized (401): the camera needs credentials in the URL"
            authorization = self.answer_challenge(answer, user, password, bare, tls)
            try:
                answer = self.exchange_again(bare, authorization, host, port, tls)
            except _Closed:
                return f"{self.where} closed the connection after the credentials were sent (unauthorized?)"
            if answer.status == 401:
                return "unauthorized (401): the camera rejected the credentials"
        if answer.status == 404:
            return f"not found (404): no stream at path {parts.path or '/'}"
        if answer.status != 200:
            return f"the RTSP server answered {answer.status}"
        if not re.search(rb"^m=video", answer.body, re.M):
            return "no video stream: the RTSP session offers no video track"
        return "the RTSP server offers video, but it could not be decoded (codec?)"

    def answer_challenge(self, answer: _Answer, user: str, password: str, url: str, tls: bool) -> str:
        challenges = [c for value in answer.header("www-authenticate") for c in _challenges(value)]
        if not challenges:
            raise _ProbeError(
                "unauthorized (401) with no authentication challenge (no WWW-Authenticate): credentials not sent"
            )
        if re.search(r"[\x00-\x1f\x7f]", user + password):
            raise _ProbeError("unauthorized (401): the URL's credentials contain control characters; not sent")
        for scheme, params in challenges:
            if scheme == "digest" and params.get("nonce"):
                return _digest(params, user, password, url)
        if any(scheme == "basic" for scheme, _ in challenges):
            if self.allow_basic or (tls and self.verified):
                return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            over = "rtsps:// with an unverified certificate" if tls else "plain rtsp://"
            raise _ProbeError(
                f"unauthorized (401): the camera asks for Basic authentication, which would send the password "
                f"readable over {over}; not sent (use Digest, or rtsps:// with a trusted certificate)"
            )
        names = ", ".join(sorted({scheme for scheme, _ in challenges}))[:80]
        raise _ProbeError(f"unauthorized (401): unsupported authentication scheme ({names}); credentials not sent")

    def exchange_again(self, url: str, authorization: str, host: str, port: int, tls: bool) -> _Answer:
        """The DESCRIBE with credentials; on a new connection when the server closed the first after its 401."""
        before = self.bytes_read
        try:
            return self.exchange(url, authorization)
        except _Closed:
            if self.bytes_read != before:
                raise
        self.connect(host, port, tls=tls)
        return self.exchange(url, authorization)

    def exchange(self, url: str, authorization: str | None) -> _Answer:
        self.requests += 1
        request = (
            f"DESCRIBE {url} RTSP/1.0\r\nCSeq: {self.requests}\r\nAccept: application/sdp\r\n"
            "User-Agent: surveil-probe\r\n"
        )
        if authorization:
            request += f"Authorization: {authorization}\r\n"
        try:
            self.send_all((request + "\r\n").encode("utf-8"))
            return self.read_answer()
        except TimeoutError:
            if self.bytes_read:
                raise _ProbeError(
                    f"{self.where} sends no complete RTSP answer within {self.timeout:g} s "
                    f"(timed out after {self.bytes_read} bytes)"
                ) from None
            raise _ProbeError(
                f"{self.where} accepts connections but sends no RTSP answer within {self.timeout:g} s (timed out)"
            ) from None
        except OSError as exc:
            raise _Closed(f"{self.where} closed the connection ({exc.strerror or exc})") from None

    def read_answer(self) -> _Answer:
        status_line = self.read_line(MAX_STATUS_LINE, "status line")
        match = re.match(rb"RTSP/\d\.\d (\d{3})(?: |$)", status_line)
        if not match:
            raise _ProbeError(
                f"{self.where} is not an RTSP server (its answer does not start with an RTSP status line)"
            )
        headers: list[tuple[str, str]] = []
        budget = MAX_HEADER_BYTES
        while True:
            line = self.read_line(budget, "header block")
            budget -= len(line) + 1
            if not line.strip():
                break
            if len(headers) >= MAX_HEADER_LINES:
                raise _ProbeError(f"{self.where} sends an RTSP answer with more than {MAX_HEADER_LINES} header lines")
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name.strip().lower(), value.strip()))
        answer = _Answer(int(match.group(1)), headers, b"")
        lengths = answer.header("content-length")
        length = int(lengths[0]) if lengths and lengths[0].isdigit() else 0
        answer.body = self.read_exactly(min(length, MAX_BODY_BYTES))
        return answer

    def read_line(self, cap: int, what: str) -> bytes:
        """One line (without its end of line) of at most ``cap`` bytes, its end of line included."""
        while True:
            end = self.buffer.find(b"\n", 0, cap)
            if end >= 0:
                line, self.buffer = self.buffer[:end], self.buffer[end + 1 :]
                return line.rstrip(b"\r")
            if len(self.buffer) >= cap:
                limit = MAX_STATUS_LINE if what == "status line" else MAX_HEADER_BYTES
                if what == "status line":
                    raise _ProbeError(
                        f"{self.where} is not an RTSP server ({limit} bytes without the end of an RTSP status line)"
                    )
                raise _ProbeError(f"{self.where} sends an RTSP {what} longer than {limit} bytes (no blank line)")
            self.receive(cap - len(self.buffer))

    def read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            try:
                self.receive(size - len(self.buffer))
            except (_ProbeError, TimeoutError):
                break  # a short body is still worth reading
        body, self.buffer = self.buffer[:size], self.buffer[size:]
        return body

    def send_all(self, data: bytes) -> None:
        assert self.sock is not None
        view = memoryview(data)
        while view:
            self.remaining()
            try:
                view = view[self.sock.send(view) :]
            except (BlockingIOError, ssl.SSLWantWriteError):
                self.wait(select.POLLOUT)
            except ssl.SSLWantReadError:
                self.wait(select.POLLIN)

    def receive(self, most: int) -> None:
        """At most ``most`` bytes more into the buffer, by the probe's deadline."""
        assert self.sock is not None
        while True:
            self.remaining()
            try:
                chunk = self.sock.recv(max(1, min(most, 4096)))
                break
            except (BlockingIOError, ssl.SSLWantReadError):  # no data, or half a TLS record so far
                self.wait(select.POLLIN)
            except ssl.SSLWantWriteError:
                self.wait(select.POLLOUT)
        if not chunk:
            raise _Closed(f"{self.where} closed the connection before its RTSP answer was complete")
        self.bytes_read += len(chunk)
        self.buffer += chunk


def _resolve_into(found: list[object], host: str, port: int) -> None:
    try:
        found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    except (OSError, UnicodeError) as exc:
        found.append(exc)


def _request_url(parts: SplitResult, host: str) -> str:
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    url = urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))
    return re.sub(r"[\x00-\x20\x7f]", lambda m: f"%{ord(m.group()):02X}", url)  # one request line, always


_CHALLENGE_START = re.compile(r"(?:^|,)\s*([A-Za-z][\w-]*)(?=\s+[\w-]+=|\s*(?:,|$))")
_PARAM = re.compile(r'([\w-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')


def _challenges(value: str) -> list[tuple[str, dict[str, str]]]:
    """The challenges of one WWW-Authenticate value: [(scheme in lower case, {param: value})]."""
    starts = list(_CHALLENGE_START.finditer(value[:4096]))
    found = []
    for i, start in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(value)
        params = {}
        for name, raw in _PARAM.findall(value[start.end() : end]):
            params[name.lower()] = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw
        found.append((start.group(1).lower(), params))
    return found


def _digest(params: dict[str, str], user: str, password: str, url: str) -> str:
    """RFC 7616 Digest (MD5, MD5-sess, SHA-256; qop=auth or none) for a DESCRIBE of ``url``."""
    algorithm = params.get("algorithm", "MD5")
    name = algorithm.upper().removesuffix("-SESS")
    hash_name = {"MD5": "md5", "SHA-256": "sha256"}.get(name, "md5")

    def h(text: str) -> str:
        return hashlib.new(hash_name, text.encode("utf-8")).hexdigest()

    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    ha1 = h(f"{user}:{realm}:{password}")
    cnonce = os.urandom(8).hex()
    if algorithm.upper().endswith("-SESS"):
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")
    ha2 = h(f"DESCRIBE:{url}")
    qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
    fields = [
        f'username="{_quoted(user)}"',
        f'realm="{_quoted(realm)}"',
        f'nonce="{_quoted(nonce)}"',
        f'uri="{_quoted(url)}"',
    ]
    if "auth" in qops:
        response = h(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
        fields += ["qop=auth", "nc=00000001", f'cnonce="{cnonce}"']
    else:
        response = h(f"{ha1}:{nonce}:{ha2}")
    fields.append(f'response="{response}"')
    if "algorithm" in params:
        fields.append(f"algorithm={algorithm}")
    if "opaque" in params:
        fields.append(f'opaque="{_quoted(params["opaque"])}"')
    return "Digest " + ", ".join(fields)


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
