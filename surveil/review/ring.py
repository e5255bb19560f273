"""Per-camera buffer of recent analysed frames, JPEG-encoded, bounded in seconds and in bytes."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class RingFrame:
    ts: float  # wall-clock time of the frame
    jpeg: bytes


class FrameRing:
    """The newest frames of one camera: none older than ``seconds`` before the newest, and at most
    ``max_bytes`` of JPEG in all (the oldest go first). One thread writes and reads it."""

    def __init__(self, seconds: float, max_bytes: int):
        if seconds <= 0 or max_bytes <= 0:
            raise ValueError(f"FrameRing needs seconds and max_bytes above 0, got {seconds}, {max_bytes}")
        self.seconds, self.max_bytes = seconds, max_bytes
        self._frames: deque[RingFrame] = deque()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._frames)

    def push(self, ts: float, jpeg: bytes) -> None:
        if self._frames and ts < self._frames[-1].ts:
            self.clear()  # the clock went back (a file camera looped): older frames would be misplaced
        self._frames.append(RingFrame(ts, jpeg))
        self.bytes += len(jpeg)
        while len(self._frames) > 1 and (self.bytes > self.max_bytes or self._frames[0].ts < ts - self.seconds):
            self.bytes -= len(self._frames.popleft().jpeg)

    def clear(self) -> None:
        self._frames.clear()
        self.bytes = 0

    @property
    def newest(self) -> RingFrame | None:
        return self._frames[-1] if self._frames else None

    def between(self, start: float, end: float) -> tuple[RingFrame, ...]:
        """The frames from ``start`` to ``end``, led by the last one before ``start`` (what was on screen then)."""
        inside = [f for f in self._frames if start <= f.ts <= end]
        before = [f for f in self._frames if f.ts < start]
        return tuple(before[-1:] + inside)
