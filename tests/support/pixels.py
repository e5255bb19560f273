"""Pixel checks on rendered pictures."""

from __future__ import annotations

import numpy as np


def outline_hits(image: np.ndarray, polygon, colours, tolerance: int = 60) -> float:
    """Fraction of points along the polygon's edges (relative coordinates) that have a pixel of one
    of ``colours`` (BGR) within 1 px; the corners, where labels go, are left out."""
    height, width = image.shape[:2]
    points = np.asarray(polygon, float) * [width, height]
    hits = total = 0
    for a, b in zip(points, np.roll(points, -1, axis=0)):
        for t in np.linspace(0.1, 0.9, 20):
            x, y = np.round(a + t * (b - a)).astype(int)
            x, y = min(max(x, 0), width - 1), min(max(y, 0), height - 1)
            patch = image[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2].reshape(-1, 3).astype(int)
            total += 1
            hits += any((np.abs(patch - colour).max(axis=1) <= tolerance).any() for colour in colours)
    return hits / total
