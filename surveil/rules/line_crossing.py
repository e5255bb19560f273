"""``line_crossing``: a track's anchor crosses a directed line segment a -> b.

Each track keeps an *origin*: the last point where its anchor stood clearly on one side of the
line (farther than ``band`` box heights from it), or, for a track first seen on the line (inside
the band), the point where it appeared. The tracker's history of a new track (the positions it
was seen at before it was confirmed) seeds the origin, so a person who walks into the picture at
the line is followed from the first frame the detector found them. A crossing counts when the
anchor has been clearly on the other side of the origin for ``min_frames`` seen frames and the
path from the origin to the new point passes through the segment itself (not its extension). A
track born on the line has no settled side; the side of the line its birth point lies on, however
slightly, is where it came from (the direction comes from its motion away from the line).

Jitter inside the band never counts, and a track counts once per crossing. A step that would
need more than ``max_speed`` box heights per second (plus half a box height of detector jitter)
is not a movement but the tracker jumping to somebody else: the track starts afresh at its new
position and the step counts for no line. A track that the tracker stops reporting keeps its
path for ``_FORGET_AFTER_S``, so a person it re-identifies under the same id after a gap goes on
from the side they were on (a track first met older than ``_SEED_S`` starts where it is now). Each crossing is an instant incident (``start``, then
``end`` on the next processed frame) keyed by the track, so a ``cooldown_s`` holds back further
crossings of the same object; running counts per direction are reported for dashboards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from surveil.geometry import Anchor, anchor_point, box_height, segments_cross
from surveil.rules.base import (
    LINE_COUNTS,
    Condition,
    FrameContext,
    IncidentPolicy,
    Line,
    RuleBase,
    StateReport,
    class_filter,
)
from surveil.types import Track

_JITTER_HEIGHTS = 0.5  # a step this many box heights is never a jump, however short the time
_FORGET_AFTER_S = 10.0  # a track the tracker stopped reporting keeps its path this long (re-identified: same id)
_SEED_S = 5.0  # a track first met younger than this starts from its history (its birth); an older one from now


@dataclass
class _Path:
    origin: tuple[float, float]  # where the crossing would start from, pixels
    side: int  # +1 right of a->b (forward side), -1 left, 0 born on the line and not settled yet
    came_from: int  # for side 0: the side (sign) of the birth point; 0 exactly on the line
    last: tuple[float, float]  # last seen anchor, pixels, and when and how tall (the jump check)
    last_at: float
    last_height: float
    pending: int = 0  # seen frames clearly on the other side


class LineCrossingRule(RuleBase):
    type = "line_crossing"
    line: str

    def __init__(
        self,
        rule_id: str,
        line: Line,
        class_ids: frozenset[int],
        class_names: Sequence[str],
        *,
        directions: frozenset[str] | None = None,
        severity: str = "info",
        policy: IncidentPolicy = IncidentPolicy(),
        anchor: Anchor = "bottom_center",
        band: float = 0.1,
        min_frames: int = 1,
        max_speed: float = 5.0,
    ):
        if band < 0 or min_frames < 1 or max_speed < 0:
            raise ValueError("band must be >= 0, min_frames >= 1 and max_speed >= 0")
        super().__init__(rule_id, severity, policy, class_names)
        self.line = line.name
        self._geometry = line
        self.class_ids = class_ids
        self.directions = directions or frozenset({line.forward, line.backward})
        self.anchor, self.band, self.min_frames, self.max_speed = anchor, band, min_frames, max_speed
        self._paths: dict[int, _Path] = {}
        self.counts = {line.forward: 0, line.backward: 0}

    def evaluate(self, ctx: FrameContext) -> list[Condition]:
        tracks = class_filter(ctx.tracks or (), self.class_ids)
        a = (self._geometry.a[0] * ctx.width, self._geometry.a[1] * ctx.height)
        b = (self._geometry.b[0] * ctx.width, self._geometry.b[1] * ctx.height)
        conditions = []
        for track in tracks:
            if track.missed == 0:
                direction = self._observe(track, ctx.now, a, b)
                if direction is not None:
                    self.counts[direction] += 1
                    if direction in self.directions:
                        conditions.append(self._crossing(track, direction))
        alive = {t.track_id for t in tracks}
        self._paths = {k: v for k, v in self._paths.items() if k in alive or ctx.now - v.last_at <= _FORGET_AFTER_S}
        return conditions

    def _observe(self, track: Track, now: float, a: tuple[float, float], b: tuple[float, float]) -> str | None:
        point, height = anchor_point(track.xyxy, self.anchor), max(box_height(track.xyxy), 1.0)
        path = self._paths.get(track.track_id)
        if path is None:
            path = self._paths[track.track_id] = self._born(track, point, height, now, a, b)
        if self._jumped(path, point, height, now):
            self._paths[track.track_id] = self._start(point, height, now, a, b)
            return None
        path.last, path.last_at, path.last_height = point, now, height
        distance = _signed_distance(point, a, b)
        if abs(distance) <= self.band * height:
            return None  # on the line: no evidence either way
        side = 1 if distance > 0 else -1
        came_from = path.side or path.came_from or -side  # exactly on the line at birth: the motion says
        if side == came_from:
            path.origin, path.side, path.pending = point, side, 0
            return None
        path.pending += 1
        if path.pending < self.min_frames:
            return None
        crossed = segments_cross(path.origin, point, a, b)
        path.origin, path.side, path.pending = point, side, 0
        if not crossed:
            return None  # went round the end of the segment
        return self._geometry.forward if side > 0 else self._geometry.backward

    def _born(
        self,
        track: Track,
        point: tuple[float, float],
        height: float,
        now: float,
        a: tuple[float, float],
        b: tuple[float, float],
    ) -> _Path:
        """A new track's path, from the first point its tracker saw it at (its history, feet only).

        Only for a young track: one met seconds after its birth (a person re-identified after the path
        was forgotten) would replay crossings that were already counted."""
        if track.history and self.anchor == "bottom_center" and now - track.first_seen <= _SEED_S:
            first = (float(track.history[0][0]), float(track.history[0][1]))
            return self._start(first, height, track.first_seen, a, b)
        return self._start(point, height, now, a, b)

    def _start(
        self, point: tuple[float, float], height: float, now: float, a: tuple[float, float], b: tuple[float, float]
    ) -> _Path:
        distance = _signed_distance(point, a, b)
        side = 0 if abs(distance) <= self.band * height else (1 if distance > 0 else -1)
        came_from = int(np.sign(distance))
        return _Path(origin=point, side=side, came_from=came_from, last=point, last_at=now, last_height=height)

    def _jumped(self, path: _Path, point: tuple[float, float], height: float, now: float) -> bool:
        """The step from the last seen point is faster than anybody moves: the tracker jumped."""
        if self.max_speed <= 0:
            return False
        scale = max(height, path.last_height)
        allowed = scale * (self.max_speed * max(now - path.last_at, 0.0) + _JITTER_HEIGHTS)
        return math.dist(path.last, point) > allowed

    def _crossing(self, track: Track, direction: str) -> Condition:
        return self.track_condition(track, self.anchor, {"direction": direction, "counts": dict(self.counts)})

    def state(self) -> list[StateReport]:
        return [StateReport(LINE_COUNTS.name, self.line, dict(self.counts), rule=self.id)]


def _signed_distance(point: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    """``surveil.geometry.signed_side`` of one point, without numpy's per-call overhead (every track, every frame)."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    return (dx * (point[1] - a[1]) - dy * (point[0] - a[0])) / max(math.hypot(dx, dy), 1e-12)
