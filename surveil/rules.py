"""Rules turn tracks into events.

A rule is a small stateful object with ``evaluate(frame_info, tracks) -> list[Event]``.
Zones are polygons in relative (0-1) image coordinates; a track is inside when its anchor
point (bottom centre of the box by default: where the feet are) is inside the polygon.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from surveil.geometry import Anchor, anchor_point
from surveil.types import Event, Track


@dataclass(frozen=True)
class FrameInfo:
    """What rules need to know about the frame the tracks come from."""

    camera: str
    width: int
    height: int
    ts_wall: float
    ts_mono: float
    seq: int


class Rule(Protocol):
    name: str

    def evaluate(self, frame: FrameInfo, tracks: Sequence[Track]) -> list[Event]: ...


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule test of (N,2) points against a (K,2) polygon, vectorised; boundary counts as inside-ish."""
    if len(points) == 0:
        return np.zeros((0,), bool)
    x, y = points[:, 0:1], points[:, 1:2]
    x1, y1 = polygon[:, 0][None, :], polygon[:, 1][None, :]
    x2, y2 = np.roll(polygon[:, 0], -1)[None, :], np.roll(polygon[:, 1], -1)[None, :]
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    crossings = straddles & (x < x_cross)
    return (crossings.sum(axis=1) % 2) == 1


@dataclass(frozen=True)
class Zone:
    name: str
    polygon: np.ndarray  # (K, 2) relative coordinates
    class_ids: frozenset[int]  # empty = every class
    anchor: Anchor = "bottom_center"

    def contains(self, tracks: Sequence[Track], width: int, height: int) -> np.ndarray:
        """Boolean mask: which tracks' anchors are inside (class filter applied)."""
        if not tracks:
            return np.zeros((0,), bool)
        points = np.array([anchor_point(t.xyxy, self.anchor) for t in tracks], np.float64)
        points /= np.array([width, height], np.float64)
        inside = points_in_polygon(points, self.polygon)
        if self.class_ids:
            inside &= np.array([t.class_id in self.class_ids for t in tracks])
        return inside


class ZoneIntrusionRule:
    """One event per track whose anchor stays inside the zone for ``min_frames`` consecutive frames."""

    kind = "zone_intrusion"

    def __init__(self, camera: str, zone: Zone, min_frames: int, class_names: Sequence[str], severity: str = "warning"):
        if min_frames < 1:
            raise ValueError("min_frames must be >= 1")
        self.name = "zone_intrusion"
        self.camera = camera
        self.zone = zone
        self.min_frames = min_frames
        self.severity = severity
        self._class_names = list(class_names)
        self._frames_inside: dict[int, int] = {}
        self._alerted: set[int] = set()

    def evaluate(self, frame: FrameInfo, tracks: Sequence[Track]) -> list[Event]:
        visible = [t for t in tracks if t.missed == 0]
        inside = self.zone.contains(visible, frame.width, frame.height)
        events = []
        for track, is_inside in zip(visible, inside):
            count = self._frames_inside.get(track.track_id, 0) + 1 if is_inside else 0
            self._frames_inside[track.track_id] = count
            if count >= self.min_frames and track.track_id not in self._alerted:
                self._alerted.add(track.track_id)
                events.append(self._event(frame, track, count))
        self._forget_gone({t.track_id for t in tracks})
        return events

    def _event(self, frame: FrameInfo, track: Track, frames_inside: int) -> Event:
        return Event(
            camera=self.camera,
            rule=self.name,
            kind=self.kind,
            ts=frame.ts_wall,
            ts_mono=frame.ts_mono,
            track_id=track.track_id,
            zone=self.zone.name,
            class_name=self._class_name(track.class_id),
            score=track.confidence,
            xyxy=track.xyxy,
            frame_seq=frame.seq,
            details={"frames_inside": frames_inside},
        )

    def _class_name(self, class_id: int) -> str:
        return self._class_names[class_id] if 0 <= class_id < len(self._class_names) else str(class_id)

    def _forget_gone(self, live_ids: set[int]) -> None:
        for track_id in list(self._frames_inside):
            if track_id not in live_ids:
                del self._frames_inside[track_id]
        self._alerted &= live_ids
