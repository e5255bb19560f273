"""Per-camera multi-object tracking by IoU association.

Detections of one frame are matched to the tracks of the previous frame by the Hungarian
algorithm on IoU (same class only). Unmatched detections start tentative tracks; a track is
confirmed after ``min_hits`` matches and forgotten after ``max_missed`` frames without one.
This is deliberately simple (no motion model): enough for zone intrusion at the frame rates a
CPU detector reaches; a motion-model tracker can replace it behind the same ``update`` call.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from surveil.types import Detections, Track


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N,4) and (M,4) xyxy boxes -> (N,M)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(br - tl, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def bottom_center(xyxy: np.ndarray | tuple[float, ...]) -> tuple[float, float]:
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return ((x1 + x2) / 2.0, y2)


@dataclass
class _TrackState:
    track_id: int
    class_id: int
    xyxy: np.ndarray
    confidence: float
    first_seen: float
    last_seen: float
    hits: int = 1
    missed: int = 0
    history: deque = field(default_factory=deque)

    def snapshot(self, camera: str) -> Track:
        return Track(
            track_id=self.track_id,
            camera=camera,
            class_id=self.class_id,
            xyxy=tuple(float(v) for v in self.xyxy),
            confidence=self.confidence,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            hits=self.hits,
            missed=self.missed,
            history=tuple(self.history),
        )


class IouTracker:
    """Tracks of one camera. ``update`` takes one frame's detections, returns confirmed tracks."""

    def __init__(self, camera: str, iou_threshold: float = 0.3, max_missed: int = 15, min_hits: int = 2, history: int = 64):
        if not 0.0 < iou_threshold < 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1), got {iou_threshold}")
        if max_missed < 0 or min_hits < 1 or history < 2:
            raise ValueError("max_missed must be >= 0, min_hits >= 1 and history >= 2")
        self.camera = camera
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.min_hits = min_hits
        self.history = history
        self._tracks: list[_TrackState] = []
        self._next_id = 1

    def update(self, detections: Detections, now: float) -> list[Track]:
        """Associate ``detections`` (not modified) with existing tracks; return confirmed tracks.

        Returned tracks include those missed in this frame (``missed > 0``) until they expire.
        """
        matches, unmatched_tracks, unmatched_dets = self._associate(detections)
        for t_index, d_index in matches:
            self._apply_match(self._tracks[t_index], detections, d_index, now)
        for t_index in unmatched_tracks:
            self._tracks[t_index].missed += 1
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed and (t.hits >= self.min_hits or t.missed == 0)]
        for d_index in unmatched_dets:
            self._tracks.append(self._new_track(detections, d_index, now))
        return [t.snapshot(self.camera) for t in self._tracks if t.hits >= self.min_hits]

    def _associate(self, detections: Detections) -> tuple[list[tuple[int, int]], list[int], list[int]]:
        if not self._tracks or len(detections) == 0:
            return [], list(range(len(self._tracks))), list(range(len(detections)))
        track_boxes = np.stack([t.xyxy for t in self._tracks])
        iou = box_iou(track_boxes, detections.xyxy)
        track_classes = np.array([t.class_id for t in self._tracks])
        iou[track_classes[:, None] != detections.class_id[None, :]] = 0.0
        rows, cols = linear_sum_assignment(-iou)
        matches = [(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] >= self.iou_threshold]
        matched_t = {r for r, _ in matches}
        matched_d = {c for _, c in matches}
        return (
            matches,
            [i for i in range(len(self._tracks)) if i not in matched_t],
            [j for j in range(len(detections)) if j not in matched_d],
        )

    def _apply_match(self, track: _TrackState, detections: Detections, index: int, now: float) -> None:
        track.xyxy = detections.xyxy[index].astype(np.float32).copy()
        track.confidence = float(detections.confidence[index])
        track.last_seen = now
        track.hits += 1
        track.missed = 0
        track.history.append(bottom_center(track.xyxy))

    def _new_track(self, detections: Detections, index: int, now: float) -> _TrackState:
        state = _TrackState(
            track_id=self._next_id,
            class_id=int(detections.class_id[index]),
            xyxy=detections.xyxy[index].astype(np.float32).copy(),
            confidence=float(detections.confidence[index]),
            first_seen=now,
            last_seen=now,
            history=deque(maxlen=self.history),
        )
        state.history.append(bottom_center(state.xyxy))
        self._next_id += 1
        return state
