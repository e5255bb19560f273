"""A synthetic scene with known ground truth, and a pixel-based detector for it.

The clip is real H.264 made by ffmpeg: two white boxes ("people") cross a black 320x240 image
in opposite directions, one along the bottom, one along the top. ``BlobDetector`` finds them by
thresholding the decoded pixels, so the whole capture → batch → track → rule → sink path runs
on real decoded frames without needing a trained network.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from surveil.config import Config
from surveil.types import Detections
from tests.support.media import require_ffmpeg

WIDTH, HEIGHT, FPS, SECONDS = 320, 240, 10, 6
BOX_W, BOX_H = 24, 48
# x(t) of each box's left edge; y of its top edge
WALKERS = {"bottom_left_to_right": ("10+t*45", 150), "top_right_to_left": ("280-t*45", 40)}
RIGHT_HALF = [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]  # each walker spends >= 2 s here


@dataclass(frozen=True)
class SceneClip:
    path: Path
    fps: int = FPS
    frames: int = FPS * SECONDS
    objects: int = len(WALKERS)


def make_scene_clip(path: Path, loops: int = 1) -> SceneClip:
    ffmpeg = require_ffmpeg()
    seconds = SECONDS * loops
    inputs = ["-f", "lavfi", "-i", f"color=c=black:s={WIDTH}x{HEIGHT}:r={FPS}:d={seconds}"]
    chain, last = [], "0"
    for index, (x_expr, y) in enumerate(WALKERS.values(), start=1):
        inputs += ["-f", "lavfi", "-i", f"color=c=white:s={BOX_W}x{BOX_H}:r={FPS}:d={seconds}"]
        t = f"mod(t\\,{SECONDS})"
        chain.append(f"[{last}][{index}]overlay=x='{x_expr.replace('t', t)}':y={y}[v{index}]")
        last = f"v{index}"
    cmd = [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-y", *inputs,
        "-filter_complex", ";".join(chain), "-map", f"[{last}]",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-bf", "0", "-g", str(FPS),
        "-pix_fmt", "yuv420p", "-t", str(seconds), str(path),
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {result.stderr.strip()}")
    return SceneClip(path=path, frames=FPS * seconds)


def right_half_config(clip: Path, state_dir: Path, **sections: Any) -> Config:
    """One camera playing ``clip`` once in real time, a person intrusion rule on its right half,
    MQTT off; ``sections`` adds or replaces top-level sections (``review=``, ``alerts=``)."""
    camera = {
        "name": "scene",
        "url": str(clip),
        "realtime": True,
        "loop": False,
        "zones": [{"name": "right_half", "polygon": RIGHT_HALF}],
        "rules": [{"id": "right", "type": "zone_intrusion", "zone": "right_half", "classes": ["person"]}],
    }
    site = {
        "cameras": [camera],
        "detector": {"batch_size": 1, "max_wait_ms": 10},
        "tracker": {"min_hits": 2, "lost_after_s": 1.0},
        "mqtt": {"enabled": False},
        "state_dir": str(state_dir),
    }
    return Config.model_validate(site | sections)


class BlobDetector:
    """Bright connected regions → 'person' detections. Implements surveil.detection.torch_detector.Detector."""

    class_names: ClassVar[list[str]] = ["__background__", "person"]

    def __init__(self, min_area: int = 200):
        self.min_area = min_area
        self.batches: list[int] = []

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        self.batches.append(len(images))
        return [self._detect_one(image) for image in images]

    def _detect_one(self, image: np.ndarray) -> Detections:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        _, mask = cv2.threshold(gray, 128, 255, cv2.THRESH_BINARY)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        boxes = [(x, y, x + w, y + h) for x, y, w, h, area in stats[1:count] if area >= self.min_area]
        n = len(boxes)
        return Detections.from_arrays(np.array(boxes, np.float32).reshape(n, 4), np.full(n, 0.99), np.ones(n))
