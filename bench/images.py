"""Reading the shared data's images in the benches."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_bgr(path: str | Path) -> np.ndarray:
    """The image at ``path`` as OpenCV's BGR array; FileNotFoundError naming the path when it cannot be read."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read an image at {path}")
    return image
