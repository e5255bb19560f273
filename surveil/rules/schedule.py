"""When a rule is armed: days of the week and a time window in an IANA time zone."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Schedule:
    timezone: str
    days: frozenset[str]  # subset of DAYS
    start: dt.time
    end: dt.time  # end <= start means the window runs past midnight (22:00-06:00)

    def armed(self, ts_wall: float) -> bool:
        local = dt.datetime.fromtimestamp(ts_wall, ZoneInfo(self.timezone))
        moment = local.time().replace(tzinfo=None)
        if self.start < self.end:
            return DAYS[local.weekday()] in self.days and self.start <= moment < self.end
        if moment >= self.start:  # evening part: belongs to today
            return DAYS[local.weekday()] in self.days
        if moment < self.end:  # early-morning part: belongs to the night that began yesterday
            return DAYS[(local.weekday() - 1) % 7] in self.days
        return False
