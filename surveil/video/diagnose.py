"""Why a stream does not open: probe its URL ourselves and name the cause in plain words.

When OpenCV cannot open a stream (or a stream read fails), :func:`diagnose_stream` probes the URL
itself — name resolution, a TCP connect, and for RTSP a DESCRIBE (with the URL's credentials, Basic
or Digest) — and names the cause: cannot resolve, refused, no answer (timeout), unauthorised (401),
not found (404), no video track. :func:`reason_kind` maps a reason to the short name used as the
``reason`` label of ``surveil_camera_down_reason``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import time
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

PROBE_TIMEOUT_S = 5.0
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "rtmp": 1935, "http": 80, "https": 443}
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


def diagnose_stream(url: str, timeout: float = PROBE_TIMEOUT_S) -> str:
    """Why a stream URL does not open, found by probing it ourselves (never raises)."""
    try:
        parts = urlsplit(url)
        host, scheme = parts.hostname, parts.scheme.lower()
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError as exc:
        return f"malformed URL ({exc})"
    if not host or port is None:
        return "the URL names no host or port"
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        return f"cannot resolve host {host} ({getattr(exc, 'strerror', None) or exc})"
    sock = None
    try:
        family, kind, proto, _, address = addresses[0]
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except ConnectionRefusedError:
            return f"connection refused by {host}:{port} (nothing listens there)"
        except TimeoutError:
            return f"no answer from {host}:{port} within {timeout:g} s (timed out connecting)"
        except OSError as exc:
            return f"cannot connect to {host}:{port}: {exc.strerror or exc}"
        if scheme != "rtsp":
            return f"{host}:{port} accepts connections, but no video could be opened from it"
        return _probe_rtsp(sock, parts, host, port, timeout)
    except Exception as exc:  # a probe must never take the capture thread down
        return f"cannot open ({type(exc).__name__} while diagnosing)"
    finally:
        if sock is not None:
            sock.close()


def _probe_rtsp(sock: socket.socket, parts: SplitResult, host: str, port: int, timeout: float) -> str:
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    if ":" in host and not host.startswith("["):
        netloc = f"[{host}]" + (f":{parts.port}" if parts.port else "")
    bare = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))  # no credentials on the wire here
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    status, headers, body = _rtsp_describe(sock, bare, 1, None, timeout)
    if status is None:
        return f"{host}:{port} accepts connections but sends no RTSP answer within {timeout:g} s (timed out)"
    if status == 401 and user:
        challenge = headers.get("www-authenticate", "")
        status, headers, body = _rtsp_describe(sock, bare, 2, _authorization(challenge, user, password, bare), timeout)
        if status is None:
            return f"{host}:{port} closed the connection after the credentials were sent (unauthorized?)"
    if status == 401:
        return "unauthorized (401): " + (
            "the camera rejected the credentials" if user else "the camera needs credentials in the URL"
        )
    if status == 404:
        return f"not found (404): no stream at path {parts.path or '/'}"
    if status != 200:
        return f"the RTSP server answered {status}"
    if not re.search(rb"^m=video", body, re.M):
        return "no video stream: the RTSP session offers no video track"
    return "the RTSP server offers video, but it could not be decoded (codec?)"


def _rtsp_describe(
    sock: socket.socket, url: str, cseq: int, authorization: str | None, timeout: float
) -> tuple[int | None, dict[str, str], bytes]:
    request = f"DESCRIBE {url} RTSP/1.0\r\nCSeq: {cseq}\r\nAccept: application/sdp\r\nUser-Agent: surveil-probe\r\n"
    if authorization:
        request += f"Authorization: {authorization}\r\n"
    sock.sendall((request + "\r\n").encode())
    data = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in data:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(4096)
        except (TimeoutError, OSError):
            return None, {}, b""
        if not chunk:
            return None, {}, b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    match = re.match(r"RTSP/\d\.\d (\d{3})", lines[0])
    if not match:
        return None, {}, b""
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0") or 0)
    while len(body) < min(length, 65536) and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(4096)
        except OSError:
            break
        if not chunk:
            break
        body += chunk
    return int(match.group(1)), headers, body


def _authorization(challenge: str, user: str, password: str, url: str) -> str:
    if challenge.lower().startswith("digest"):
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
        realm, nonce = fields.get("realm", ""), fields.get("nonce", "")
        ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"DESCRIBE:{url}".encode()).hexdigest()
        response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
        return f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{url}", response="{response}"'
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
