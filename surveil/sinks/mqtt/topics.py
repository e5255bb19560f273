"""Topic names under ``MqttConfig.topic_prefix`` (docs/mqtt.md lists them; ``<prefix>`` has no trailing ``/``)."""

from __future__ import annotations


def availability_topic(prefix: str, instance: str) -> str:
    """Retained ``online`` / ``offline`` of one daemon (and its last will)."""
    return f"{prefix}/{instance}/available"


def alert_topic(prefix: str, camera: str, rule: str) -> str:
    """One alert message per incident phase of one rule."""
    return f"{prefix}/{camera}/alerts/{rule}"


def status_topic(prefix: str, camera: str) -> str:
    """Retained camera status."""
    return f"{prefix}/{camera}/status"


def fleet_topic(prefix: str, instance: str) -> str:
    """Retained list of the cameras one instance runs."""
    return f"{prefix}/fleet/{instance}"


def state_topic(prefix: str, camera: str, kind: str, name: str, rule: str) -> str:
    """Retained counts of one line or zone (``kind``: a ``ReportKind`` name, ``lines`` or ``zones``) for one rule."""
    return f"{prefix}/{camera}/{kind}/{name}/{rule}"
