"""Rules: one class per rule type, built from a camera's typed ``rules:`` list.

Each rule reports conditions (``surveil.rules.base``); the incident book turns them into alerts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from surveil.config import CameraConfig
from surveil.rules.base import (
    Condition,
    FrameContext,
    IncidentPolicy,
    Line,
    ReportKind,
    Rule,
    StateReport,
    StreamState,
    Zone,
    report_kind,
)
from surveil.rules.registry import RULES, RuleBuildError, RuleEntry, build_rule, entry

__all__ = [
    "RULES",
    "Condition",
    "FrameContext",
    "IncidentPolicy",
    "Line",
    "ReportKind",
    "Rule",
    "RuleBuildError",
    "RuleEntry",
    "StateReport",
    "StreamState",
    "Zone",
    "build_geometry",
    "build_rules",
    "entry",
    "report_kind",
]


def build_geometry(camera: CameraConfig) -> tuple[dict[str, Zone], dict[str, Line]]:
    zones = {z.name: Zone(z.name, np.asarray(z.polygon, np.float64)) for z in camera.zones}
    lines = {x.name: Line(x.name, (x.a[0], x.a[1]), (x.b[0], x.b[1]), x.forward, x.backward) for x in camera.lines}
    return zones, lines


def build_rules(camera: CameraConfig, class_names: Sequence[str]) -> list[Rule]:
    """The enabled rules of ``camera``, each built by its registry entry (``surveil.rules.registry``)."""
    zones, lines = build_geometry(camera)
    return [build_rule(camera.name, r, zones, lines, list(class_names)) for r in camera.rules if r.enabled]
