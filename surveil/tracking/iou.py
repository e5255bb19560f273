"""Tracker kind ``iou-v1``: per-camera multi-object tracking by IoU association (the tracker before 0.x).

Detections of one frame are matched to the tracks in two stages, same class only, each by the
Hungarian algorithm: first on IoU with each track's box moved by its estimated velocity to the
frame's time, then — for what is left — on the distance between box centres relative to the
box height. The second stage keeps identities at the low processed frame rates of a CPU detector
(1-3 fps), where a walking person's boxes in consecutive processed frames barely overlap.
Unmatched detections start tentative tracks; a track is confirmed after ``min_hits`` matches and
forgotten after ``max_missed`` frames without one, or after ``lost_after_s`` seconds (of the
caller's monotonic or media clock) without one, whichever is given and comes first. It ignores the
``confident`` mask: every detection it is given can match and start a track, so callers filter by
score first.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from surveil.geometry import anchor_point, box_iou, box_tuple
from surveil.tracking.association import center_closeness as _center_closeness
from surveil.tracking.association import centres as _centres
from surveil.tracking.association import hungarian as _hungarian
from surveil.types import Detections, Track

# Frames closer together than this (no camera delivers 1,000 fps) do not update a velocity.
MIN_VELOCITY_STEP_S = 1e-3


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
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))  # centre, px/s
    history: deque = field(default_factory=deque)

    def predicted(self, now: float) -> np.ndarray:
        shift = self.velocity * max(0.0, now - self.last_seen)
        return self.xyxy + np.concatenate([shift, shift])

    def snapshot(self, camera: str) -> Track:
        return Track(
            track_id=self.track_id,
            camera=camera,
            class_id=self.class_id,
            xyxy=box_tuple(self.xyxy),
            confidence=self.confidence,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            hits=self.hits,
            missed=self.missed,
            history=tuple(self.history),
        )


class IouTracker:
    """Tracks of one camera. ``update`` takes one frame's detections, returns confirmed tracks."""

    def __init__(
        self,
        camera: str,
        iou_threshold: float = 0.3,
        max_missed: int | None = 15,
        min_hits: int = 2,
        history: int = 64,
        max_center_distance: float = 0.6,
        lost_after_s: float | None = None,
    ):
        if not 0.0 < iou_threshold < 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1), got {iou_threshold}")
        if max_center_distance < 0:
            raise ValueError(f"max_center_distance must be >= 0, got {max_center_distance}")
        if (max_missed is not None and max_missed < 0) or min_hits < 1 or history < 2:
            raise ValueError("max_missed must be >= 0, min_hits >= 1 and history >= 2")
        if lost_after_s is not None and not lost_after_s > 0:
            raise ValueError(f"lost_after_s must be > 0, got {lost_after_s}")
        self.camera = camera
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.min_hits = min_hits
        self.history = history
        self.max_center_distance = max_center_distance
        self.lost_after_s = lost_after_s
        self._tracks: list[_TrackState] = []
        self._next_id = 1

    def reset(self) -> None:
        """Forget every track; ids keep counting up (never reused)."""
        self._tracks = []

    def update(self, detections: Detections, now: float, confident: np.ndarray | None = None) -> list[Track]:
        """Associate ``detections`` (not modified) with existing tracks; return confirmed tracks.

        Returned tracks include those missed in this frame (``missed > 0``) until they expire.
        ``confident`` is accepted for the ``Tracker`` protocol and ignored.
        """
        matches, unmatched_tracks, unmatched_dets = self._associate(detections, now)
        for t_index, d_index in matches:
            self._apply_match(self._tracks[t_index], detections, d_index, now)
        for t_index in unmatched_tracks:
            self._tracks[t_index].missed += 1
        self._tracks = [
            t for t in self._tracks if not self._expired(t, now) and (t.hits >= self.min_hits or t.missed == 0)
        ]
        for d_index in unmatched_dets:
            self._tracks.append(self._new_track(detections, d_index, now))
        return [t.snapshot(self.camera) for t in self._tracks if t.hits >= self.min_hits]

    def _expired(self, track: _TrackState, now: float) -> bool:
        if self.max_missed is not None and track.missed > self.max_missed:
            return True
        return self.lost_after_s is not None and track.missed > 0 and now - track.last_seen > self.lost_after_s

    def _associate(self, detections: Detections, now: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
        tracks = list(range(len(self._tracks)))
        dets = list(range(len(detections)))
        if not tracks or not dets:
            return [], tracks, dets
        predicted = np.stack([t.predicted(now) for t in self._tracks])
        same_class = np.array([t.class_id for t in self._tracks])[:, None] == detections.class_id[None, :]
        iou = np.where(same_class, box_iou(predicted, detections.xyxy), 0.0)
        matches = _hungarian(iou, tracks, dets, minimum=self.iou_threshold)
        if self.max_center_distance > 0:
            taken_t, taken_d = {m[0] for m in matches}, {m[1] for m in matches}
            left_t = [t for t in tracks if t not in taken_t]
            left_d = [d for d in dets if d not in taken_d]
            closeness = _center_closeness(predicted[left_t], detections.xyxy[left_d], self.max_center_distance)
            closeness = np.where(same_class[np.ix_(left_t, left_d)], closeness, 0.0)
            matches += _hungarian(closeness, left_t, left_d, minimum=1e-6)
        matched_t, matched_d = {m[0] for m in matches}, {m[1] for m in matches}
        return matches, [t for t in tracks if t not in matched_t], [d for d in dets if d not in matched_d]

    def _apply_match(self, track: _TrackState, detections: Detections, index: int, now: float) -> None:
        new_box = detections.xyxy[index].astype(np.float32).copy()
        dt = now - track.last_seen
        if dt >= MIN_VELOCITY_STEP_S:  # a shorter step says nothing about speed (and overflows float32)
            moved = (_centres(new_box[None])[0] - _centres(track.xyxy[None])[0]) / dt
            track.velocity = moved if track.hits == 1 else 0.5 * track.velocity + 0.5 * moved
        track.xyxy = new_box
        track.confidence = float(detections.confidence[index])
        track.last_seen = now
        track.hits += 1
        track.missed = 0
        track.history.append(anchor_point(track.xyxy))

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
        state.history.append(anchor_point(state.xyxy))
        self._next_id += 1
        return state
