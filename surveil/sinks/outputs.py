"""The one place that opens the concrete sinks a pipeline's config asks for.

MQTT (with its durable spool) and the JSON-lines log are opened here and handed to the pipeline
as the protocols of :mod:`surveil.sinks.base`; the pipeline knows no concrete sink. A reload
whose ``mqtt`` section did not change hands the running MQTT publisher and its spool to the
next pipeline (:class:`Handover`): the connection carries on and the spool is never open twice.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from surveil.config import CameraConfig, Config
from surveil.service.sharding import instance_name
from surveil.sinks.base import AlertSink, CameraStatusSink, FleetSink, StateSink
from surveil.sinks.jsonl import JsonlAlertSink
from surveil.sinks.mqtt.events import MqttEvents
from surveil.sinks.mqtt.publisher import MqttPublisher, MqttSetupError
from surveil.sinks.spool import AlertSpool, SpoolLockedError

log = logging.getLogger(__name__)

T = TypeVar("T")


class SinkSetupError(Exception):
    """A sink cannot be opened from this config (the message names the option, and why)."""


@dataclass(frozen=True)
class Handover:
    """What a stopping pipeline hands to the next one: its running MQTT publisher (and spool)."""

    mqtt: MqttPublisher


def _open_output(option: str, path: str, opener: Callable[[str], T]) -> T:
    """Open an output file; failure is a SinkSetupError naming the option, the path and the reason."""
    try:
        return opener(path)
    except SpoolLockedError as exc:
        raise SinkSetupError(f"{option}: {exc}") from None
    except (OSError, sqlite3.Error) as exc:
        raise SinkSetupError(
            f"{option}: cannot open {path}: {getattr(exc, 'strerror', None) or exc} "
            "(is `state_dir` writable for the service user?)"
        ) from None


class Outputs:
    """Every sink of one pipeline, by what it takes; :meth:`start` once, :meth:`close` once."""

    def __init__(self, config: Config, mqtt_events: MqttEvents, handed: Handover | None = None) -> None:
        """Opens the sinks (SinkSetupError when one cannot be opened); with ``handed``, carries on with
        its MQTT publisher (already started) instead of opening another."""
        self._config = config
        self._mqtt: MqttPublisher | None = None
        self._spool: AlertSpool | None = None
        self._mqtt_running = handed is not None
        alerts: list[AlertSink] = []
        if handed is not None:  # the same connection and spool carry on: no offline/online blip
            self._mqtt, self._spool = handed.mqtt, handed.mqtt.spool
        elif config.mqtt.enabled:
            self._spool = _open_output(
                "mqtt.spool_path",
                config.mqtt.spool_path,
                lambda path: AlertSpool(path, max_items=config.mqtt.spool_max_alerts),
            )
            try:
                self._mqtt = MqttPublisher(config.mqtt, self._spool, mqtt_events, instance=instance_name(config))
            except MqttSetupError as exc:
                self._spool.close()
                raise SinkSetupError(str(exc)) from None
        if self._mqtt is not None:
            alerts.append(self._mqtt)
        if config.alerts.jsonl_path:
            alerts.append(_open_output("alerts.jsonl_path", config.alerts.jsonl_path, JsonlAlertSink))
        self.alerts: tuple[AlertSink, ...] = tuple(alerts)
        mqtt = () if self._mqtt is None else (self._mqtt,)
        self.status: tuple[CameraStatusSink, ...] = mqtt
        self.states: tuple[StateSink, ...] = mqtt
        self.fleet: tuple[FleetSink, ...] = mqtt

    @property
    def mqtt(self) -> MqttPublisher | None:
        """The MQTT publisher, if MQTT is enabled (read-only; for tests and diagnostics)."""
        return self._mqtt

    @property
    def spool(self) -> AlertSpool | None:
        """The MQTT publisher's spool, if MQTT is enabled (read-only; for tests and diagnostics)."""
        return self._spool

    def start(self, cameras: Iterable[CameraConfig]) -> None:
        """Start connecting (unless handed over running) and announce ``cameras`` to Home Assistant if enabled."""
        if self._mqtt is not None and not self._mqtt_running:
            self._mqtt.start()
            self._mqtt_running = True
        if self._mqtt is not None and self._config.mqtt.home_assistant.enabled:
            self._mqtt.publish_discovery(cameras)

    def close(self, deadline: float, hand_over: bool = False) -> Handover | None:
        """Close every sink by ``deadline`` (monotonic). MQTT publishes ``offline`` and flushes what it can,
        then its spool closes; with ``hand_over`` the publisher and its spool stay open and are returned."""
        closers = [sink.close for sink in self.alerts if sink is not self._mqtt]
        handed = Handover(self._mqtt) if hand_over and self._mqtt is not None else None
        mqtt, spool = self._mqtt, self._spool
        if mqtt is not None and spool is not None and handed is None:
            closers = [lambda: mqtt.stop(timeout=max(0.5, deadline - time.monotonic())), spool.close, *closers]
        for close in closers:
            try:
                close()
            except Exception:
                log.exception("error while closing an alert sink")
        return handed
