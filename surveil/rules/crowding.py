"""``crowding``: at least ``min_count`` objects in a zone for ``for_s`` seconds; ends once fewer
than ``end_below`` have been there for ``end_after_s`` seconds (hysteresis both ways)."""

from __future__ import annotations

from collections.abc import Sequence

from surveil.geometry import Anchor
from surveil.rules.base import Condition, FrameContext, IncidentPolicy, RuleBase, Zone
from surveil.rules.presence import ZonePresence


class CrowdingRule(RuleBase):
    type = "crowding"

    def __init__(
        self,
        rule_id: str,
        zone: Zone,
        class_ids: frozenset[int],
        class_names: Sequence[str],
        *,
        min_count: int,
        for_s: float,
        end_below: int | None = None,
        end_after_s: float | None = None,
        severity: str = "warning",
        policy: IncidentPolicy = IncidentPolicy(),
        anchor: Anchor = "bottom_center",
        enter_frames: int = 2,
        exit_frames: int = 2,
    ):
        end_below = min_count if end_below is None else end_below
        if min_count < 1 or not 1 <= end_below <= min_count:
            raise ValueError("need min_count >= 1 and 1 <= end_below <= min_count")
        super().__init__(rule_id, severity, policy, class_names)
        self.zone = zone.name
        self.min_count, self.for_s = min_count, for_s
        self.end_below = end_below
        self.end_after_s = for_s if end_after_s is None else end_after_s
        self._presence = ZonePresence(zone, class_ids, anchor, enter_frames, exit_frames)
        self._active = False
        self._since: float | None = None  # when the count last crossed the relevant threshold
        self._peak = 0

    def evaluate(self, ctx: FrameContext) -> list[Condition]:
        inside = [t for t, _ in self._presence.update(ctx.tracks or (), ctx.now, ctx.width, ctx.height, ctx.held)]
        count = len(inside)
        if not self._active:
            self._advance(count >= self.min_count, ctx.now, self.for_s, becomes=True)
        else:
            self._advance(count < self.end_below, ctx.now, self.end_after_s, becomes=False)
        if not self._active:
            self._peak = 0
            return []
        self._peak = max(self._peak, count)
        details = {"count": count, "peak": self._peak}
        return [Condition(key=("zone", self.zone), subjects=tuple(self.subject(t) for t in inside), details=details)]

    def _advance(self, crossing: bool, now: float, hold_s: float, becomes: bool) -> None:
        if not crossing:
            self._since = None
            return
        self._since = now if self._since is None else self._since
        if now - self._since >= hold_s:
            self._active, self._since = becomes, None
