"""The camera rule configs: one model per rule type, their discriminated union and RULE_CONFIGS.

Each field's description is the option's documentation (``docs/config.md`` is generated from it;
``docs/rules.md`` says what the rules mean).
"""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from surveil.config.base import NAME_PATTERN, _Model

Severity = Literal["info", "warning", "critical"]
AnchorName = Literal["bottom_center", "center"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
StreamProblem = Literal["down", "frozen"]


class ScheduleConfig(_Model):
    timezone: str = Field(default="UTC", description="IANA time zone the times are in, e.g. Europe/Berlin.")
    days: list[Weekday] = Field(
        default_factory=lambda: list[Weekday](["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
        min_length=1,
        max_length=7,
        description="Days on which the window starts.",
    )
    start: str = Field(
        default="00:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="Armed from this local time (HH:MM)."
    )
    end: str = Field(
        default="00:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="Armed until this local time (HH:MM); earlier than `start` = past midnight; equal to `start` = all day.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. Europe/Berlin, America/New_York, UTC)") from None
        return value


class _RuleBase(_Model):
    id: str = Field(pattern=NAME_PATTERN, description="Rule id, unique per camera; the alert topic's last level.")
    enabled: bool = Field(default=True, description="Set false to keep the rule in the file without running it.")
    severity: Severity = Field(default="warning", description="Severity carried by this rule's alerts.")
    min_duration_s: float = Field(
        default=0.0, ge=0, le=3600, description="The condition must hold this long before the incident starts."
    )
    cooldown_s: float = Field(
        default=0.0,
        ge=0,
        le=86400,
        description="After an incident ends, the same object (or, for frame rules, the rule) cannot start another this soon.",
    )
    max_starts_per_minute: int | None = Field(
        default=None,
        ge=1,
        le=600,
        description="Rate cap on new incidents of this rule; extra ones are suppressed and counted.",
    )
    update_interval_s: float = Field(
        default=0.0,
        ge=0,
        le=3600,
        description="Send an `update` at most this often while the incident's details change (0 = never).",
    )


class _TrackRuleBase(_RuleBase):
    classes: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Class names this rule counts; empty = every class the detector keeps.",
    )
    anchor: AnchorName = Field(
        default="bottom_center", description="Which point of a box places the object: feet (bottom_center) or centre."
    )
    merge_window_s: float = Field(
        default=4.0,
        ge=0,
        le=60,
        description="Identity-swap folding: a new track that appears within this many seconds of an incident's track being lost "
        "joins that incident instead of starting another; an incident's end waits this long (0 = off).",
    )
    merge_distance: float = Field(
        default=1.5,
        ge=0,
        le=10,
        description="... and no farther than this many box heights from where the lost track was last seen.",
    )


class ZoneIntrusionRuleConfig(_TrackRuleBase):
    type: Literal["zone_intrusion"] = Field(description="An object is inside the zone (while armed).")
    zone: str = Field(description="Name of one of this camera's zones.")
    min_frames: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Processed frames an object must be seen inside before it counts (frames where it is not detected do not reset it).",
    )
    exit_frames: int = Field(
        default=3, ge=1, le=100, description="Processed frames it must be seen outside before it has left."
    )
    schedule: ScheduleConfig | None = Field(default=None, description="When the rule is armed; unset = always.")


class LoiteringRuleConfig(_TrackRuleBase):
    type: Literal["loitering"] = Field(description="An object stays inside the zone longer than `dwell_s`.")
    zone: str = Field(description="Name of one of this camera's zones.")
    dwell_s: float = Field(
        ge=1, le=86400, description="Seconds (of media time, not frames) inside before it is loitering."
    )
    min_frames: int = Field(
        default=2, ge=1, le=100, description="Processed frames seen inside before the dwell clock counts it as inside."
    )
    exit_frames: int = Field(default=3, ge=1, le=100, description="Processed frames seen outside before it has left.")
    update_interval_s: float = Field(
        default=30.0, ge=0, le=3600, description="Send the growing dwell time at most this often (0 = never)."
    )


class LineCrossingRuleConfig(_TrackRuleBase):
    type: Literal["line_crossing"] = Field(description="An object crosses the directed line.")
    line: str = Field(description="Name of one of this camera's lines.")
    directions: list[str] = Field(
        default_factory=list,
        max_length=2,
        description="Direction names that raise an alert; empty = both. Both are always counted.",
    )
    band: float = Field(
        default=0.1,
        ge=0,
        le=2,
        description="Dead band around the line, in box heights: jitter inside it never counts as a crossing.",
    )
    min_frames: int = Field(
        default=1, ge=1, le=30, description="Processed frames seen on the new side before the crossing counts."
    )
    max_speed: float = Field(
        default=5.0,
        ge=0,
        le=100,
        description="A step faster than this many box heights per second (plus half a box height of jitter) is the "
        "tracker jumping to somebody else, not a crossing: the track starts afresh there (0 = no check; people walk "
        "about 1, run 3-4; raise it for vehicles).",
    )
    severity: Severity = Field(default="info", description="Severity carried by this rule's alerts.")
    merge_window_s: float = Field(
        default=0.0,
        ge=0,
        le=60,
        description="Identity-swap folding window; crossings are instants, so 0 (off) by default.",
    )
    min_duration_s: float = Field(default=0.0, ge=0, le=0, description="Crossings are instants: must stay 0.")


class CrowdingRuleConfig(_TrackRuleBase):
    type: Literal["crowding"] = Field(description="At least `min_count` objects in the zone for `for_s` seconds.")
    zone: str = Field(description="Name of one of this camera's zones.")
    min_count: int = Field(ge=1, le=1000, description="Objects that make a crowd.")
    for_s: float = Field(default=5.0, ge=0, le=3600, description="Seconds the count must stay at or above `min_count`.")
    end_below: int | None = Field(
        default=None, ge=1, le=1000, description="Ends when the count stays below this (default `min_count`) ..."
    )
    end_after_s: float | None = Field(
        default=None, ge=0, le=3600, description="... for this many seconds (default `for_s`)."
    )
    update_interval_s: float = Field(
        default=10.0, ge=0, le=3600, description="Send the changing count at most this often (0 = never)."
    )
    merge_window_s: float = Field(
        default=0.0, ge=0, le=0, description="Not used by crowding (one incident per zone): must stay 0."
    )
    merge_distance: float = Field(default=0.0, ge=0, le=0, description="Not used by crowding: must stay 0.")

    @model_validator(mode="after")
    def _hysteresis(self) -> CrowdingRuleConfig:
        if self.end_below is not None and self.end_below > self.min_count:
            raise ValueError("end_below must be <= min_count")
        return self


class ZoneOccupancyRuleConfig(_Model):
    id: str = Field(pattern=NAME_PATTERN, description="Rule id, unique per camera.")
    type: Literal["zone_occupancy"] = Field(
        description="No alert: objects per class in the zone, as a gauge and a retained topic."
    )
    enabled: bool = Field(default=True, description="Set false to keep the rule in the file without running it.")
    zone: str = Field(description="Name of one of this camera's zones.")
    classes: list[str] = Field(
        default_factory=list, max_length=100, description="Class names to count; empty = every class."
    )
    anchor: AnchorName = Field(default="bottom_center", description="Which point of a box places the object.")


class AbandonedObjectRuleConfig(_TrackRuleBase):
    type: Literal["abandoned_object"] = Field(
        description="An object of `classes` stays put for `stationary_s` seconds."
    )
    classes: list[str] = Field(
        min_length=1, max_length=100, description="Object classes to watch, e.g. [backpack, handbag, suitcase]."
    )
    stationary_s: float = Field(
        default=60.0, ge=1, le=86400, description="Seconds without moving before it is abandoned."
    )
    max_motion: float = Field(
        default=0.25, ge=0.01, le=5, description="Moving its centre more than this many box heights restarts the clock."
    )
    unattended_radius: float | None = Field(
        default=None,
        ge=0.1,
        le=50,
        description="Only while no person is within this many person-heights (unset = regardless of people).",
    )
    person_classes: list[str] = Field(
        default_factory=lambda: ["person"],
        max_length=10,
        description="Classes that count as people for `unattended_radius`.",
    )
    merge_window_s: float = Field(
        default=4.0, ge=0, le=60, description="Identity-swap folding window (a flickering detection re-born in place)."
    )


class CameraTamperRuleConfig(_RuleBase):
    type: Literal["camera_tamper"] = Field(description="The view goes dark, loses focus or changes abruptly.")
    for_s: float = Field(default=5.0, ge=0.5, le=3600, description="Seconds a symptom must last.")
    recover_s: float = Field(default=3.0, ge=0, le=3600, description="Seconds without symptoms before it ends.")
    learn_s: float = Field(
        default=5.0, ge=0, le=3600, description="Warm-up: seconds the normal view is learned quickly at start."
    )
    relearn_s: float = Field(
        default=300.0,
        ge=10,
        le=86400,
        description="A view changed this long is accepted as the new normal (camera moved on purpose).",
    )
    dark_level: float = Field(
        default=20.0, ge=0, le=255, description="Mean grey level (0-255) below which the view is dark."
    )
    blur_ratio: float = Field(
        default=0.25, ge=0.01, lt=1, description="Sharpness below this fraction of the learned sharpness is blurred."
    )
    changed_fraction: float = Field(
        default=0.6,
        ge=0.01,
        lt=1,
        description="Fraction of the view that must differ from the learned view to count as changed.",
    )
    severity: Severity = Field(default="critical", description="Severity carried by this rule's alerts.")


class StreamHealthRuleConfig(_RuleBase):
    type: Literal["stream_health"] = Field(description="The camera is down or frozen.")
    for_s: float = Field(default=10.0, ge=1, le=3600, description="Seconds down or frozen before the incident starts.")
    watch: list[StreamProblem] = Field(
        default_factory=lambda: list[StreamProblem](["down", "frozen"]), min_length=1, description="What to watch for."
    )
    frozen_level: float = Field(
        default=2.0,
        ge=0,
        le=20,
        description="A frame whose (downscaled grey) pixels all differ by at most this many grey levels from the previous one repeats it.",
    )
    severity: Severity = Field(default="critical", description="Severity carried by this rule's alerts.")


RuleConfig = Annotated[
    ZoneIntrusionRuleConfig
    | LoiteringRuleConfig
    | LineCrossingRuleConfig
    | CrowdingRuleConfig
    | ZoneOccupancyRuleConfig
    | AbandonedObjectRuleConfig
    | CameraTamperRuleConfig
    | StreamHealthRuleConfig,
    Field(discriminator="type"),
]
RULE_CONFIGS = (
    ZoneIntrusionRuleConfig,
    LoiteringRuleConfig,
    LineCrossingRuleConfig,
    CrowdingRuleConfig,
    ZoneOccupancyRuleConfig,
    AbandonedObjectRuleConfig,
    CameraTamperRuleConfig,
    StreamHealthRuleConfig,
)
