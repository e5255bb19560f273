"""Capture stage: one thread per camera reads frames with OpenCV and hands each one on.

``CameraSource`` owns a camera's whole life: open, read, pace (files), thin out (``fps_limit``),
notice outages and stalls, back off and reopen, forever. It knows nothing about the other
stages: frames leave through ``deliver`` (which must be cheap; the receiver keeps only the
newest frame) and what happens to the camera is told to a ``CaptureEvents``.

Outages are reported once each: ``camera_down`` on the first failure (open failed, read failed,
no frame for ``stall_timeout_s``, unexpected error), ``reconnect_attempt`` on every reopen,
``camera_up`` on the first frame after an outage (and on the first frame of all).

Why a camera is down is said plainly: when OpenCV cannot open a stream (or a stream read fails),
:func:`diagnose_stream` probes the URL itself — name resolution, a TCP connect, and for RTSP a
DESCRIBE (with the URL's credentials, Basic or Digest) — and names the cause: cannot resolve,
refused, no answer (timeout), unauthorised (401), not found (404), no video track. FFmpeg's own
log stays silent (``surveil.redact.quiet_native_logs``), so logs stay one record per line (JSON
with ``logging.format: json``). :func:`reason_kind` maps a reason to the short name used as the
``reason`` label of ``surveil_camera_down_reason``.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import logging
import math
import os
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import cv2
import numpy as np

from surveil.config import CameraConfig
from surveil.redact import redact_url
from surveil.types import Frame

log = logging.getLogger(__name__)

FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
FFMPEG_DEFAULT_OPTIONS = (("rtsp_transport", "tcp"), ("analyzeduration", "500000"))
DEFAULT_FILE_FPS = 25.0
MAX_PACING_LAG_S = 1.0  # a realtime file this far behind schedule restarts its schedule (no burst)

_env_lock = threading.Lock()


class CaptureOpenError(RuntimeError):
    """A camera could not be opened; the message names the camera and its (masked) URL."""


# ---------------------------------------------------------------- events


class CaptureEvents(Protocol):
    """What a camera source tells the rest of the daemon (metrics, status topics)."""

    def frame_read(self, camera: str) -> None:
        """A frame was read from the camera (delivered or skipped)."""

    def frame_skipped(self, camera: str) -> None:
        """A frame was read but not delivered because of ``fps_limit`` (not a drop)."""

    def camera_up(self, camera: str) -> None:
        """The first frame after start or after an outage arrived."""

    def camera_down(self, camera: str, reason: str) -> None:
        """An outage began (reported once per outage, not once per retry)."""

    def reconnect_attempt(self, camera: str) -> None:
        """The camera is being reopened after a failure."""


class NullCaptureEvents:
    """Ignores every event."""

    def frame_read(self, camera: str) -> None:
        pass

    def frame_skipped(self, camera: str) -> None:
        pass

    def camera_up(self, camera: str) -> None:
        pass

    def camera_down(self, camera: str, reason: str) -> None:
        pass

    def reconnect_attempt(self, camera: str) -> None:
        pass


# ---------------------------------------------------------------- opening


def mask_url(url: str | int) -> str:
    """The URL as it may be shown: passwords, secret parameters and known secrets masked (surveil.redact)."""
    return redact_url(url)


def ensure_ffmpeg_capture_options(environ: Any = None) -> str:
    """Make sure ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` asks for RTSP over TCP and a short probe.

    Options already set (by the operator) win; only missing keys are added. OpenCV reads the
    variable at every FFmpeg open, and uses TCP by default only while it is unset.
    """
    env = os.environ if environ is None else environ
    with _env_lock:
        current = env.get(FFMPEG_OPTIONS_ENV, "")
        pairs = [p for p in current.split("|") if p]
        keys = {p.split(";", 1)[0] for p in pairs}
        pairs += [f"{k};{v}" for k, v in FFMPEG_DEFAULT_OPTIONS if k not in keys]
        value = "|".join(pairs)
        if value != current:
            env[FFMPEG_OPTIONS_ENV] = value
            log.debug("%s=%s", FFMPEG_OPTIONS_ENV, value)
        return value


def open_video_capture(config: CameraConfig) -> cv2.VideoCapture:
    """Open a camera's stream, file or device; raise ``CaptureOpenError`` when it will not open."""
    kind = config.kind
    if kind == "stream":
        cap = _open_stream(config)
    elif kind == "file":
        if not Path(str(config.url)).is_file():
            raise CaptureOpenError(f"camera {config.name}: file not found: {mask_url(config.url)}")
        cap = cv2.VideoCapture(str(config.url))
    else:
        cap = _open_device(config.url)
    if not cap.isOpened():
        cap.release()
        if kind == "file":
            why = "not a video OpenCV can decode (no video stream)"
        elif kind == "stream":
            why = diagnose_stream(str(config.url), min(config.open_timeout_s, PROBE_TIMEOUT_S))
        else:
            why = "no such device, or it is busy"
        raise CaptureOpenError(f"camera {config.name}: cannot open {mask_url(config.url)}: {why}")
    return cap


# ---------------------------------------------------------------- diagnosis

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


def _probe_rtsp(sock: socket.socket, parts, host: str, port: int, timeout: float) -> str:
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


def _rtsp_describe(sock: socket.socket, url: str, cseq: int, authorization: str | None, timeout: float):
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


def _open_stream(config: CameraConfig) -> cv2.VideoCapture:
    ensure_ffmpeg_capture_options()
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, _ms(config.open_timeout_s),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC, _ms(config.read_timeout_s),
    ]  # fmt: skip
    return cv2.VideoCapture(str(config.url), cv2.CAP_FFMPEG, params)


def _open_device(url: str | int) -> cv2.VideoCapture:
    source: str | int = int(url) if isinstance(url, int) or str(url).isdigit() else str(url)
    api = cv2.CAP_V4L2 if sys.platform.startswith("linux") and hasattr(cv2, "CAP_V4L2") else cv2.CAP_ANY
    return cv2.VideoCapture(source, api)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


# ---------------------------------------------------------------- timing helpers


class Backoff:
    """Reconnect delays: a ceiling doubling from ``2 * min_s`` up to ``max_s``, full jitter above ``min_s``.

    The n-th delay after a success (n = 0, 1, ...) is uniform in [min_s, min(max_s, min_s * 2**(n+1))]:
    never faster than ``min_s``, never slower than ``max_s``, and cameras that failed together
    do not retry in lock-step.
    """

    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self.min_s = min_s
        self.max_s = max(min_s, max_s)
        self.rng = rng or random.Random()
        self.failures = 0

    def ceiling(self) -> float:
        exponent = min(self.failures + 1, 62)
        return min(self.max_s, self.min_s * 2.0**exponent)

    def next_delay(self) -> float:
        delay = self.rng.uniform(self.min_s, self.ceiling())
        self.failures += 1
        return min(self.max_s, max(self.min_s, delay))

    def reset(self) -> None:
        self.failures = 0


class RateLimiter:
    """Lets at most ``rate`` events per second through (GCRA with half an interval of tolerance).

    The tolerance keeps a source that runs at exactly the limit, with jitter, from losing frames;
    the long-run rate never exceeds the limit, and idle time earns no burst.
    """

    def __init__(self, rate: float | None) -> None:
        self.interval = None if not rate else 1.0 / rate
        self._tat: float | None = None  # theoretical arrival time of the next allowed event

    def allow(self, now: float) -> bool:
        if self.interval is None:
            return True
        if self._tat is not None and now < self._tat - self.interval / 2:
            return False
        self._tat = max(self._tat if self._tat is not None else now, now) + self.interval
        return True


class Pacer:
    """Spaces reads of a file at its own frame rate on the monotonic clock, without drift."""

    def __init__(self, fps: float, clock: Callable[[], float]) -> None:
        self.period = 1.0 / fps
        self.clock = clock
        self._due: float | None = None

    def wait(self, stop: threading.Event) -> bool:
        """Sleep until the next frame is due; False if ``stop`` was set meanwhile."""
        now = self.clock()
        due = now if self._due is None else self._due
        if due - now > 0 and stop.wait(due - now):
            return False
        if now - due > MAX_PACING_LAG_S:
            due = now
        self._due = due + self.period
        return True


def file_fps(cap: cv2.VideoCapture) -> float:
    """The file's frame rate, or ``DEFAULT_FILE_FPS`` when the container does not say."""
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS))
    except (TypeError, ValueError, cv2.error):
        return DEFAULT_FILE_FPS
    return fps if math.isfinite(fps) and 0.0 < fps <= 1000.0 else DEFAULT_FILE_FPS


# ---------------------------------------------------------------- the source


@dataclass(frozen=True)
class CaptureStatus:
    up: bool
    last_frame_mono: float | None
    frames_read: int
    reconnects: int
    last_error: str | None


class _Phase(enum.Enum):
    IDLE = "idle"
    OPENING = "opening"
    READING = "reading"
    BACKOFF = "backoff"
    STOPPED = "stopped"


class _Outcome(enum.Enum):
    FAILED = "failed"  # report, back off, reopen
    ENDED = "ended"  # file over, no loop: the source is finished


OpenCapture = Callable[[CameraConfig], Any]


class CameraSource:
    """Reads one camera on its own daemon thread (``capture-<name>``) until stopped."""

    def __init__(
        self,
        config: CameraConfig,
        deliver: Callable[[Frame], None],
        events: CaptureEvents | None = None,
        open_capture: OpenCapture = open_video_capture,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self._deliver = deliver
        self._events: CaptureEvents = events or NullCaptureEvents()
        self._open_capture = open_capture
        self._clock = clock
        self._wall_clock = wall_clock
        self._backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s, rng)
        self._limiter = RateLimiter(config.fps_limit)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # state below is guarded by _lock
        self._phase = _Phase.IDLE
        self._up = False
        self._down_reported = False
        self._stalled = False
        self._progress_mono = 0.0  # last sign of life: open started/succeeded or frame read
        self._last_frame_mono: float | None = None
        self._frames_read = 0
        self._reconnects = 0
        self._last_error: str | None = None

    # ------------------------------------------------------------ public API

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"camera {self.name}: capture already started")
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.name}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to end without waiting (stop many cameras at once, then join each)."""
        self._stop.set()

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Ask the thread to end and wait up to ``timeout``; True when it has ended.

        Returns at once from a back-off or pacing sleep; a read blocked inside OpenCV ends
        within the configured read timeout (the thread is a daemon either way).
        """
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        ended = not self._thread.is_alive()
        if not ended:
            log.warning("camera %s: capture thread still busy after %.1f s (blocked read?)", self.name, timeout or 0)
        return ended

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> CaptureStatus:
        with self._lock:
            return CaptureStatus(
                up=self._up,
                last_frame_mono=self._last_frame_mono,
                frames_read=self._frames_read,
                reconnects=self._reconnects,
                last_error=self._last_error,
            )

    def check_stall(self, now_mono: float | None = None) -> bool:
        """True while the camera is opening or reading but has shown no frame for ``stall_timeout_s``.

        Meant for another thread (the daemon's housekeeping tick): it reports ``camera_down``
        (once) while the reader may still be blocked in OpenCV; the reader then reopens.
        """
        now = self._clock() if now_mono is None else now_mono
        with self._lock:
            if self._phase not in (_Phase.OPENING, _Phase.READING):
                return False
            if self._stalled:
                return True
            idle = now - self._progress_mono
            if idle < self.config.stall_timeout_s:
                return False
            self._stalled = True
        self._report_down(f"no frame for {idle:.1f} s")
        return True

    # ------------------------------------------------------------ thread body

    def _run(self) -> None:
        log.info("camera %s: capture starting (%s, %s)", self.name, self.config.kind, mask_url(self.config.url))
        try:
            while not self._stop.is_set():
                if self._session() is _Outcome.ENDED:
                    break
                self._wait_backoff()
        except BaseException:  # last resort: never die silently
            log.exception("camera %s: capture thread crashed", self.name)
            self._report_down("capture thread crashed")
            raise
        finally:
            with self._lock:
                self._phase, self._up = _Phase.STOPPED, False
            log.info("camera %s: capture stopped", self.name)

    def _session(self) -> _Outcome:
        """One open → read-until-failure cycle; the capture is always released."""
        self._begin_attempt()
        try:
            cap = self._open()
        except CaptureOpenError as exc:
            return self._fail(str(exc))
        except Exception as exc:
            log.exception("camera %s: unexpected error while opening", self.name)
            return self._fail(f"open failed: {exc!r}")
        try:
            return self._read_frames(cap)
        except Exception as exc:
            log.exception("camera %s: unexpected error while reading", self.name)
            return self._fail(f"unexpected error: {exc!r}")
        finally:
            _release(cap, self.name)

    def _open(self) -> Any:
        cap = self._open_capture(self.config)
        if not cap.isOpened():  # an open_capture that does not diagnose itself (open_video_capture raises)
            _release(cap, self.name)
            raise CaptureOpenError(f"camera {self.name}: cannot open {mask_url(self.config.url)}")
        with self._lock:  # a slow open that succeeds is not a stall
            self._phase = _Phase.READING
            self._stalled = False
            self._progress_mono = self._clock()
        log.debug("camera %s: opened", self.name)
        return cap

    def _read_frames(self, cap: Any) -> _Outcome:
        is_file = self.config.kind == "file"
        pacer = Pacer(file_fps(cap), self._clock) if is_file and self.config.realtime else None
        frames_since_rewind = 0
        while not self._stop.is_set():
            if pacer is not None and not pacer.wait(self._stop):
                break
            ok, image = cap.read()
            now = self._clock()
            if ok and image is not None:
                frames_since_rewind += 1
                if not self._handle_frame(image, now):
                    return _Outcome.FAILED
                continue
            if not is_file:
                why = diagnose_stream(str(self.config.url), min(self.config.read_timeout_s, PROBE_TIMEOUT_S))
                return self._fail(f"read failed (stream ended or connection lost; now: {why})")
            outcome = self._end_of_file(cap, frames_since_rewind)
            if outcome is not None:
                return outcome
            frames_since_rewind = 0
        return _Outcome.FAILED

    def _end_of_file(self, cap: Any, frames_since_rewind: int) -> _Outcome | None:
        """At the end of a file: rewind when looping (None = go on reading), else end the source."""
        if not self.config.loop:
            self._report_down("end of file")
            return _Outcome.ENDED
        if frames_since_rewind == 0:
            return self._fail(f"camera {self.name}: no frame could be read from {mask_url(self.config.url)}")
        if not cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
            return self._fail(f"camera {self.name}: cannot rewind {mask_url(self.config.url)} to loop it")
        return None

    def _handle_frame(self, image: np.ndarray, now: float) -> bool:
        """Count, announce and (within fps_limit) deliver one frame; False if the camera stalled."""
        accepted = self._record_frame(now)
        if accepted is None:
            return False
        seq, came_up = accepted
        if came_up:
            log.info("camera %s: up", self.name)
            self._emit("camera_up", self.name)
        self._emit("frame_read", self.name)
        if self._limiter.allow(now):
            self._deliver(Frame(self.name, seq, now, self._wall_clock(), image))
        else:
            self._emit("frame_skipped", self.name)
        return True

    def _record_frame(self, now: float) -> tuple[int, bool] | None:
        """Update state for a frame read at ``now``: (seq, came up), or None if the camera stalled."""
        with self._lock:
            if self._stalled:  # check_stall has reported it; the reader must reopen
                return None
            idle = now - self._progress_mono
            if idle < self.config.stall_timeout_s:
                seq, came_up = self._frames_read, not self._up
                self._frames_read += 1
                self._last_frame_mono = self._progress_mono = now
                self._up, self._down_reported = True, False
                self._backoff.reset()
                return seq, came_up
            self._stalled = True
        self._report_down(f"no frame for {idle:.1f} s")
        return None

    def _fail(self, reason: str) -> _Outcome:
        self._report_down(reason)
        return _Outcome.FAILED

    # ------------------------------------------------------------ state changes

    def _begin_attempt(self) -> None:
        with self._lock:
            retry = self._phase is not _Phase.IDLE
            self._phase = _Phase.OPENING
            self._stalled = False
            self._progress_mono = self._clock()
            if retry:
                self._reconnects += 1
        if retry:
            log.info("camera %s: reconnecting to %s", self.name, mask_url(self.config.url))
            self._emit("reconnect_attempt", self.name)

    def _wait_backoff(self) -> None:
        delay = self._backoff.next_delay()
        self._set_phase(_Phase.BACKOFF)
        log.debug("camera %s: next attempt in %.2f s", self.name, delay)
        self._stop.wait(delay)

    def _report_down(self, reason: str) -> None:
        if self._stop.is_set():  # failures caused by shutting down are not outages
            log.debug("camera %s: stopping: %s", self.name, reason)
            return
        with self._lock:
            self._up = False
            self._last_error = reason
            first = not self._down_reported
            self._down_reported = True
        if first:
            log.warning("camera %s: down: %s", self.name, reason)
            self._emit("camera_down", self.name, reason)
        else:
            log.debug("camera %s: still down: %s", self.name, reason)

    def _set_phase(self, phase: _Phase) -> None:
        with self._lock:
            self._phase = phase

    def _emit(self, event: str, *args: Any) -> None:
        """Call one events callback; its failure is logged, never the capture's."""
        try:
            getattr(self._events, event)(*args)
        except Exception:
            log.exception("camera %s: events.%s failed", self.name, event)


def _release(cap: Any, camera: str) -> None:
    try:
        cap.release()
    except Exception:
        log.exception("camera %s: release failed", camera)
