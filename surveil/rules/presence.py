"""Who is inside a zone, with inertia: the building block of the zone rules.

A track enters after its anchor was inside for ``enter_frames`` processed frames in a row, the
last of them *seen* (matched to a detection), and leaves after it was seen outside for
``exit_frames`` frames or when the tracker drops it. A frame where the tracker could not match the
track (``missed > 0``) but predicts it inside continues an inside run that a seen frame began; it
never starts, ends or completes anything on its own, and it does not move ``last_inside`` (a
loitering dwell grows only on frames the person is seen). A missed detection is no evidence that
somebody left, which is what keeps alerts whole at the low processed frame rates of a CPU.

A track the tracker stops reporting is forgotten after ``forget_after_s`` seconds, not at once,
and not at all while the tracker says it still holds the id for re-identification (``held``): a
tracker that re-identifies a person after a gap gives the same id back, and that person's streak
(when they entered, so a loitering dwell) continues where it was. The zone rules pass their
``merge_window_s``, the time their incident waits before it ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from surveil.geometry import Anchor
from surveil.rules.base import Zone, class_filter
from surveil.types import Track


@dataclass
class _Streak:
    inside_frames: int = 0
    outside_frames: int = 0
    entered_at: float | None = None  # clock time of the first of the frames that made it enter
    last_inside_at: float | None = None  # clock time of the latest frame it was seen inside


class ZonePresence:
    def __init__(
        self,
        zone: Zone,
        class_ids: frozenset[int],
        anchor: Anchor,
        enter_frames: int,
        exit_frames: int,
        forget_after_s: float = 0.0,
    ):
        if enter_frames < 1 or exit_frames < 1 or forget_after_s < 0:
            raise ValueError("enter_frames and exit_frames must be >= 1, forget_after_s >= 0")
        self.forget_after_s = forget_after_s
        self._gone_since: dict[int, float] = {}
        self.zone = zone
        self.class_ids = class_ids
        self.anchor = anchor
        self.enter_frames = enter_frames
        self.exit_frames = exit_frames
        self._streaks: dict[int, _Streak] = {}
        self._first_inside: dict[int, float] = {}

    def update(
        self, tracks: Sequence[Track], now: float, width: int, height: int, held: frozenset[int] = frozenset()
    ) -> list[tuple[Track, float]]:
        """Advance with this frame's tracks; return (track, entered_at) for every track now inside.

        ``held``: ids the tracker no longer reports but may give back (re-identification); their
        streaks wait, neither advanced nor forgotten, until they return or the tracker lets go."""
        candidates = class_filter(tracks, self.class_ids)
        inside = self.zone.contains([t.xyxy for t in candidates], self.anchor, width, height)
        for track, is_inside in zip(candidates, inside):
            if track.missed == 0:
                self._observe(track.track_id, bool(is_inside), now)
            elif is_inside:
                self._predicted_inside(track.track_id, now)
        self._forget_gone({t.track_id for t in candidates} | held, now)
        return [(t, entered) for t in candidates if (entered := self._entered_at(t.track_id)) is not None]

    def _forget_gone(self, alive: set[int], now: float) -> None:
        for track_id in alive:
            self._gone_since.pop(track_id, None)
        for track_id in [i for i in self._streaks if i not in alive]:
            gone = self._gone_since.setdefault(track_id, now)
            if now - gone >= self.forget_after_s:
                del self._streaks[track_id]
                self._first_inside.pop(track_id, None)
                del self._gone_since[track_id]

    def _observe(self, track_id: int, inside: bool, now: float) -> None:
        streak = self._streaks.setdefault(track_id, _Streak())
        if inside:
            if streak.inside_frames == 0:
                self._first_inside[track_id] = now
            streak.inside_frames += 1
            streak.outside_frames = 0
            streak.last_inside_at = now
            if streak.entered_at is None and streak.inside_frames >= self.enter_frames:
                streak.entered_at = self._first_inside[track_id]
        else:
            streak.outside_frames += 1
            streak.inside_frames = 0
            if streak.outside_frames >= self.exit_frames:
                streak.entered_at = None

    def _predicted_inside(self, track_id: int, now: float) -> None:
        streak = self._streaks.get(track_id)
        if streak is not None and streak.inside_frames > 0:
            streak.inside_frames += 1

    def last_inside(self, track_id: int) -> float | None:
        """When the track was last seen (matched to a detection) inside; None if never."""
        streak = self._streaks.get(track_id)
        return None if streak is None else streak.last_inside_at

    def _entered_at(self, track_id: int) -> float | None:
        """When the track entered, if it is inside now (None: outside, or not inside long enough yet)."""
        streak = self._streaks.get(track_id)
        return None if streak is None else streak.entered_at
