"""Home Assistant MQTT discovery: the entities that announce a daemon's cameras and rules.

A binary sensor per camera (up) and, per rule, the entities its registry entry names
(``surveil.rules.registry.HaEntity``): a binary sensor per alerting rule (incident open) and a
sensor per zone count. Every entity's availability is the daemon's availability topic.
Pure: config in, (discovery topic, config body) pairs out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from surveil.config import CameraConfig, MqttConfig
from surveil.rules.base import ZONE_COUNTS
from surveil.rules.registry import HaEntity, entry
from surveil.sinks.mqtt.topics import alert_topic, availability_topic, state_topic, status_topic

Entity = tuple[str, dict[str, Any]]  # (discovery topic, config)


def object_id(*parts: str) -> str:
    """Parts joined by ``_``, with every character Home Assistant does not allow in an id replaced by ``_``."""
    return "_".join(re.sub(r"[^A-Za-z0-9_-]", "_", p) for p in parts)


@dataclass(frozen=True)
class _Discovery:
    discovery: str  # the discovery prefix, no trailing "/"
    prefix: str  # surveil's topic prefix
    node: str  # this daemon's node id
    common: dict[str, Any]  # availability and device, shared by every entity


def _camera_up(d: _Discovery, camera: str) -> Entity:
    return (
        f"{d.discovery}/binary_sensor/{d.node}/{object_id(camera, 'up')}/config",
        {
            **d.common,
            "name": f"{camera} camera",
            "unique_id": object_id(d.node, camera, "up"),
            "device_class": "connectivity",
            "state_topic": status_topic(d.prefix, camera),
            "value_template": "{{ 'ON' if value_json.up else 'OFF' }}",
            "json_attributes_topic": status_topic(d.prefix, camera),
        },
    )


def _incident(d: _Discovery, camera: str, rule: Any) -> Entity:
    return (
        f"{d.discovery}/binary_sensor/{d.node}/{object_id(camera, rule.id)}/config",
        {
            **d.common,
            "name": f"{camera} {rule.id}",
            "unique_id": object_id(d.node, camera, rule.id),
            "state_topic": alert_topic(d.prefix, camera, rule.id),
            "value_template": "{{ 'OFF' if value_json.phase == 'end' else 'ON' }}",
            "json_attributes_topic": alert_topic(d.prefix, camera, rule.id),
        },
    )


def _zone_count(d: _Discovery, camera: str, rule: Any) -> Entity:
    return (
        f"{d.discovery}/sensor/{d.node}/{object_id(camera, rule.zone, rule.id)}/config",
        {
            **d.common,
            "name": f"{camera} {rule.zone} objects",
            "unique_id": object_id(d.node, camera, rule.zone, rule.id),
            "unit_of_measurement": "objects",
            "state_class": "measurement",
            "state_topic": state_topic(d.prefix, camera, ZONE_COUNTS.name, rule.zone, rule.id),
            "value_template": "{{ value_json.counts.values() | sum }}",
        },
    )


# one builder per entity kind a rule's registry entry may name
ENTITY_BUILDERS: dict[HaEntity, Callable[[_Discovery, str, Any], Entity]] = {
    HaEntity.INCIDENT: _incident,
    HaEntity.ZONE_COUNT: _zone_count,
}


def home_assistant_entities(
    config: MqttConfig, prefix: str, instance: str, available: str, cameras: Iterable[CameraConfig]
) -> list[Entity]:
    """(discovery topic, config) of every entity Home Assistant should know about."""
    node = object_id("surveil", instance)
    device = {"identifiers": [node], "name": f"surveil {instance}", "manufacturer": "surveil"}
    common = {
        "availability_topic": available,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": device,
    }
    d = _Discovery(config.home_assistant.discovery_prefix.rstrip("/"), prefix, node, common)
    out: list[Entity] = []
    for camera in cameras:
        out.append(_camera_up(d, camera.name))
        for rule in camera.rules:
            out += [ENTITY_BUILDERS[kind](d, camera.name, rule) for kind in entry(rule).ha_entities]
    return out


def discovery_topics(config: MqttConfig, instance: str, cameras: Iterable[CameraConfig]) -> set[str]:
    """The discovery topics a publisher with ``config`` would announce (none when MQTT or discovery is off):
    a reload that changes the mqtt section withdraws the old publisher's topics that are not among them."""
    if not (config.enabled and config.home_assistant.enabled):
        return set()
    prefix = config.topic_prefix.rstrip("/")
    entities = home_assistant_entities(config, prefix, instance, availability_topic(prefix, instance), cameras)
    return {topic for topic, _body in entities}
