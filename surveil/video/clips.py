"""The one clip reader: a video file's frames in order, each with its index and media time.

Benches, tests and the tools read recorded clips through :func:`read_clip` instead of a
hand-written ``cv2.VideoCapture`` loop. Frames are read in order (skipped ones are grabbed but not
decoded into an image), so ``index`` is exactly the frame's position in the file, whatever the
container's seeking would do. The capture is released however the iteration ends. A camera
(stream, device, a file played as a camera) is opened by :mod:`surveil.video.opening` instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from surveil.video.pacing import file_fps

__all__ = ["ClipFrame", "ClipOpenError", "clip_fps", "read_clip"]


class ClipOpenError(ValueError):
    """The clip cannot be read: no such file, or not a video OpenCV can decode."""


@dataclass(frozen=True)
class ClipFrame:
    """One frame of a clip."""

    index: int  # 0-based position of the frame in the file
    image: np.ndarray  # BGR uint8, (H, W, 3), as OpenCV decodes it
    ts: float  # media time in seconds: index / the file's frame rate


def clip_fps(path: str | Path) -> float:
    """The clip's frame rate (``DEFAULT_FILE_FPS`` when the container does not say); ClipOpenError if unreadable."""
    capture = _open(path)
    try:
        return file_fps(capture)
    finally:
        capture.release()


def read_clip(path: str | Path, *, every: int = 1, offset: int = 0, limit: int | None = None) -> Iterator[ClipFrame]:
    """Frames ``offset``, ``offset + every``, ``offset + 2 * every``, ... of the clip at ``path``, at most ``limit`` of them.

    The arguments and the file's existence are checked at the call (ValueError, ClipOpenError);
    a file OpenCV cannot decode raises ClipOpenError when the iteration starts. The iteration ends
    at the end of the file (or at the first frame that cannot be decoded).
    """
    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    if offset < 0:
        raise ValueError(f"offset must be at least 0, got {offset}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be at least 0 (or None), got {limit}")
    if not Path(path).is_file():
        raise ClipOpenError(f"cannot read clip {path}: no such file")
    return _frames(path, every, offset, limit)


def _frames(path: str | Path, every: int, offset: int, limit: int | None) -> Iterator[ClipFrame]:
    if limit == 0:
        return
    capture = _open(path)
    try:
        fps = file_fps(capture)
        index, yielded = 0, 0
        while True:
            wanted = index >= offset and (index - offset) % every == 0
            if not wanted:
                if not capture.grab():
                    return
            else:
                ok, image = capture.read()
                if not ok or image is None:
                    return
                yield ClipFrame(index=index, image=image, ts=index / fps)
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            index += 1
    finally:
        capture.release()


def _open(path: str | Path) -> cv2.VideoCapture:
    if not Path(path).is_file():
        raise ClipOpenError(f"cannot read clip {path}: no such file")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise ClipOpenError(f"cannot read clip {path}: not a video OpenCV can decode")
    return capture
