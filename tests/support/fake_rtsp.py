"""A small hostile RTSP endpoint on 127.0.0.1 for the reason probe (surveil/video/diagnose.py).

One thread accepts, one thread per connection answers. ``behaviour`` picks how it answers a
DESCRIBE:

- ``401-no-challenge``: 401 without ``WWW-Authenticate``, whatever was sent;
- ``401-basic``: a Basic challenge; the right ``Authorization: Basic`` gets 200 with a video SDP;
- ``401-digest``: a Digest challenge (``qop="auth"`` when ``qop`` is set); a right Digest answer
  (checked here, RFC 7616) gets 200 with a video SDP, a wrong one 401 again;
- ``401-digest-then-close``: as ``401-digest``, but the connection is closed after each 401;
- ``401-unknown``: a challenge of a scheme nobody knows;
- ``junk``: bytes without any end of line, forever;
- ``drip``: a status line, then one byte of a header every ``drip_s`` (100 ms), never a blank line;
- ``huge-headers``: a status line, then header lines forever, never a blank line;
- ``tls-drip``: at once after the connect, the header of a 16 KiB TLS record, then one byte of it
  every ``drip_s`` (a TLS client waits for the whole record inside one read);
- ``video``: 200 with a video SDP; ``404``: 404 Not Found.

Every request is recorded (``requests``: method, url and headers in lower case); the endless
behaviours stop when the client goes away or the server is closed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

VIDEO_SDP = (
    b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=video\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n"
    b"a=rtpmap:96 H264/90000\r\na=control:track1\r\n"
)
REALM = "fake-cam"
NONCE = "5f1c0ffee0ddba11"


@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str]
    raw: bytes


@dataclass
class FakeRtspServer:
    behaviour: str
    user: str = "admin"
    password: str = "pw"
    qop: bool = False
    algorithm: str | None = None
    drip_s: float = 0.1
    tls: ssl.SSLContext | None = None
    requests: list[Request] = field(default_factory=list)
    bytes_sent: int = 0

    def __post_init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name="fake-rtsp").start()

    def url(self, userinfo: str | None = None, scheme: str = "rtsp", path: str = "/stream") -> str:
        auth = "" if userinfo is None else f"{userinfo}@"
        return f"{scheme}://{auth}127.0.0.1:{self.port}{path}"

    @property
    def authorizations(self) -> list[str]:
        return [r.headers["authorization"] for r in self.requests if "authorization" in r.headers]

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv
                conn.close()

    def __enter__(self) -> FakeRtspServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- serving

    def _accept(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True, name="fake-rtsp-conn").start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(10)
            if self.behaviour == "tls-drip":
                self._send(conn, b"\x16\x03\x03\x40\x00")  # a handshake record of 16384 bytes
                while not self._stop.is_set():
                    self._send(conn, b"\x00")
                    time.sleep(self.drip_s)
                return
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            with self._lock:
                self._conns.append(conn)
            data = b""
            while not self._stop.is_set():
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
                while b"\r\n\r\n" in data:
                    head, _, data = data.partition(b"\r\n\r\n")
                    request = _parse(head)
                    self.requests.append(request)
                    if not self._answer(conn, request):
                        return
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()

    def _send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.bytes_sent += len(data)

    def _answer(self, conn: socket.socket, request: Request) -> bool:
        """Answer one request; False: close the connection."""
        cseq = request.headers.get("cseq", "0")
        kind = self.behaviour
        if kind == "junk":
            while not self._stop.is_set():
                self._send(conn, b"\x00junk-without-any-end-of-line " * 64)
            return False
        if kind == "drip":
            self._send(conn, f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nX-Drip: ".encode())
            while not self._stop.is_set():
                self._send(conn, b"x")
                time.sleep(self.drip_s)
            return False
        if kind == "huge-headers":
            self._send(conn, f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n".encode())
            while not self._stop.is_set():
                self._send(conn, b"X-Pad: " + b"a" * 200 + b"\r\n")
            return False
        if kind == "404":
            self._send(conn, f"RTSP/1.0 404 Not Found\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n".encode())
            return True
        if kind == "video" or self._authorized(request):
            ok = f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\n"
            self._send(conn, f"{ok}Content-Length: {len(VIDEO_SDP)}\r\n\r\n".encode() + VIDEO_SDP)
            return True
        self._send(
            conn, f"RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n{self._challenge()}Content-Length: 0\r\n\r\n".encode()
        )
        return kind != "401-digest-then-close"

    def _challenge(self) -> str:
        if self.behaviour == "401-basic":
            return f'WWW-Authenticate: Basic realm="{REALM}"\r\n'
        if self.behaviour.startswith("401-digest"):
            extra = ', qop="auth"' if self.qop else ""
            extra += f", algorithm={self.algorithm}" if self.algorithm else ""
            return f'WWW-Authenticate: Digest realm="{REALM}", nonce="{NONCE}"{extra}\r\n'
        if self.behaviour == "401-unknown":
            return 'WWW-Authenticate: Mystery realm="x"\r\n'
        return ""  # 401-no-challenge

    def _authorized(self, request: Request) -> bool:
        given = request.headers.get("authorization", "")
        if self.behaviour == "401-basic" and given.startswith("Basic "):
            return base64.b64decode(given[6:]) == f"{self.user}:{self.password}".encode()
        if self.behaviour.startswith("401-digest") and given.startswith("Digest "):
            return digest_ok(given, request.method, self.user, self.password)
        return False


def digest_ok(header: str, method: str, user: str, password: str) -> bool:
    """Whether an ``Authorization: Digest`` header answers our challenge with the right password."""
    fields = {key.lower(): _v(key, header) for key in re.findall(r"(?:^Digest\s+|,\s*)(\w+)=", header)}
    algorithm = fields.get("algorithm", "MD5").upper()
    name = "sha256" if algorithm.startswith("SHA-256") else "md5"

    def h(text: str) -> str:
        return hashlib.new(name, text.encode()).hexdigest()

    if fields.get("username") != user or fields.get("realm") != REALM or fields.get("nonce") != NONCE:
        return False
    ha1 = h(f"{user}:{REALM}:{password}")
    if algorithm.endswith("-SESS"):
        ha1 = h(f"{ha1}:{NONCE}:{fields.get('cnonce', '')}")
    ha2 = h(f"{method}:{fields.get('uri', '')}")
    if fields.get("qop") == "auth":
        expected = h(f"{ha1}:{NONCE}:{fields.get('nc')}:{fields.get('cnonce')}:auth:{ha2}")
    else:
        expected = h(f"{ha1}:{NONCE}:{ha2}")
    return fields.get("response") == expected


def _v(key: str, header: str) -> str:
    match = re.search(rf'(?:^|[\s,]){key}=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))', header)
    if match is None:
        return ""
    quoted, bare = match.group(1), match.group(2)
    return re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare


def _parse(head: bytes) -> Request:
    lines = head.decode("latin-1").split("\r\n")
    method, _, rest = lines[0].partition(" ")
    url = rest.rsplit(" ", 1)[0]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Request(method, url, headers, head)
