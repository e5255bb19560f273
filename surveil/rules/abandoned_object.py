"""``abandoned_object``: an object of the given classes stays put for ``stationary_s`` seconds,
optionally only while no person is within ``unattended_radius`` person-heights of it. It ends
when the object is taken (its track ends or it moves away)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from surveil.geometry import box_centre, box_height
from surveil.rules.base import Condition, FrameContext, IncidentPolicy, RuleBase, class_filter
from surveil.types import Track


@dataclass
class _Rest:
    centre: tuple[float, float]
    since: float


class AbandonedObjectRule(RuleBase):
    type = "abandoned_object"

    def __init__(
        self,
        rule_id: str,
        class_ids: frozenset[int],
        person_ids: frozenset[int],
        class_names: Sequence[str],
        *,
        stationary_s: float,
        max_motion: float = 0.25,
        unattended_radius: float | None = None,
        severity: str = "warning",
        policy: IncidentPolicy = IncidentPolicy(),
    ):
        if stationary_s <= 0 or max_motion <= 0:
            raise ValueError("stationary_s and max_motion must be > 0")
        super().__init__(rule_id, severity, policy, class_names)
        self.class_ids, self.person_ids = class_ids, person_ids
        self.stationary_s, self.max_motion = stationary_s, max_motion
        self.unattended_radius = unattended_radius
        self._rest: dict[int, _Rest] = {}

    def evaluate(self, ctx: FrameContext) -> list[Condition]:
        tracks = ctx.tracks or ()
        objects = class_filter(tracks, self.class_ids)
        people = [t for t in tracks if t.class_id in self.person_ids and t.missed == 0]
        conditions = []
        for track in objects:
            rest = self._settle(track, ctx.now)
            still_for = ctx.now - rest.since
            if still_for >= self.stationary_s and not self._attended(track, people):
                conditions.append(self.track_condition(track, "center", {"stationary_s": round(still_for, 1)}))
        alive = {t.track_id for t in objects}
        self._rest = {k: v for k, v in self._rest.items() if k in alive}
        return conditions

    def _settle(self, track: Track, now: float) -> _Rest:
        centre = box_centre(track.xyxy)
        rest = self._rest.get(track.track_id)
        limit = self.max_motion * max(box_height(track.xyxy), 1.0)
        if rest is None or (
            track.missed == 0 and np.hypot(centre[0] - rest.centre[0], centre[1] - rest.centre[1]) > limit
        ):
            rest = self._rest[track.track_id] = _Rest(centre, now)
        return rest

    def _attended(self, track: Track, people: Sequence[Track]) -> bool:
        if self.unattended_radius is None or not people:
            return False
        cx, cy = box_centre(track.xyxy)
        for person in people:
            px, py = box_centre(person.xyxy)
            if np.hypot(px - cx, py - cy) <= self.unattended_radius * max(box_height(person.xyxy), 1.0):
                return True
        return False
