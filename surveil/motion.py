"""Per-camera motion gating: skip the detector on frames where nothing moves.

``MotionDetector`` looks at a downscaled grey frame against a running background (an
exponential moving average, ``cv2.accumulateWeighted``): pixels differing by more than
``threshold`` grey levels form blobs, and blobs covering at least ``min_area`` of the image
are motion. A global brightness change (a cloud, auto-exposure) moves every pixel a little
and is absorbed by subtracting the frame's median difference first.

``MotionGate`` adds the keep-alive: even without motion the detector runs at least every
``keepalive_s`` seconds, so stationary objects (a loiterer, an abandoned bag) keep matching
their tracks; ``keepalive_s`` must stay below ``tracker.lost_after_s`` or such tracks are lost
between two keep-alive detections (the config checks it). A new track is confirmed only after
``tracker.min_hits`` consecutive matched frames (a tentative track that misses one update is
dropped), so every detector call, on motion or keep-alive, that finds something is followed by
calls on the next ``confirm_frames - 1`` frames: an object that appears and then stands still (or is there when the
camera starts, or whose track was lost) still gets a confirmed track.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WIDTH = 160  # the frame is scaled to this width before comparing


@dataclass(frozen=True)
class MotionSettings:
    threshold: int = 25  # grey levels (0-255) a pixel must differ from the background
    min_area: float = 0.002  # least blob area, as a fraction of the image
    alpha: float = 0.05  # background update rate per frame (EMA weight of the new frame)
    keepalive_s: float = 2.0  # run the detector at least this often without motion
    confirm_frames: int = 2  # every call is followed by calls on the next confirm_frames - 1 frames (tracker.min_hits)


class MotionDetector:
    """Motion on one camera's frames; feed every frame in order."""

    def __init__(self, settings: MotionSettings = MotionSettings()):
        self.settings = settings
        self._background: np.ndarray | None = None
        self.boxes: list[tuple[int, int, int, int]] = []  # last motion boxes, in full-frame pixels

    def _grey(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        small = cv2.resize(image, (WIDTH, max(1, round(h * WIDTH / w))), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        return cv2.GaussianBlur(grey, (5, 5), 0).astype(np.float32)

    def update(self, image: np.ndarray) -> bool:
        """True when ``image`` shows motion against the background (the first frame always does)."""
        grey = self._grey(image)
        if self._background is None or self._background.shape != grey.shape:
            self._background = grey.copy()
            self.boxes = [(0, 0, image.shape[1], image.shape[0])]
            return True
        diff = grey - self._background
        diff -= float(np.median(diff))  # a global brightness step is not motion
        mask = (np.abs(diff) > self.settings.threshold).astype(np.uint8)
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
        cv2.accumulateWeighted(grey, self._background, self.settings.alpha)
        self.boxes = self._blobs(mask, image.shape[1] / WIDTH)
        return bool(self.boxes)

    def _blobs(self, mask: np.ndarray, scale: float) -> list[tuple[int, int, int, int]]:
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        least = self.settings.min_area * mask.size
        return [
            (int(x * scale), int(y * scale), int((x + w) * scale), int((y + h) * scale))
            for x, y, w, h, area in stats[1:count]
            if area >= least
        ]


class MotionGate:
    """Decides per frame whether the detector runs: on motion, or when the last call is ``keepalive_s`` old."""

    def __init__(self, settings: MotionSettings = MotionSettings()):
        self.settings = settings
        self.motion = MotionDetector(settings)
        self._last_detect: float | None = None
        self._owed = 0  # follow-up calls still due so that a new track can be confirmed

    def should_detect(self, image: np.ndarray, now: float) -> bool:
        moving = self.motion.update(image)
        due = self._last_detect is None or now - self._last_detect >= self.settings.keepalive_s
        if moving or due:
            self._owed = self.settings.confirm_frames - 1
            self._last_detect = now
            return True
        if self._owed > 0:
            self._owed -= 1
            return True
        return False

    def detected(self, count: int) -> None:
        """What the call this gate asked for found: with nothing found there is no new track to confirm."""
        if count == 0:
            self._owed = 0
