"""Capture stage: one thread per camera reads frames with OpenCV and hands each one on.

``CameraSource`` owns a camera's whole life: open, read, pace (files), thin out (``fps_limit``),
notice outages and stalls, back off and reopen, forever. It knows nothing about the other
stages: frames leave through ``deliver`` (which must be cheap; the receiver keeps only the
newest frame) and what happens to the camera is told to a ``CaptureEvents``.

Outages are reported once each: ``camera_down`` on the first failure (open failed, read failed,
no frame for ``stall_timeout_s``, unexpected error), ``reconnect_attempt`` on every reopen,
``camera_up`` on the first frame after an outage (and on the first frame of all).

Why a camera is down is said plainly (:mod:`surveil.video.diagnose`). Opening is in
:mod:`surveil.video.opening`, the back-off, rate limit and file pacing in :mod:`surveil.video.pacing`.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from surveil.config import CameraConfig
from surveil.types import Frame
from surveil.video.diagnose import PROBE_TIMEOUT_S, diagnose_stream, reason_kind
from surveil.video.opening import CaptureOpenError, mask_url, open_video_capture
from surveil.video.pacing import Backoff, Pacer, RateLimiter, file_fps

__all__ = [  # file_fps and reason_kind: re-exported for callers that import them from here
    "CameraSource",
    "CaptureEvents",
    "CaptureStatus",
    "NullCaptureEvents",
    "OpenCapture",
    "file_fps",
    "reason_kind",
]

log = logging.getLogger(__name__)


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
                why = diagnose_stream(
                    str(self.config.url),
                    min(self.config.read_timeout_s, PROBE_TIMEOUT_S),
                    allow_basic=self.config.allow_basic_auth,
                )
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
