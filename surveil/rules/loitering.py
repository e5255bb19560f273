"""``loitering``: an object stays inside a zone for more than ``dwell_s`` seconds (clock time, not frames).

The dwell runs from the first frame of the entering run to the latest frame the object was *seen*
inside, so a person who is on the way out (outside, but not yet for ``exit_frames``) does not start
loitering on the strength of inertia alone, and neither does a track the tracker only predicts
(``missed > 0``): at 1-2 processed fps a coasting box drifts, and a dwell that grew on it started
alerts on empty ground or on the next person along. Seen inside again, the gap counts: the person
was there all along.
"""

from __future__ import annotations

from collections.abc import Sequence

from surveil.geometry import Anchor
from surveil.rules.base import Condition, FrameContext, IncidentPolicy, RuleBase, Zone
from surveil.rules.presence import ZonePresence


class LoiteringRule(RuleBase):
    type = "loitering"

    def __init__(
        self,
        rule_id: str,
        zone: Zone,
        class_ids: frozenset[int],
        class_names: Sequence[str],
        *,
        dwell_s: float,
        severity: str = "warning",
        policy: IncidentPolicy = IncidentPolicy(),
        anchor: Anchor = "bottom_center",
        enter_frames: int = 2,
        exit_frames: int = 3,
    ):
        if dwell_s <= 0:
            raise ValueError("dwell_s must be > 0")
        super().__init__(rule_id, severity, policy, class_names)
        self.zone = zone.name
        self.anchor = anchor
        self.dwell_s = dwell_s
        self._presence = ZonePresence(
            zone, class_ids, anchor, enter_frames, exit_frames, forget_after_s=policy.merge_window_s
        )

    def evaluate(self, ctx: FrameContext) -> list[Condition]:
        inside = self._presence.update(ctx.tracks or (), ctx.now, ctx.width, ctx.height, ctx.held)
        conditions = []
        for track, entered in inside:
            dwell = (self._presence.last_inside(track.track_id) or entered) - entered  # time inside, not time since
            if dwell >= self.dwell_s:
                conditions.append(self.track_condition(track, self.anchor, {"dwell_s": round(dwell, 1)}))
        return conditions
