"""Test media: small real H.264 clips made with ffmpeg.

Fixtures (session scope, import them into a conftest to share):
- ``h264_clip``: a 3 s, 15 fps, 640x360 testsrc2 H.264 mp4 (45 frames, a keyframe every second).

``clip_frames`` reads chosen frames of a real clip (e.g. the shipped PETS clip).
"""

from __future__ import annotations

import math
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from surveil.video.clips import read_clip

FFMPEG = shutil.which("ffmpeg")


@dataclass(frozen=True)
class Clip:
    """A generated clip and what it is known to contain."""

    path: Path
    fps: int
    seconds: int
    width: int
    height: int

    @property
    def frames(self) -> int:
        return self.fps * self.seconds


def clip_frames(path: Path, indices: tuple[int, ...]) -> list[np.ndarray]:
    """Frames ``indices`` (0-based) of the video at ``path``, BGR as OpenCV decodes them."""
    start = min(indices)
    every = math.gcd(*(index - start for index in indices)) or 1
    wanted = set(indices)
    frames = {
        frame.index: frame.image
        for frame in read_clip(path, every=every, offset=start, limit=(max(indices) - start) // every + 1)
        if frame.index in wanted
    }
    missing = sorted(wanted - frames.keys())
    assert not missing, f"cannot read frames {missing} of {path}"
    return [frames[index] for index in indices]


def require_ffmpeg() -> str:
    """The ffmpeg executable, or skip the calling test."""
    if FFMPEG is None:
        pytest.skip("ffmpeg is not installed (apt-get install ffmpeg)")
    return FFMPEG


def make_h264_clip(path: Path, *, seconds: int = 3, fps: int = 15, width: int = 640, height: int = 360) -> Clip:
    """Encode a testsrc2 clip as H.264 (baseline-like: no B-frames, keyframe every second)."""
    ffmpeg = require_ffmpeg()
    cmd = [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}",
        "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
        "-bf", "0", "-g", str(fps), "-pix_fmt", "yuv420p", "-movflags", "+faststart",
        str(path),
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0 or not path.is_file():
        raise RuntimeError(f"ffmpeg failed ({result.returncode}): {result.stderr.strip()}")
    return Clip(path=path, fps=fps, seconds=seconds, width=width, height=height)


@pytest.fixture(scope="session")
def h264_clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    """A 3 s, 15 fps, 640x360 H.264 mp4 shared by the whole session."""
    return make_h264_clip(tmp_path_factory.mktemp("media") / "testsrc2-640x360-15fps.mp4")
