"""One place per rule type: its config model maps to one :class:`RuleEntry`.

An entry says how to build the rule from its config, which Prometheus families its series feed
(``Metrics.init_camera`` creates them at 0), which Home Assistant entities announce it
(``surveil.sinks.mqtt.home_assistant``) and which state reports it makes (``StateReport.kind``,
or none). Adding a rule type means one config model (``surveil.config``), one rule module and
one entry in :data:`RULES`; ``tests/rules/test_registry.py`` fails while any part is missing.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from surveil.config import (
    AbandonedObjectRuleConfig,
    CameraTamperRuleConfig,
    CrowdingRuleConfig,
    LineCrossingRuleConfig,
    LoiteringRuleConfig,
    ScheduleConfig,
    StreamHealthRuleConfig,
    ZoneIntrusionRuleConfig,
    ZoneOccupancyRuleConfig,
)
from surveil.rules.abandoned_object import AbandonedObjectRule
from surveil.rules.base import LINE_COUNTS, ZONE_COUNTS, IncidentPolicy, Line, ReportKind, Rule, Zone
from surveil.rules.camera_tamper import CameraTamperRule
from surveil.rules.crowding import CrowdingRule
from surveil.rules.line_crossing import LineCrossingRule
from surveil.rules.loitering import LoiteringRule
from surveil.rules.schedule import Schedule
from surveil.rules.stream_health import StreamHealthRule
from surveil.rules.zone_intrusion import ZoneIntrusionRule
from surveil.rules.zone_occupancy import ZoneOccupancyRule


class RuleBuildError(ValueError):
    """A rule that cannot run with this detector (e.g. a class the model does not know)."""


class HaEntity(enum.Enum):
    """A Home Assistant entity that announces a rule (``surveil.sinks.mqtt.home_assistant`` builds each)."""

    INCIDENT = "incident"  # binary sensor on the rule's alert topic: on while an incident is open
    ZONE_COUNT = "zone_count"  # sensor on the rule's zone counts: objects inside now


# Prometheus families (docs/metrics.md) that every alerting rule feeds
INCIDENT_METRICS = ("surveil_alerts_total", "surveil_incidents_open", "surveil_alert_messages_total")


@dataclass(frozen=True)
class BuildContext:
    """What every builder needs besides the rule's own config."""

    camera: str
    zones: dict[str, Zone]
    lines: dict[str, Line]
    class_names: list[str]
    class_ids: frozenset[int]  # the ids of the rule's ``classes`` (empty: every class)

    def common(self, config: Any) -> dict[str, Any]:
        """Severity and incident policy, for the rules that alert."""
        return {"severity": config.severity, "policy": _policy(config)}


Builder = Callable[[Any, BuildContext], Rule]


@dataclass(frozen=True)
class RuleEntry:
    """Everything the rest of the daemon needs to know about one rule type."""

    build: Builder
    metrics: tuple[str, ...]  # Prometheus families its series feed
    ha_entities: tuple[HaEntity, ...]  # how Home Assistant discovery announces it
    report: ReportKind | None  # the state reports it makes (None: none)

    @property
    def alerting(self) -> bool:
        """It raises incidents (a rule that only counts does not)."""
        return "surveil_alerts_total" in self.metrics


def _class_ids(camera: str, rule_id: str, names: Sequence[str], class_names: list[str]) -> frozenset[int]:
    unknown = sorted(set(names) - set(class_names))
    if unknown:
        known = ", ".join(n for n in class_names[1:] if n != "N/A")
        raise RuleBuildError(
            f"camera {camera}, rule {rule_id}: classes {unknown} are not known to the detector (it knows: {known})"
        )
    return frozenset(class_names.index(n) for n in names)


def _policy(config: Any) -> IncidentPolicy:
    return IncidentPolicy(
        min_duration_s=getattr(config, "min_duration_s", 0.0),
        cooldown_s=getattr(config, "cooldown_s", 0.0),
        max_starts_per_minute=getattr(config, "max_starts_per_minute", None),
        update_interval_s=getattr(config, "update_interval_s", 0.0),
        merge_window_s=getattr(config, "merge_window_s", 0.0),
        merge_distance=getattr(config, "merge_distance", 0.0),
    )


def _schedule(config: ScheduleConfig | None) -> Schedule | None:
    if config is None:
        return None

    def parse(text: str) -> dt.time:
        return dt.time(int(text[:2]), int(text[3:]))

    return Schedule(config.timezone, frozenset(config.days), parse(config.start), parse(config.end))


# ---------------------------------------------------------------- one builder per rule type


def _zone_intrusion(c: ZoneIntrusionRuleConfig, x: BuildContext) -> Rule:
    return ZoneIntrusionRule(
        c.id,
        x.zones[c.zone],
        x.class_ids,
        x.class_names,
        anchor=c.anchor,
        enter_frames=c.min_frames,
        exit_frames=c.exit_frames,
        schedule=_schedule(c.schedule),
        **x.common(c),
    )


