"""Newest-frame-wins slots per camera, and batch assembly across cameras.

Capture threads ``put`` frames; each camera keeps only its newest one, and a frame that is
overwritten before the detector took it is a counted drop. The detector thread calls
``take_batch``: at most one frame per camera, flushed when the batch is full or when the
oldest waiting frame has waited ``max_wait_s`` (DeepStream's batched-push-timeout idea).

Fair share: when more cameras have a frame than fit in a batch, the least recently served
cameras go first (ties: the older frame). A camera that has a frame is therefore served within
``ceil(cameras / max_size)`` batches, whatever the frame rates: a camera served in one batch
queues behind every camera that was waiting then. (Oldest-frame-first starved a fast camera:
its newest frame was never the oldest.)

"Full" counts the cameras that are delivering: those with a frame put in the last
``ACTIVE_S`` seconds. A camera that is down does not hold every batch for ``max_wait_s``.

Several detectors (``lanes``, one taking thread each) share one board: "full" is then each lane's
share of the delivering cameras, and a camera whose frame is in a lane's batch is not given to
another lane until that lane calls ``release`` — so one camera's frames are analysed in order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from surveil.types import Frame


class FrameBoard:
    ACTIVE_S = 2.0  # a camera that put a frame this recently is expected in a full batch

    def __init__(
        self,
        on_drop: Callable[[str], None] = lambda camera: None,
        clock: Callable[[], float] = time.monotonic,
        lanes: int = 1,
    ):
        self._on_drop = on_drop
        self._clock = clock
        self._slots: dict[str, tuple[Frame, float]] = {}  # camera -> (frame, time it arrived)
        self._cameras: set[str] = set()
        self._last_put: dict[str, float] = {}  # camera -> time of its newest frame
        self._served: dict[str, int] = {}  # camera -> number of the batch that last took its frame
        self._batches = 0
        self._lanes = lanes
        self._busy: set[str] = set()  # cameras whose frame a lane is detecting
        self._cond = threading.Condition()

    def register(self, camera: str) -> None:
        with self._cond:
            self._cameras.add(camera)

    def put(self, frame: Frame) -> None:
        with self._cond:
            replaced = frame.camera in self._slots
            now = self._clock()
            self._slots[frame.camera] = (frame, now)
            self._last_put[frame.camera] = now
            self._cond.notify_all()
        if replaced:
            self._on_drop(frame.camera)

    def pending(self) -> int:
        with self._cond:
            return len(self._slots)

    def release(self, cameras: list[str]) -> None:
        """A lane finished the batch holding these cameras' frames: other lanes may take their next ones."""
        if self._lanes > 1:
            with self._cond:
                self._busy.difference_update(cameras)
                self._cond.notify_all()

    def take_batch(self, max_size: int, max_wait_s: float, stop: threading.Event, poll_s: float = 0.1) -> list[Frame]:
        """Block until a batch is ready (or ``stop`` is set); return its frames, oldest first.

        Full means ``max_size`` frames, or a frame from every delivering camera when there are fewer.
        """
        with self._cond:
            while not stop.is_set():
                free = [arrived for camera, (_, arrived) in self._slots.items() if camera not in self._busy]
                if free:
                    now = self._clock()
                    full = min(max_size, max(-(-self._delivering(now) // self._lanes), 1))
                    remaining = min(free) + max_wait_s - now
                    if len(free) >= full or remaining <= 0:
                        return self._pop_fair(max_size if self._lanes == 1 else full)  # a lane takes its share
                    self._cond.wait(timeout=min(remaining, poll_s))
                else:
                    self._cond.wait(timeout=poll_s)
            return []

    def _delivering(self, now: float) -> int:
        return sum(
            1
            for camera in self._cameras | self._slots.keys()
            if now - self._last_put.get(camera, -1e18) <= self.ACTIVE_S
        )

    def _pop_fair(self, max_size: int) -> list[Frame]:
        """Least recently served cameras first (ties: older frame); the batch is returned oldest frame first."""
        free = [camera for camera in self._slots if camera not in self._busy]
        chosen = sorted(free, key=lambda camera: (self._served.get(camera, -1), self._slots[camera][1]))[:max_size]
        self._batches += 1
        taken = []
        for camera in chosen:
            self._served[camera] = self._batches
            taken.append(self._slots.pop(camera))
            if self._lanes > 1:
                self._busy.add(camera)
        return [frame for frame, _ in sorted(taken, key=lambda item: item[1])]
