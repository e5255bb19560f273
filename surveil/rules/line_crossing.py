"""``line_crossing``: a track's anchor crosses a directed line segment a -> b.

Each track keeps a *settled side*: the side of the line where its anchor was last seen farther
than ``band`` box heights from the line. A crossing counts when the settled side flips, the
anchor has stayed on the new side for ``min_frames`` seen frames, and the path from the last
settled point to the new one passes through the segment itself (not its extension). Jitter
inside the band never counts, and a track counts once per crossing. Each crossing is an instant
incident (``start``, then ``end`` on the next processed frame) keyed by the track, so a
``cooldown_s`` holds back further crossings of the same object; running counts per direction
are reported for dashboards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from surveil.geometry import Anchor, anchor_point, box_height, segments_cross, signed_side
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


@dataclass
class _Side:
    side: int  # +1 right of a->b (forward side), -1 left
    point: tuple[float, float]  # last anchor seen on the settled side, pixels
    pending: int = 0  # seen frames on the other side, beyond the band
    crossings: int = 0


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
    ):
        if band < 0 or min_frames < 1:
            raise ValueError("band must be >= 0 and min_frames >= 1")
        super().__init__(rule_id, severity, policy, class_names)
        self.line = line.name
        self._geometry = line
        self.class_ids = class_ids
        self.directions = directions or frozenset({line.forward, line.backward})
        self.anchor, self.band, self.min_frames = anchor, band, min_frames
        self._sides: dict[int, _Side] = {}
        self.counts = {line.forward: 0, line.backward: 0}

    def evaluate(self, ctx: FrameContext) -> list[Condition]:
        tracks = class_filter(ctx.tracks or (), self.class_ids)
        a = (self._geometry.a[0] * ctx.width, self._geometry.a[1] * ctx.height)
        b = (self._geometry.b[0] * ctx.width, self._geometry.b[1] * ctx.height)
        conditions = []
        for track in tracks:
            if track.missed == 0:
                direction = self._observe(track, a, b)
                if direction is not None:
                    self.counts[direction] += 1
                    if direction in self.directions:
                        conditions.append(self._crossing(track, direction))
        alive = {t.track_id for t in tracks}
        self._sides = {k: v for k, v in self._sides.items() if k in alive}
        return conditions

    def _observe(self, track: Track, a: tuple[float, float], b: tuple[float, float]) -> str | None:
        point = anchor_point(track.xyxy, self.anchor)
        distance = float(signed_side(np.array([point]), a, b)[0])
        if abs(distance) <= self.band * max(box_height(track.xyxy), 1.0):
            return None  # on the line: no evidence either way
        side = 1 if distance > 0 else -1
        state = self._sides.get(track.track_id)
        if state is None:
            self._sides[track.track_id] = _Side(side, point)
            return None
        if side == state.side:
            state.point, state.pending = point, 0
            return None
        state.pending += 1
        if state.pending < self.min_frames:
            return None
        crossed = segments_cross(state.point, point, a, b)
        state.side, state.point, state.pending = side, point, 0
        if not crossed:
            return None  # went round the end of the segment
        state.crossings += 1
        return self._geometry.forward if side > 0 else self._geometry.backward

    def _crossing(self, track: Track, direction: str) -> Condition:
        return self.track_condition(track, self.anchor, {"direction": direction, "counts": dict(self.counts)})

    def state(self) -> list[StateReport]:
        return [StateReport(LINE_COUNTS.name, self.line, dict(self.counts), rule=self.id)]
