"""Box geometry shared by the tracker, the rules and the evaluation code (numpy, xyxy pixels)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Anchor = Literal["bottom_center", "center"]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of xyxy boxes; 0 where the union is empty."""
    inter = box_intersection(a, b)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def box_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection areas (len(a), len(b)) of xyxy boxes."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    return np.clip(bottom_right - top_left, 0, None).prod(axis=2)


def box_area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def anchor_point(xyxy: Sequence[float], anchor: Anchor = "bottom_center") -> tuple[float, float]:
    """The point of a box that decides where an object is: its feet (bottom centre) or its centre."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    if anchor == "center":
        return ((x1 + x2) / 2.0, (y1 + y2) / 2.0)
    return ((x1 + x2) / 2.0, y2)
