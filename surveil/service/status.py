"""Values the service reports about itself: the live view's camera rows and the processed-frame meter.

The web server (``surveil.web``) shows these; it depends on them, never the other way round.
One :class:`ProcessedRate` counts analysed frames per camera, and both the live view's fps and
the ``surveil_camera_processed_fps`` gauge read it, so they cannot disagree.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

PROCESSED_FPS_WINDOW_S = 10.0


@dataclass(frozen=True)
class CameraView:
    """One camera as the live view shows it."""

    name: str
    state: str  # "up", "down" or "starting"
    reason: str  # e.g. "streaming", "end of file"; may hold a URL: the server strips it
    fps: float  # frames analysed per second, over the last PROCESSED_FPS_WINDOW_S seconds
    frames: int  # frames analysed since the pipeline started
    offered_fps: float = 0.0  # frames the camera delivered per second, over the same window
    drop_ratio: float = 0.0  # 1 - fps / offered_fps: the share of delivered frames never analysed (0 to 1)
    last_frame_ts: float | None = None  # wall-clock time of the newest analysed frame


class ProcessedRate:
    """Events per second per key over a sliding window; one writer thread, any reader threads."""

    def __init__(self, window_s: float = PROCESSED_FPS_WINDOW_S):
        self.window_s = window_s
        self._times: dict[str, deque[float]] = {}
        self._since: dict[str, float] = {}
        self._lock = threading.Lock()

    def tick(self, key: str, now: float) -> None:
        with self._lock:
            self._times.setdefault(key, deque()).append(now)
            self._since.setdefault(key, now)

    def rate(self, key: str, now: float) -> float:
        """Events in the last ``window_s`` seconds (or since the first, when younger) per second;
        0 until a second has passed since the first."""
        with self._lock:
            times = self._times.setdefault(key, deque())
            since = self._since.setdefault(key, now)
            while times and times[0] <= now - self.window_s:
                times.popleft()
            span = min(self.window_s, now - since)
            return len(times) / span if span >= 1.0 else 0.0
