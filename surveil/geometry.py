"""Pure geometry shared by the tracker, the rules, the config checks and the evaluation code.

Boxes are ``xyxy`` in pixels; polygons and lines are (K, 2) arrays in whatever coordinates the
caller uses (the rules use relative 0-1 image coordinates). No state, no policy: rules decide
what an anchor inside a polygon or on one side of a line means.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Anchor = Literal["bottom_center", "center"]
Box = Sequence[float] | np.ndarray  # one xyxy box: a tuple, a list or a row of an (N, 4) array


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


def box_tuple(xyxy: Box) -> tuple[float, float, float, float]:
    """``xyxy`` as four Python floats (what ``Track.xyxy`` holds)."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return (x1, y1, x2, y2)


def box_centre(xyxy: Box) -> tuple[float, float]:
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return ((x1 + x2) / 2.0, (y1 + y2) / 2.0)


def box_height(xyxy: Box) -> float:
    return max(float(xyxy[3]) - float(xyxy[1]), 0.0)


def anchor_point(xyxy: Box, anchor: Anchor = "bottom_center") -> tuple[float, float]:
    """The point of a box that decides where an object is: its feet (bottom centre) or its centre."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    if anchor == "center":
        return ((x1 + x2) / 2.0, (y1 + y2) / 2.0)
    return ((x1 + x2) / 2.0, y2)


def relative_anchors(boxes: Sequence[Sequence[float]], anchor: Anchor, width: int, height: int) -> np.ndarray:
    """(N, 2) anchor points of ``boxes`` in relative 0-1 image coordinates."""
    points = np.array([anchor_point(b, anchor) for b in boxes], np.float64).reshape(-1, 2)
    return points / np.array([max(width, 1), max(height, 1)], np.float64)


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd test of (N, 2) points against a simple (K, 2) polygon (convex or not), vectorised.

    A point exactly on a left edge, or on a horizontal edge with the interior below it (larger y:
    the top edge on an image), counts as inside; on a right edge or a bottom edge, as outside. Every
    edge is evaluated from its smaller-y end, so two polygons sharing an edge (in either vertex
    order) never both claim a point.
    """
    points = np.asarray(points, np.float64).reshape(-1, 2)
    if len(points) == 0:
        return np.zeros((0,), bool)
    polygon = np.asarray(polygon, np.float64)
    x, y = points[:, 0:1], points[:, 1:2]
    ends = np.stack([polygon, np.roll(polygon, -1, axis=0)], axis=1)  # (K, 2 ends, xy)
    ends = np.where((ends[:, 0, 1] > ends[:, 1, 1])[:, None, None], ends[:, ::-1], ends)  # smaller y first
    x1, y1 = ends[:, 0, 0][None, :], ends[:, 0, 1][None, :]
    x2, y2 = ends[:, 1, 0][None, :], ends[:, 1, 1][None, :]
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    crossings = straddles & (x < x_cross)
    return (crossings.sum(axis=1) % 2) == 1


def polygon_area(points: Sequence[Sequence[float]]) -> float:
    """Unsigned area (shoelace formula)."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    if len(p) < 3:
        return 0.0
    return abs(float(np.dot(p[:, 0], np.roll(p[:, 1], -1)) - np.dot(p[:, 1], np.roll(p[:, 0], -1)))) / 2.0


def _orient(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])


def polygon_self_intersects(points: Sequence[Sequence[float]]) -> bool:
    """True when two non-adjacent edges of the closed polygon properly cross.

    Vectorised O(K^2) with a bounding-box prefilter, so only edge pairs whose boxes overlap get the
    orientation test (a 256-point zone takes about a millisecond)."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    k = len(p)
    if k < 4:
        return False
    a, b = p, np.roll(p, -1, axis=0)
    low, high = np.minimum(a, b), np.maximum(a, b)
    overlap = np.all((low[:, None, :] <= high[None, :, :]) & (low[None, :, :] <= high[:, None, :]), axis=2)
    overlap = np.triu(overlap, 2)
    overlap[0, k - 1] = False  # first and last edges share a vertex
    i, j = np.nonzero(overlap)
    d1, d2 = _orient(a[j], b[j], a[i]), _orient(a[j], b[j], b[i])
    d3, d4 = _orient(a[i], b[i], a[j]), _orient(a[i], b[i], b[j])
    return bool(np.any((d1 * d2 < 0) & (d3 * d4 < 0)))


def signed_side(points: np.ndarray, a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """Signed distance of (N, 2) points from the infinite line a->b, in the points' units.

    Positive = to the right of a->b as drawn on an image (y grows downwards), i.e. the side a
    clockwise turn from the direction a->b points to.
    """
    points = np.asarray(points, np.float64).reshape(-1, 2)
    a_, b_ = np.asarray(a, np.float64), np.asarray(b, np.float64)
    length = max(float(np.hypot(*(b_ - a_))), 1e-12)
    return _orient(a_[None], b_[None], points) / length


def segments_cross(p: Sequence[float], q: Sequence[float], a: Sequence[float], b: Sequence[float]) -> bool:
    """True when segment p-q crosses segment a-b (touching an end point counts)."""
    p_, q_, a_, b_ = (np.asarray(v, np.float64) for v in (p, q, a, b))
    d1, d2 = _orient(a_, b_, p_), _orient(a_, b_, q_)
    d3, d4 = _orient(p_, q_, a_), _orient(p_, q_, b_)
    return bool(d1 * d2 <= 0 and d3 * d4 <= 0 and not (d1 == d2 == 0))
