"""How far two detectors agree on the same frames (the backend tests and benches)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from surveil.geometry import box_iou
from surveil.types import Detections

__all__ = ["detection_agreement", "embedding_agreement"]


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


def embedding_agreement(reference: Sequence[Detections], other: Sequence[Detections], min_iou: float) -> np.ndarray:
    """The cosine similarity of the embeddings of every reference detection and its best-overlapping box of
    the same class in ``other`` (IoU at least ``min_iou``), over all frames; both sides need embeddings."""
    cosines: list[float] = []
    for ref, oth in zip(reference, other):
        if ref.embedding is None or oth.embedding is None:
            raise ValueError("embedding_agreement needs detections with embeddings on both sides")
        for box, cls, row in zip(ref.xyxy, ref.class_id, ref.embedding):
            same = np.flatnonzero(oth.class_id == cls)
            if len(same) == 0:
                continue
            ious = box_iou(box[None], oth.xyxy[same])[0]
            best = int(np.argmax(ious))
            if ious[best] >= min_iou:
                cosines.append(float(row @ oth.embedding[same[best]]))
    return np.asarray(cosines, np.float32)
