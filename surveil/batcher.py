"""Newest-frame-wins slots per camera, and batch assembly across cameras.

Capture threads ``put`` frames; each camera keeps only its newest one, and a frame that is
overwritten before the detector took it is a counted drop. The detector thread calls
``take_batch``: at most one frame per camera, flushed when the batch is full or when the
oldest waiting frame has waited ``max_wait_s`` (DeepStream's batched-push-timeout idea).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from surveil.types import Frame


class FrameBoard:
    def __init__(self, on_drop: Callable[[str], None] = lambda camera: None, clock: Callable[[], float] = time.monotonic):
        self._on_drop = on_drop
        self._clock = clock
        self._slots: dict[str, tuple[Frame, float]] = {}  # camera -> (frame, time it arrived)
        self._cameras: set[str] = set()
        self._cond = threading.Condition()

    def register(self, camera: str) -> None:
        with self._cond:
            self._cameras.add(camera)

    def put(self, frame: Frame) -> None:
        with self._cond:
            replaced = frame.camera in self._slots
            self._slots[frame.camera] = (frame, self._clock())
            self._cond.notify_all()
        if replaced:
            self._on_drop(frame.camera)

    def pending(self) -> int:
        with self._cond:
            return len(self._slots)

    def take_batch(self, max_size: int, max_wait_s: float, stop: threading.Event, poll_s: float = 0.1) -> list[Frame]:
        """Block until a batch is ready (or ``stop`` is set); return its frames, oldest first.

        Full means ``max_size`` frames, or a frame from every registered camera when there are fewer.
        """
        with self._cond:
            while not stop.is_set():
                if self._slots:
                    full = min(max_size, max(len(self._cameras), 1))
                    oldest = min(arrived for _, arrived in self._slots.values())
                    remaining = oldest + max_wait_s - self._clock()
                    if len(self._slots) >= full or remaining <= 0:
                        return self._pop_oldest(max_size)
                    self._cond.wait(timeout=min(remaining, poll_s))
                else:
                    self._cond.wait(timeout=poll_s)
            return []

    def _pop_oldest(self, max_size: int) -> list[Frame]:
        ordered = sorted(self._slots.items(), key=lambda item: item[1][1])[:max_size]
        for camera, _ in ordered:
            del self._slots[camera]
        return [frame for _, (frame, _) in ordered]
