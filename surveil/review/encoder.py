"""Clips as H.264 MP4 (yuv420p, faststart: what every browser plays), encoded by the ``ffmpeg``
binary with libx264 in one low-priority (nice 19, one thread) background thread.

The queue is bounded: a clip that finds it full is dropped and counted, never waited for, so a
slow encoder costs clips, not alerts. PyAV is not installed and OpenCV's pip wheels carry no
H.264 encoder, so the ``ffmpeg`` binary is the one encoder (absent: clips are counted as failed).
"""

from __future__ import annotations

import bisect
import functools
import logging
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from surveil.review.ring import RingFrame

log = logging.getLogger(__name__)

ENCODE_TIMEOUT_S = 120.0


@functools.cache
def find_ffmpeg() -> str | None:
    """The ``ffmpeg`` binary when it has the libx264 encoder, else None (checked once)."""
    binary = shutil.which("ffmpeg")
    if binary is None:
        return None
    try:
        listed = subprocess.run(
            [binary, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return binary if " libx264 " in listed else None


def resample(frames: Sequence[RingFrame], fps: float) -> list[bytes]:
    """Constant-rate frames from irregular ones: at each tick, the newest frame at or before it."""
    if not frames:
        return []
    times = [f.ts for f in frames]
    start, end = times[0], times[-1]
    count = max(1, round((end - start) * fps) + 1)
    return [frames[max(0, bisect.bisect_right(times, start + i / fps) - 1)].jpeg for i in range(count)]


def encode_clip(frames: Sequence[RingFrame], fps: float, path: Path, ffmpeg: str, x264_asm: str = "") -> float:
    """Write ``frames`` as an MP4 at ``path`` (atomically: a temporary file, then a rename); returns the
    clip's length in seconds. OSError or subprocess.SubprocessError when it cannot. ``x264_asm`` (e.g.
    ``AVX2``) limits x264's SIMD, for benchmarks."""
    jpegs = resample(frames, fps)
    if not jpegs:
        raise OSError("no frames to encode")
    partial = path.with_name(path.name + ".part")
    nice = ["nice", "-n", "19"] if shutil.which("nice") else []
    command = [
        *nice, ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "image2pipe", "-c:v", "mjpeg", "-framerate", f"{fps:g}", "-i", "-",
        "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", "-c:v", "libx264", "-preset", "veryfast",
        "-crf", "28", "-pix_fmt", "yuv420p", "-threads", "1", *(["-x264-params", f"asm={x264_asm}"] if x264_asm else []),
        "-movflags", "+faststart", "-f", "mp4", str(partial),
    ]  # fmt: skip
    try:
        # A session of its own: Ctrl-C in a terminal signals the whole process group, and the daemon's
        # graceful stop still finishes the queued clips (ClipEncoder.close), which needs ffmpeg alive.
        done = subprocess.run(
            command, input=b"".join(jpegs), capture_output=True, timeout=ENCODE_TIMEOUT_S, start_new_session=True
        )
        if done.returncode != 0:
            raise OSError(f"ffmpeg exited with {done.returncode}: {done.stderr.decode(errors='replace')[-300:]}")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return len(jpegs) / fps


@dataclass(frozen=True)
class ClipJob:
    incident_id: str
    frames: tuple[RingFrame, ...]
    fps: float
    path: Path


@dataclass(frozen=True)
class ClipResult:
    incident_id: str
    ok: bool
    clip_s: float = 0.0  # length of the clip
    encode_s: float = 0.0  # wall time the encoder took
    cpu_s: float = 0.0  # CPU time of the ffmpeg process (user + system)
    why: str = ""


class ClipEncoder:
    """One background thread encoding ClipJobs in order; ``submit`` never blocks."""

    def __init__(self, on_done: Callable[[ClipResult], None], max_queue: int = 4, ffmpeg: str | None = None):
        self._on_done = on_done
        self._ffmpeg = ffmpeg or find_ffmpeg()
        self._queue: queue.Queue[ClipJob | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="clip-encoder", daemon=True)
        self._thread.start()

    @property
    def available(self) -> bool:
        return self._ffmpeg is not None

    def submit(self, job: ClipJob) -> bool:
        """Queue ``job``; False (the caller counts a dropped clip) when the queue is full."""
        try:
            self._queue.put_nowait(job)
            return True
        except queue.Full:
            return False

    def close(self, timeout: float = 10.0) -> None:
        """Finish the queued clips within ``timeout`` s, then stop (the thread is a daemon: a stuck one is left)."""
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            try:
                self._queue.put(None, timeout=0.2)
                break
            except queue.Full:
                continue
        self._thread.join(timeout=max(0.1, deadline - time.monotonic()))

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            self._on_done(self._encode(job))

    def _encode(self, job: ClipJob) -> ClipResult:
        if self._ffmpeg is None:
            return ClipResult(job.incident_id, False, why="no ffmpeg binary with libx264 on PATH")
        started, children = time.monotonic(), os.times()
        try:
            clip_s = encode_clip(job.frames, job.fps, job.path, self._ffmpeg)
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("review: clip of incident %s not written: %s", job.incident_id, exc)
            return ClipResult(job.incident_id, False, why=str(exc)[:200])
        after = os.times()
        cpu = (after.children_user - children.children_user) + (after.children_system - children.children_system)
        return ClipResult(job.incident_id, True, clip_s, time.monotonic() - started, cpu)
