"""The one clip reader (surveil.video.clips) on a real H.264 clip."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from surveil.video import clips
from surveil.video.clips import ClipFrame, ClipOpenError, clip_fps, read_clip
from tests.support.media import Clip


def decoded(clip: Clip) -> list[np.ndarray]:
    """Every frame as a plain OpenCV read loop sees it (the reference)."""
    capture = cv2.VideoCapture(str(clip.path))
    out = []
    while (got := capture.read())[0]:
        out.append(got[1])
    capture.release()
    return out


def test_every_frame_in_order_with_index_and_media_time(h264_clip: Clip) -> None:
    frames = list(read_clip(h264_clip.path))
    reference = decoded(h264_clip)
    assert len(frames) == len(reference) == h264_clip.frames
    for i, (frame, image) in enumerate(zip(frames, reference)):
        assert isinstance(frame, ClipFrame) and frame.index == i
        assert frame.ts == pytest.approx(i / h264_clip.fps)
        assert frame.image.dtype == np.uint8 and frame.image.shape == (h264_clip.height, h264_clip.width, 3)
        np.testing.assert_array_equal(frame.image, image)
    assert clip_fps(h264_clip.path) == pytest.approx(h264_clip.fps)


@pytest.mark.parametrize(
    ("every", "offset", "limit", "indices"),
    [
        (1, 0, 3, [0, 1, 2]),
        (10, 0, None, [0, 10, 20, 30, 40]),
        (10, 5, None, [5, 15, 25, 35]),
        (7, 3, 2, [3, 10]),
        (1, 44, None, [44]),
        (1, 45, None, []),
        (1, 0, 0, []),
    ],
)
def test_every_offset_and_limit_choose_the_frames(h264_clip: Clip, every, offset, limit, indices) -> None:
    reference = decoded(h264_clip)
    frames = list(read_clip(h264_clip.path, every=every, offset=offset, limit=limit))
    assert [f.index for f in frames] == indices
    for frame in frames:
        np.testing.assert_array_equal(frame.image, reference[frame.index])


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"every": 0}, "every must be at least 1"), ({"offset": -1}, "offset"), ({"limit": -1}, "limit")],
)
def test_bad_arguments_raise_at_the_call(h264_clip: Clip, kwargs, error) -> None:
    with pytest.raises(ValueError, match=error):
        read_clip(h264_clip.path, **kwargs)


def test_a_missing_or_undecodable_file_raises_a_value_error(tmp_path) -> None:
    with pytest.raises(ClipOpenError, match="no such file"):
        read_clip(tmp_path / "absent.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(ValueError, match="not a video OpenCV can decode"):
        list(read_clip(junk))
    with pytest.raises(ClipOpenError):
        clip_fps(junk)


def test_the_capture_is_released_however_the_iteration_ends(h264_clip: Clip, monkeypatch) -> None:
    real = cv2.VideoCapture
    opened: list[Capture] = []
    released: list[Capture] = []

    class Capture:  # wraps the real capture (a Python subclass of the native class crashes at collection)
        def __init__(self, *args: Any) -> None:
            self.inner = real(*args)
            opened.append(self)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def release(self) -> None:
            released.append(self)
            self.inner.release()

    monkeypatch.setattr(clips.cv2, "VideoCapture", Capture)
    list(read_clip(h264_clip.path))  # to the end
    frames = read_clip(h264_clip.path)
    next(frames)
    frames.close()  # abandoned early
    with pytest.raises(RuntimeError, match="caller"):
        for _ in read_clip(h264_clip.path):
            raise RuntimeError("the caller failed")
    assert len(opened) == 3 and released == opened
