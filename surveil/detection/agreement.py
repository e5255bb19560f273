"""How far two detectors agree on the same frames (the backend tests and benches)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from surveil.geometry import box_iou
from surveil.types import Detections

__all__ = ["detection_agreement"]


def detection_agreement(
    reference: Sequence[Detections],
    other: Sequence[Detections],
    thresholds: np.ndarray,
    min_iou: float,
    max_score_diff: float,
) -> tuple[int, int]:
    """(matched, total) confident detections over all frames, counted from both sides.

    A detection at or above its class's operating threshold on one side matches when the other side
    has a box of the same class (any score) whose IoU with it is at least ``min_iou`` and whose score
    differs by at most ``max_score_diff``. Used by the backend tests and bench/detector_backends.py.
    """
    matched = total = 0
    for ref, oth in zip(reference, other):
        for a, b in ((ref, oth), (oth, ref)):
            confident = a.confidence >= thresholds[a.class_id]
            for box, score, cls in zip(a.xyxy[confident], a.confidence[confident], a.class_id[confident]):
                total += 1
                same = b.class_id == cls
                if not same.any():
                    continue
                ious = box_iou(box[None], b.xyxy[same])[0]
                best = int(np.argmax(ious))
                matched += bool(ious[best] >= min_iou and abs(b.confidence[same][best] - score) <= max_score_diff)
    return matched, total
