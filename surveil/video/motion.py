"""Per-camera motion gating: skip the detector on frames where nothing moves.

``MotionDetector`` looks at a downscaled grey frame against a running background (an
exponential moving average, ``cv2.accumulateWeighted``): pixels differing by more than
``threshold`` grey levels form blobs, and blobs covering at least ``min_area`` of the image
are motion. A global brightness change (a cloud, auto-exposure) moves every pixel a little
and is absorbed by subtracting the frame's median difference first.

``MotionGate`` adds the keep-alive: while something may be tracked, the detector runs at least
every ``keepalive_s`` seconds even without motion, so stationary objects (a loiterer, an abandoned
bag) keep matching their tracks; ``keepalive_s`` must stay below ``tracker.lost_after_s`` or such
tracks are lost between two keep-alive detections (the config checks it). "Something may be
tracked" means a call found something within the last ``hold_s`` seconds (the daemon uses
``tracker.lost_after_s`` + ``keepalive_s``: one more keep-alive after any track could have been
lost). Once that long has passed with nothing found, the scene is empty, and an object can only
enter it by moving: the detector then runs on motion, plus an idle check every
``idle_keepalive_s`` for whatever the motion mask misses (Frigate likewise runs no detection on a
still, empty scene). A new track is confirmed only after ``tracker.min_hits`` consecutive matched
frames (a tentative track that misses one update is dropped), so every detector call, on motion or
keep-alive, that finds something is followed by calls on the next ``confirm_frames - 1`` frames: an
object that appears and then stands still (or is there when the camera starts, or whose track was
lost) still gets a confirmed track.
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
    keepalive_s: float = 2.0  # without motion, run the detector at least this often while something may be tracked
    hold_s: float = 5.0  # "may be tracked": a call found something this recently (tracker.lost_after_s + keepalive_s)
    idle_keepalive_s: float = 10.0  # without motion on an empty scene, run the detector at least this often
    confirm_frames: int = 2  # every call is followed by calls on the next confirm_frames - 1 frames (tracker.min_hits)


def motion_settings(motion, tracker) -> MotionSettings:
    """A camera's ``motion`` config with the ``tracker`` config it serves (surveil.config objects)."""
    return MotionSettings(
        motion.threshold,
        motion.min_area,
        keepalive_s=motion.keepalive_s,
        hold_s=tracker.lost_after_s + motion.keepalive_s,
        idle_keepalive_s=motion.idle_keepalive_s,
        confirm_frames=tracker.min_hits,
    )


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
    """Decides per frame whether the detector runs: on motion, or when a keep-alive is due."""

    def __init__(self, settings: MotionSettings = MotionSettings()):
        self.settings = settings
        self.motion = MotionDetector(settings)
        self._last_detect: float | None = None  # the last motion or keep-alive call
        self._last_asked: float | None = None  # the last call of any kind, follow-ups included
        self._last_found: float | None = None  # the last call that found something
        self._owed = 0  # follow-up calls still due so that a new track can be confirmed

    def should_detect(self, image: np.ndarray, now: float) -> bool:
        moving = self.motion.update(image)
        if moving or self._keepalive_due(now):
            self._owed = self.settings.confirm_frames - 1
            self._last_detect = self._last_asked = now
            return True
        if self._owed > 0:
            self._owed -= 1
            self._last_asked = now
            return True
        return False

    def _keepalive_due(self, now: float) -> bool:
        if self._last_detect is None:
            return True
        holding = self._last_found is not None and now - self._last_found < self.settings.hold_s
        interval = self.settings.keepalive_s if holding else self.settings.idle_keepalive_s
        return now - self._last_detect >= interval

    def detected(self, count: int) -> None:
        """What the call this gate asked for found: with nothing found there is no new track to confirm."""
        if count == 0:
            self._owed = 0
        else:
            self._last_found = self._last_asked
