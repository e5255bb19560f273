"""``loitering``: an object stays inside a zone for more than ``dwell_s`` seconds (clock time, not frames)."""

from __future__ import annotations

from collections.abc import Sequence

from surveil.geometry import Anchor
from surveil.rules.base import Condition, FrameContext, IncidentPolicy, RuleBase, Zone
from surveil.rules.presence import ZonePresence


class LoiteringRule(RuleBase):
    type = "loitering"

    def __init__(self, rule_id: str, zone: Zone, class_ids: frozenset[int], class_names: Sequence[str], *,
                 dwell_s: float, severity: str = "warning", policy: IncidentPolicy = IncidentPolicy(),
                 anchor: Anchor = "bottom_center", enter_frames: int = 2, exit_frames: int = 3):
        if dwell_s <= 0:
            raise ValueError("dwell_s must be > 0")
        super().__init__(rule_id, severity, policy, class_names)
        self.zone = zone.name
        self.anchor = anchor
        self.dwell_s = dwell_s
        self._presence = ZonePresence(zone, class_ids, anchor, enter_frames, exit_frames)

    def evaluate(self, ctx: FrameContext) -> list[Condition]:
        inside = self._presence.update(ctx.tracks or (), ctx.now, ctx.width, ctx.height)
        return [
            self.track_condition(t, self.anchor, {"dwell_s": round(ctx.now - entered, 1)})
            for t, entered in inside
            if ctx.now - entered >= self.dwell_s
        ]
