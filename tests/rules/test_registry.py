"""One place per rule type: every member of the config's rule union has a complete registry entry.

Iterates over the union itself (``surveil.config.RuleConfig``), so a new rule config without an
entry, or an entry missing a part (builder, metric families, Home Assistant entities, report kind),
fails here rather than as a silent gap in metrics, discovery or counts.
"""

from __future__ import annotations

import dataclasses
import typing

import pytest
from pydantic import BaseModel

from surveil.config import RULE_CONFIGS, RuleConfig
from surveil.rules.base import REPORT_KINDS, ReportKind, Rule
from surveil.rules.registry import RULES, BuildContext, HaEntity, RuleEntry, build_rule, entry
from surveil.service.metrics import Metrics
from surveil.sinks.mqtt.home_assistant import ENTITY_BUILDERS

CLASS_NAMES = ["__background__", "person", "car", "backpack"]


def _union_members() -> list[type[BaseModel]]:
    union = typing.get_args(RuleConfig)[0]  # Annotated[A | B | ..., Field(discriminator=...)]
    members = list(typing.get_args(union))
    assert members and all(issubclass(m, BaseModel) for m in members), members
    return members


MEMBERS = _union_members()


def _type_name(config_class: type[BaseModel]) -> str:
    return typing.get_args(config_class.model_fields["type"].annotation)[0]


def _metric_families() -> set[str]:
    """Every family surveil exports, by its exposed name (as docs/metrics.md lists them)."""
    suffix = {"counter": "_total", "info": "_info"}
    return {family.name + suffix.get(family.type, "") for family in Metrics().registry.collect()}


def test_the_union_and_rule_configs_agree() -> None:
    assert set(MEMBERS) == set(RULE_CONFIGS)


@pytest.mark.parametrize("config_class", MEMBERS, ids=_type_name)
def test_every_rule_config_has_a_complete_entry(config_class: type[BaseModel]) -> None:
    assert config_class in RULES, f"{config_class.__name__} has no entry in surveil.rules.registry.RULES"
    rule_entry = RULES[config_class]
    assert isinstance(rule_entry, RuleEntry)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule_entry.metrics = ()  # type: ignore[misc]  # the point: a frozen entry refuses it
    assert callable(rule_entry.build)
    assert rule_entry.metrics, "an entry names the metric families it feeds"
    known = _metric_families()
    for family in rule_entry.metrics:
        assert family in known, f"{family} is not a metric surveil exports"
    assert rule_entry.ha_entities, "an entry names how Home Assistant discovery announces it"
    for kind in rule_entry.ha_entities:
        assert isinstance(kind, HaEntity) and kind in ENTITY_BUILDERS
    assert rule_entry.report is None or isinstance(rule_entry.report, ReportKind)
    if rule_entry.report is not None:
        assert REPORT_KINDS[rule_entry.report.name] is rule_entry.report
        assert rule_entry.report.metric in rule_entry.metrics, "its counts feed a family it names"
    assert rule_entry.alerting == (HaEntity.INCIDENT in rule_entry.ha_entities)


def _minimal(config_class: type[BaseModel]) -> BaseModel:
    """The smallest valid config of this type, on a camera with zone ``z`` and line ``l``."""
    fields = {"id": "r", "type": _type_name(config_class)}
    required = {
        "zone": "z",
        "line": "l",
        "dwell_s": 5,
        "min_count": 2,
        "classes": ["backpack"],
    }
    for name, field in config_class.model_fields.items():
        if field.is_required() and name not in fields:
            assert name in required, f"add a value for the required field {name} of {config_class.__name__}"
            fields[name] = required[name]
    return config_class.model_validate(fields)


@pytest.mark.parametrize("config_class", MEMBERS, ids=_type_name)
def test_every_builder_builds_its_rule(config_class: type[BaseModel]) -> None:
    import numpy as np

    from surveil.rules.base import Line, Zone

    zones = {"z": Zone("z", np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64))}
    lines = {"l": Line("l", (0.5, 0.0), (0.5, 1.0), "in", "out")}
    config = _minimal(config_class)
    rule: Rule = build_rule("cam", config, zones, lines, CLASS_NAMES)
    assert rule.id == "r" and rule.type == _type_name(config_class)
    rule_entry = entry(config)
    kinds = {report.kind for report in rule.state()}
    assert kinds == (set() if rule_entry.report is None else {rule_entry.report.name})
    assert isinstance(BuildContext("cam", zones, lines, CLASS_NAMES, frozenset()), BuildContext)


@pytest.mark.parametrize("config_class", MEMBERS, ids=_type_name)
def test_metrics_and_discovery_serve_every_rule_type(config_class: type[BaseModel]) -> None:
    from surveil.config import CameraConfig, MqttConfig
    from surveil.sinks.mqtt.home_assistant import home_assistant_entities

    camera = CameraConfig.model_validate(
        {
            "name": "cam",
            "url": "rtsp://example/stream",
            "zones": [{"name": "z", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
            "lines": [{"name": "l", "a": [0.5, 0], "b": [0.5, 1], "forward": "in", "backward": "out"}],
            "rules": [_minimal(config_class).model_dump()],
        }
    )
    metrics = Metrics()
    metrics.init_camera(camera)  # a family the entry names but init_camera does not know: KeyError
    rule_entry = RULES[config_class]
    if rule_entry.alerting:
        assert metrics.registry.get_sample_value("surveil_alerts_total", {"camera": "cam", "rule": "r"}) == 0
    entities = home_assistant_entities(MqttConfig(), "site", "i", "site/i/available", [camera])
    assert len(entities) == 1 + len(rule_entry.ha_entities)  # the camera's own, then the rule's


def test_an_unknown_rule_config_has_no_entry() -> None:
    class Unknown(BaseModel):
        id: str = "x"

    with pytest.raises(KeyError, match="Unknown"):
        entry(Unknown())


@pytest.mark.parametrize("kind", list(REPORT_KINDS.values()), ids=lambda k: k.name)
def test_every_report_kind_feeds_its_metric(kind: ReportKind) -> None:
    from surveil.rules.base import StateReport

    metrics = Metrics()
    report = StateReport(kind.name, "n", {"k": 3}, rule="r")
    metrics.observe_state("cam", report, {"k": 1})
    labels = {"camera": "cam", kind.subject: "n", "rule": "r"}
    samples = [
        s
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == kind.metric and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert [s.value for s in samples] == [2 if kind.cumulative else 3]  # a total adds its growth; a level is set