def _loitering(c: LoiteringRuleConfig, x: BuildContext) -> Rule:
    return LoiteringRule(
        c.id,
        x.zones[c.zone],
        x.class_ids,
        x.class_names,
        dwell_s=c.dwell_s,
        anchor=c.anchor,
        enter_frames=c.min_frames,
        exit_frames=c.exit_frames,
        **x.common(c),
    )


def _line_crossing(c: LineCrossingRuleConfig, x: BuildContext) -> Rule:
    return LineCrossingRule(
        c.id,
        x.lines[c.line],
        x.class_ids,
        x.class_names,
        directions=frozenset(c.directions) or None,
        anchor=c.anchor,
        band=c.band,
        min_frames=c.min_frames,
        max_speed=c.max_speed,
        **x.common(c),
    )


def _crowding(c: CrowdingRuleConfig, x: BuildContext) -> Rule:
    return CrowdingRule(
        c.id,
        x.zones[c.zone],
        x.class_ids,
        x.class_names,
        min_count=c.min_count,
        for_s=c.for_s,
        end_below=c.end_below,
        end_after_s=c.end_after_s,
        anchor=c.anchor,
        **x.common(c),
    )


def _zone_occupancy(c: ZoneOccupancyRuleConfig, x: BuildContext) -> Rule:
    return ZoneOccupancyRule(c.id, x.zones[c.zone], x.class_ids, x.class_names, anchor=c.anchor)


def _abandoned_object(c: AbandonedObjectRuleConfig, x: BuildContext) -> Rule:
    people = [n for n in c.person_classes if n in x.class_names]
    if c.unattended_radius is not None and not people:
        raise RuleBuildError(
            f"camera {x.camera}, rule {c.id}: none of person_classes {c.person_classes} is known to the detector"
        )
    return AbandonedObjectRule(
        c.id,
        x.class_ids,
        frozenset(x.class_names.index(n) for n in people),
        x.class_names,
        stationary_s=c.stationary_s,
        max_motion=c.max_motion,
        unattended_radius=c.unattended_radius,
        **x.common(c),
    )


def _camera_tamper(c: CameraTamperRuleConfig, x: BuildContext) -> Rule:
    return CameraTamperRule(
        c.id,
        x.class_names,
        for_s=c.for_s,
        recover_s=c.recover_s,
        learn_s=c.learn_s,
        relearn_s=c.relearn_s,
        dark_level=c.dark_level,
        blur_ratio=c.blur_ratio,
        changed_fraction=c.changed_fraction,
        **x.common(c),
    )


def _stream_health(c: StreamHealthRuleConfig, x: BuildContext) -> Rule:
    return StreamHealthRule(
        c.id, x.class_names, for_s=c.for_s, frozen_level=c.frozen_level, watch=frozenset(c.watch), **x.common(c)
    )


# ---------------------------------------------------------------- the registry

_ALERTING = (HaEntity.INCIDENT,)

RULES: dict[type, RuleEntry] = {
    ZoneIntrusionRuleConfig: RuleEntry(_zone_intrusion, INCIDENT_METRICS, _ALERTING, None),
    LoiteringRuleConfig: RuleEntry(_loitering, INCIDENT_METRICS, _ALERTING, None),
    LineCrossingRuleConfig: RuleEntry(_line_crossing, (*INCIDENT_METRICS, LINE_COUNTS.metric), _ALERTING, LINE_COUNTS),
    CrowdingRuleConfig: RuleEntry(_crowding, INCIDENT_METRICS, _ALERTING, None),
    ZoneOccupancyRuleConfig: RuleEntry(_zone_occupancy, (ZONE_COUNTS.metric,), (HaEntity.ZONE_COUNT,), ZONE_COUNTS),
    AbandonedObjectRuleConfig: RuleEntry(_abandoned_object, INCIDENT_METRICS, _ALERTING, None),
    CameraTamperRuleConfig: RuleEntry(_camera_tamper, INCIDENT_METRICS, _ALERTING, None),
    StreamHealthRuleConfig: RuleEntry(_stream_health, INCIDENT_METRICS, _ALERTING, None),
}


def entry(config: object) -> RuleEntry:
    """The registry entry of a rule config (KeyError naming the type when it has none)."""
    try:
        return RULES[type(config)]
    except KeyError:
        raise KeyError(f"no registry entry for rule config {type(config).__name__}") from None


def build_rule(
    camera: str, config: Any, zones: dict[str, Zone], lines: dict[str, Line], class_names: list[str]
) -> Rule:
    """The rule of one config (RuleBuildError for classes the detector does not know, or an unknown type)."""
    ids = _class_ids(camera, config.id, getattr(config, "classes", []), class_names)
    try:
        rule_entry = entry(config)
    except KeyError:
        raise RuleBuildError(f"camera {camera}, rule {config.id}: unknown rule type {type(config).__name__}") from None
    return rule_entry.build(config, BuildContext(camera, zones, lines, class_names, ids))
