"""``stream_health``: the camera is down, or frozen (the same image again and again), for ``for_s``
seconds; ends when fresh frames flow again.

Frozen means consecutive frames whose small grey versions differ nowhere by more than
``frozen_level`` grey levels: a stuck encoder or a camera that repeats its last picture (a live
view always changes somewhere: sensor noise, a walker, a leaf). Down comes
from the capture stage (status ticks), with its reason.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from surveil.rules.base import Condition, FrameContext, IncidentPolicy, RuleBase
from surveil.rules.camera_tamper import small_grey


class StreamHealthRule(RuleBase):
    type = "stream_health"
    handles_ticks = True

    def __init__(
        self,
        rule_id: str,
        class_names: Sequence[str] = (),
        *,
        for_s: float = 10.0,
        frozen_level: float = 2.0,
        watch: frozenset[str] = frozenset({"down", "frozen"}),
        severity: str = "critical",
        policy: IncidentPolicy = IncidentPolicy(),
    ):
        super().__init__(rule_id, severity, policy, class_names)
        self.for_s, self.frozen_level, self.watch = for_s, frozen_level, watch
        self._previous: np.ndarray | None = None
        self._frozen_since: float | None = None
        self._down: tuple[float, str] | None = None  # (since, reason)

    def evaluate(self, ctx: FrameContext) -> list[Condition]:
        if ctx.image is not None:
            self._down = None
            self._observe_frame(small_grey(ctx.image), ctx.now)
        elif ctx.stream is not None:
            self._down = None if ctx.stream.up else (ctx.stream.since, ctx.stream.reason)
        return self._report(ctx.now)

    def _observe_frame(self, small: np.ndarray, now: float) -> None:
        same = self._previous is not None and float(np.abs(small - self._previous).max()) <= self.frozen_level
        self._previous = small
        if not same:
            self._frozen_since = None
        elif self._frozen_since is None:
            self._frozen_since = now

    def _report(self, now: float) -> list[Condition]:
        if "down" in self.watch and self._down is not None and now - self._down[0] >= self.for_s:
            return [Condition(key=("stream",), details={"state": "down", "reason": self._down[1]})]
        if "frozen" in self.watch and self._frozen_since is not None and now - self._frozen_since >= self.for_s:
            return [
                Condition(key=("stream",), details={"state": "frozen", "frozen_s": round(now - self._frozen_since, 1)})
            ]
        return []
