"""Tracker kind ``bytetrack-trackers``: the PyPI ``trackers`` package's ByteTrack behind our protocol.

Imported only when that kind is configured; ``pip install trackers`` (or the ``bench`` extra) first.
The package returns only the detections matched in the frame, so every returned track has
``missed == 0``; first_seen, hits and history are kept here per track id.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from surveil.geometry import anchor_point, box_tuple
from surveil.types import Detections, Track


@dataclass
class _Seen:
    first_seen: float
    last_seen: float
    hits: int = 0
    history: deque = field(default_factory=deque)


class TrackersByteTrack:
    """``trackers.ByteTrackTracker`` fed with our ``Detections`` and ``now`` as its timestamp."""

    def __init__(
        self,
        camera: str,
        high_score: float = 0.5,
        birth_score: float = 0.6,
        iou_threshold: float = 0.1,
        min_hits: int = 2,
        lost_after_s: float = 1.0,
        history: int = 64,
        frame_rate: float = 30.0,
    ):
        try:
            import supervision  # noqa: F401
            from trackers import ByteTrackTracker
        except ImportError as error:
            raise ImportError(
                "tracker kind 'bytetrack-trackers' needs the 'trackers' package: pip install trackers "
                "(or pip install 'surveil[bench]')"
            ) from error
        self.camera = camera
        self.history = history
        self._make = lambda: ByteTrackTracker(
            lost_track_buffer=max(1, round(lost_after_s * 30)),  # the package counts 30 fps frames
            frame_rate=frame_rate,
            track_activation_threshold=birth_score,
            minimum_consecutive_frames=min_hits,
            minimum_iou_threshold=iou_threshold,
            high_conf_det_threshold=high_score,
        )
        self.high_score = high_score
        self.lost_after_s = lost_after_s
        self.reset()

    def reset(self) -> None:
        self._tracker = self._make()
        self._seen: dict[int, _Seen] = {}

    def update(self, detections: Detections, now: float, confident: np.ndarray | None = None) -> list[Track]:
        """``confident`` cannot be passed on: the package applies its own ``high_conf_det_threshold``."""
        import supervision as sv

        given = sv.Detections(
            xyxy=detections.xyxy.astype(np.float32, copy=True),
            confidence=detections.confidence.astype(np.float32, copy=True),
            class_id=detections.class_id.astype(int, copy=True),
        )
        out = self._tracker.update(given, timestamp=float(now))
        tracks = []
        scores, class_ids, track_ids = out.confidence, out.class_id, out.tracker_id
        if scores is None or class_ids is None or track_ids is None:  # the trackers always fill them in
            raise TypeError(
                f"the {type(self._tracker).__name__} tracker returned detections without scores, classes or ids"
            )
        for xyxy, score, class_id, track_id in zip(out.xyxy, scores, class_ids, track_ids):
            if track_id < 0:
                continue  # not confirmed yet
            seen = self._seen.setdefault(
                int(track_id), _Seen(first_seen=now, last_seen=now, history=deque(maxlen=self.history))
            )
            seen.hits += 1
            seen.last_seen = now
            seen.history.append(anchor_point(xyxy))
            tracks.append(
                Track(
                    track_id=int(track_id),
                    camera=self.camera,
                    class_id=int(class_id),
                    xyxy=box_tuple(xyxy),
                    confidence=float(score),
                    first_seen=seen.first_seen,
                    last_seen=now,
                    hits=seen.hits,
                    missed=0,
                    history=tuple(seen.history),
                )
            )
        self._seen = {
            k: v for k, v in self._seen.items() if now - v.last_seen <= 2 * self.lost_after_s or v.last_seen > now
        }
        return tracks
