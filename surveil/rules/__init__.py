"""Rules: one class per rule type, built from a camera's typed ``rules:`` list.

Each rule reports conditions (``surveil.rules.base``); the incident book turns them into alerts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from surveil.config import (
    AbandonedObjectRuleConfig,
    CameraConfig,
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
from surveil.rules.base import Condition, FrameContext, IncidentPolicy, Line, Rule, StateReport, StreamState, Zone
from surveil.rules.camera_tamper import CameraTamperRule
from surveil.rules.crowding import CrowdingRule
from surveil.rules.line_crossing import LineCrossingRule
from surveil.rules.loitering import LoiteringRule
from surveil.rules.schedule import Schedule
from surveil.rules.stream_health import StreamHealthRule
from surveil.rules.zone_intrusion import ZoneIntrusionRule
from surveil.rules.zone_occupancy import ZoneOccupancyRule

__all__ = [
    "Condition",
    "FrameContext",
    "IncidentPolicy",
    "Line",
    "Rule",
    "RuleBuildError",
    "StateReport",
    "StreamState",
    "Zone",
    "build_geometry",
    "build_rules",
]


class RuleBuildError(ValueError):
    """A rule that cannot run with this detector (e.g. a class the model does not know)."""


def build_geometry(camera: CameraConfig) -> tuple[dict[str, Zone], dict[str, Line]]:
    zones = {z.name: Zone(z.name, np.asarray(z.polygon, np.float64)) for z in camera.zones}
    lines = {x.name: Line(x.name, tuple(x.a), tuple(x.b), x.forward, x.backward) for x in camera.lines}
    return zones, lines


def build_rules(camera: CameraConfig, class_names: Sequence[str]) -> list[Rule]:
    zones, lines = build_geometry(camera)
    return [_build(camera.name, r, zones, lines, list(class_names)) for r in camera.rules if r.enabled]


def _class_ids(camera: str, rule_id: str, names: Sequence[str], class_names: list[str]) -> frozenset[int]:
    unknown = sorted(set(names) - set(class_names))
    if unknown:
        known = ", ".join(n for n in class_names[1:] if n != "N/A")
        raise RuleBuildError(
            f"camera {camera}, rule {rule_id}: classes {unknown} are not known to the detector (it knows: {known})"
        )
    return frozenset(class_names.index(n) for n in names)


def _policy(config) -> IncidentPolicy:
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
    import datetime as dt

    def parse(text: str) -> dt.time:
        return dt.time(int(text[:2]), int(text[3:]))

    return Schedule(config.timezone, frozenset(config.days), parse(config.start), parse(config.end))


def _build(camera: str, c, zones: dict[str, Zone], lines: dict[str, Line], class_names: list[str]) -> Rule:
    ids = _class_ids(camera, c.id, getattr(c, "classes", []), class_names)
    common = {"severity": getattr(c, "severity", "info"), "policy": _policy(c)}
    if isinstance(c, ZoneIntrusionRuleConfig):
        return ZoneIntrusionRule(
            c.id,
            zones[c.zone],
            ids,
            class_names,
            anchor=c.anchor,
            enter_frames=c.min_frames,
            exit_frames=c.exit_frames,
            schedule=_schedule(c.schedule),
            **common,
        )
    if isinstance(c, LoiteringRuleConfig):
        return LoiteringRule(
            c.id,
            zones[c.zone],
            ids,
            class_names,
            dwell_s=c.dwell_s,
            anchor=c.anchor,
            enter_frames=c.min_frames,
            exit_frames=c.exit_frames,
            **common,
        )
    if isinstance(c, LineCrossingRuleConfig):
        return LineCrossingRule(
            c.id,
            lines[c.line],
            ids,
            class_names,
            directions=frozenset(c.directions) or None,
            anchor=c.anchor,
            band=c.band,
            min_frames=c.min_frames,
            **common,
        )
    if isinstance(c, CrowdingRuleConfig):
        return CrowdingRule(
            c.id,
            zones[c.zone],
            ids,
            class_names,
            min_count=c.min_count,
            for_s=c.for_s,
            end_below=c.end_below,
            end_after_s=c.end_after_s,
            anchor=c.anchor,
            **common,
        )
    if isinstance(c, ZoneOccupancyRuleConfig):
        return ZoneOccupancyRule(c.id, zones[c.zone], ids, class_names, anchor=c.anchor)
    if isinstance(c, AbandonedObjectRuleConfig):
        people = [n for n in c.person_classes if n in class_names]
        if c.unattended_radius is not None and not people:
            raise RuleBuildError(
                f"camera {camera}, rule {c.id}: none of person_classes {c.person_classes} is known to the detector"
            )
        return AbandonedObjectRule(
            c.id,
            ids,
            frozenset(class_names.index(n) for n in people),
            class_names,
            stationary_s=c.stationary_s,
            max_motion=c.max_motion,
            unattended_radius=c.unattended_radius,
            **common,
        )
    if isinstance(c, CameraTamperRuleConfig):
        return CameraTamperRule(
            c.id,
            class_names,
            for_s=c.for_s,
            recover_s=c.recover_s,
            learn_s=c.learn_s,
            relearn_s=c.relearn_s,
            dark_level=c.dark_level,
            blur_ratio=c.blur_ratio,
            changed_fraction=c.changed_fraction,
            **common,
        )
    if isinstance(c, StreamHealthRuleConfig):
        return StreamHealthRule(
            c.id, class_names, for_s=c.for_s, frozen_level=c.frozen_level, watch=frozenset(c.watch), **common
        )
    raise RuleBuildError(f"camera {camera}, rule {c.id}: unknown rule type {type(c).__name__}")
