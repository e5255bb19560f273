"""The detector's side of a worker process: shared-memory frame slots and the request loop.

The daemon (:mod:`surveil.service.detector_worker`) writes a batch of frames into a
:class:`FrameSlots` segment — one fixed slot per batch position, as large as the largest frame
seen — and sends a small request over a pipe: the segment's name, its slot size and each frame's
shape. The worker reads the frames in place (no pickling of images), runs its detector and sends
back each frame's boxes, scores, classes and embeddings as small arrays. One batch is in flight
per worker, so the worker's views of the slots are never overwritten while it reads them.

Messages (tuples, first item the kind):
    worker -> daemon  ("ready", class_names, operating_thresholds | None)  once, after warm-up
                      ("failed", why)                                      the model could not load
                      ("result", seq, [(xyxy, confidence, class_id, embedding | None), ...], seconds,
                       implausible)  implausible: boxes the detector dropped as implausible in this batch
                      ("error", seq, why)                                  the detector raised
    daemon -> worker  ("detect", seq, segment, slot_bytes, shapes)
                      ("stop",)
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Sequence
from multiprocessing import shared_memory
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from surveil.config import DetectorConfig
from surveil.detection.protocol import Detector, implausible_boxes
from surveil.types import Detections

Shape = tuple[int, int, int]
DetectorFactory = Callable[[DetectorConfig, Path | None], Detector]
WARMUP_SHAPE: Shape = (360, 640, 3)  # a typical sub-stream; the first real batch may still be slower


class SlotTooSmall(ValueError):
    """A frame larger than the segment's slots: the daemon makes a larger segment."""


class FrameSlots:
    """``slots`` fixed slots of ``slot_bytes`` each in one shared-memory segment (uint8 HxWx3 frames)."""

    def __init__(self, memory: shared_memory.SharedMemory, slots: int, slot_bytes: int, owner: bool):
        self._memory, self.slots, self.slot_bytes, self._owner = memory, slots, slot_bytes, owner

    @classmethod
    def create(cls, slots: int, slot_bytes: int) -> FrameSlots:
        if slots < 1 or slot_bytes < 1:
            raise ValueError(f"need at least one slot of one byte, not {slots} x {slot_bytes}")
        return cls(shared_memory.SharedMemory(create=True, size=slots * slot_bytes), slots, slot_bytes, owner=True)

    @classmethod
    def attach(cls, name: str, slot_bytes: int) -> FrameSlots:
        # a spawned worker shares the daemon's resource tracker: registering the name again is harmless
        memory = shared_memory.SharedMemory(name=name)
        return cls(memory, memory.size // slot_bytes, slot_bytes, owner=False)

    @property
    def name(self) -> str:
        return self._memory.name

    def fits(self, images: Sequence[np.ndarray]) -> bool:
        return len(images) <= self.slots and all(image.nbytes <= self.slot_bytes for image in images)

    def write(self, images: Sequence[np.ndarray]) -> list[Shape]:
        """Copy ``images`` into slots 0..n-1; their shapes, for :meth:`read`."""
        if not self.fits(images):
            raise SlotTooSmall(
                f"{len(images)} frames of up to {max(i.nbytes for i in images)} bytes do not fit "
                f"{self.slots} slots of {self.slot_bytes} bytes"
            )
        shapes = []
        for index, image in enumerate(images):
            shape = _frame_shape(image)
            self._view(index, shape)[...] = image.reshape(shape)
            shapes.append(shape)
        return shapes

    def read(self, shapes: Sequence[Shape]) -> list[np.ndarray]:
        """Views of slots 0..n-1 (valid until the next :meth:`write`; not copied)."""
        if len(shapes) > self.slots:
            raise SlotTooSmall(f"{len(shapes)} frames for {self.slots} slots")
        return [self._view(index, (int(h), int(w), int(c))) for index, (h, w, c) in enumerate(shapes)]

    def _view(self, index: int, shape: Shape) -> np.ndarray:
        size = int(np.prod(shape))
        if size > self.slot_bytes:
            raise SlotTooSmall(f"a {shape} frame needs {size} bytes; slots hold {self.slot_bytes}")
        memory = self._memory.buf
        assert memory is not None  # None only after close()
        buffer = memory[index * self.slot_bytes : index * self.slot_bytes + size]
        return np.ndarray(shape, np.uint8, buffer)

    def close(self) -> None:
        """Detach (and, for the daemon's segment, remove it)."""
        self._memory.close()
        if self._owner:
            with contextlib.suppress(FileNotFoundError):
                self._memory.unlink()


def slot_bytes_for(images: Sequence[np.ndarray], at_least: int = 0) -> int:
    """Room for the largest of ``images`` (and at least ``at_least``), rounded up to 4 KiB pages."""
    largest = max([at_least, *(image.nbytes for image in images)])
    return -(-largest // 4096) * 4096


def _frame_shape(image: np.ndarray) -> Shape:
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"frames must be uint8 HxW or HxWxC, not {image.dtype} {image.shape}")
    return (image.shape[0], image.shape[1], image.shape[2] if image.ndim == 3 else 1)


def pack(detections: Detections) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    return detections.xyxy, detections.confidence, detections.class_id, detections.embedding


def unpack(packed: Sequence[Any]) -> Detections:
    xyxy, confidence, class_id, embedding = packed
    return Detections.from_arrays(xyxy, confidence, class_id, embedding)


# ---------------------------------------------------------------------------------------------- the worker process


def default_factory(config: DetectorConfig, cache_dir: Path | None) -> Detector:
    from surveil.detection.factory import create_detector

    return create_detector(config, cache_dir)


def worker_main(conn: Connection, config: DetectorConfig, cache_dir: Path | None, factory: DetectorFactory) -> None:
    """Entry point of the worker process (spawned): load and warm up the model, then answer requests."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the daemon stops us in order
    try:
        detector = factory(config, cache_dir)
        detector.detect([np.zeros(WARMUP_SHAPE, np.uint8)])
    except Exception as exc:
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    thresholds = getattr(detector, "operating_thresholds", None)
    conn.send(("ready", list(detector.class_names), None if thresholds is None else np.asarray(thresholds)))
    serve(conn, detector)


def serve(conn: Connection, detector: Detector) -> None:
    """Answer ``detect`` requests until ``stop`` or the daemon's end of the pipe closes."""
    slots: FrameSlots | None = None
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:
                return
            if message[0] == "stop":
                return
            _, seq, segment, slot_bytes, shapes = message
            if slots is None or slots.name != segment:
                if slots is not None:
                    slots.close()
                slots = FrameSlots.attach(segment, slot_bytes)
            conn.send(_answer(detector, slots, seq, shapes))
    finally:
        if slots is not None:
            slots.close()


def _answer(detector: Detector, slots: FrameSlots, seq: int, shapes: Sequence[Shape]) -> tuple[Any, ...]:
    started = time.perf_counter()
    dropped_before = implausible_boxes(detector)
    try:
        images = [image if image.shape[2] != 1 else image[:, :, 0] for image in slots.read(shapes)]
        results = detector.detect(images)
    except Exception as exc:  # the detector's failure, not the worker's: the daemon logs it and skips the batch
        return ("error", seq, f"{type(exc).__name__}: {exc}"[:500])
    dropped = implausible_boxes(detector) - dropped_before
    return ("result", seq, [pack(d) for d in results], time.perf_counter() - started, dropped)
