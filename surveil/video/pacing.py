"""Timing helpers of the capture thread: reconnect back-off, ``fps_limit``, realtime pacing of files, a file's frame rate."""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable

import cv2

DEFAULT_FILE_FPS = 25.0
MAX_PACING_LAG_S = 1.0  # a realtime file this far behind schedule restarts its schedule (no burst)


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
