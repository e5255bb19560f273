"""``zone_occupancy``: no alert; objects per class inside a zone, for dashboards (gauge and retained topic)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from surveil.geometry import Anchor
from surveil.rules.base import ZONE_COUNTS, Condition, FrameContext, IncidentPolicy, RuleBase, StateReport, Zone
from surveil.rules.presence import ZonePresence


class ZoneOccupancyRule(RuleBase):
    type = "zone_occupancy"
    zone: str

    def __init__(
        self,
        rule_id: str,
        zone: Zone,
        class_ids: frozenset[int],
        class_names: Sequence[str],
        *,
        anchor: Anchor = "bottom_center",
        enter_frames: int = 2,
        exit_frames: int = 2,
    ):
        super().__init__(rule_id, "info", IncidentPolicy(), class_names)
        self.zone = zone.name
        self.counted = (
            sorted({self.class_name(i) for i in class_ids}) if class_ids else [n for n in class_names[1:] if n != "N/A"]
        )
        self._presence = ZonePresence(zone, class_ids, anchor, enter_frames, exit_frames)
        self._counts: dict[str, int] = dict.fromkeys(self.counted, 0)

    def evaluate(self, ctx: FrameContext) -> list[Condition]:
        inside = self._presence.update(ctx.tracks or (), ctx.now, ctx.width, ctx.height, ctx.held)
        counts = Counter(self.class_name(t.class_id) for t, _ in inside)
        self._counts = {name: counts.get(name, 0) for name in self.counted}
        return []

    def state(self) -> list[StateReport]:
        return [StateReport(ZONE_COUNTS.name, self.zone, dict(self._counts), rule=self.id)]
