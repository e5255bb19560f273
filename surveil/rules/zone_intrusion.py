"""``zone_intrusion``: an object of the given classes is inside a zone (while the rule is armed)."""

from __future__ import annotations

from collections.abc import Sequence

from surveil.geometry import Anchor
from surveil.rules.base import Condition, FrameContext, IncidentPolicy, RuleBase, Zone
from surveil.rules.presence import ZonePresence
from surveil.rules.schedule import Schedule


class ZoneIntrusionRule(RuleBase):
    type = "zone_intrusion"

    def __init__(
        self,
        rule_id: str,
        zone: Zone,
        class_ids: frozenset[int],
        class_names: Sequence[str],
        *,
        severity: str = "warning",
        policy: IncidentPolicy = IncidentPolicy(),
        anchor: Anchor = "bottom_center",
        enter_frames: int = 3,
        exit_frames: int = 3,
        schedule: Schedule | None = None,
    ):
        super().__init__(rule_id, severity, policy, class_names)
        self.zone = zone.name
        self.anchor = anchor
        self.schedule = schedule
        self._presence = ZonePresence(
            zone, class_ids, anchor, enter_frames, exit_frames, forget_after_s=policy.merge_window_s
        )

    def evaluate(self, ctx: FrameContext) -> list[Condition]:
        inside = self._presence.update(ctx.tracks or (), ctx.now, ctx.width, ctx.height, ctx.held)
        if self.schedule is not None and not self.schedule.armed(ctx.ts_wall):
            return []
        return [self.track_condition(t, self.anchor, {"dwell_s": round(ctx.now - entered, 2)}) for t, entered in inside]
