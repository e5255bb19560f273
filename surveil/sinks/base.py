"""What the pipeline asks of its outputs: small protocols, one per kind of message.

The pipeline calls these and knows no concrete sink; ``surveil.sinks.outputs`` opens the
concrete ones (MQTT, JSON lines) from the config and hands them over as these protocols.
"""

from __future__ import annotations

from typing import Protocol

from surveil.rules.base import StateReport
from surveil.types import AlertUpdate


class AlertSink(Protocol):
    """Takes every alert message (``start`` / ``update`` / ``end``); closed once at the end."""

    def publish_alert(self, alert: AlertUpdate) -> None: ...

    def close(self) -> None: ...


class CameraStatusSink(Protocol):
    """Takes a camera's state whenever it changes (latest wins)."""

    def publish_camera_status(self, camera: str, up: bool, reason: str = "") -> None: ...


class StateSink(Protocol):
    """Takes a rule's counts (``StateReport``) whenever they change (latest wins)."""

    def publish_counts(self, camera: str, report: StateReport, ts: float) -> None: ...


class FleetSink(Protocol):
    """Takes the cameras this instance runs and its shard (for the other instances of a fleet)."""

    def publish_fleet(self, cameras: list[str], index: int | str, instances: int) -> None: ...
