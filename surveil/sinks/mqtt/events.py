"""What the MQTT publisher tells the wiring module (metrics, systemd status), typed.

The publisher raises every event through :class:`GuardedEvents`, one method per event: a
misspelt event is an attribute error for mypy (and at run time), never a silent no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol, cast

# the MQTT sink's one logger, as before the publisher was split (operators filter on it)
log = logging.getLogger("surveil.sinks.mqtt.publisher")


class MqttEvents(Protocol):
    """Callbacks the wiring module implements (metrics, systemd status).

    They are called from the publisher's threads (paho's network thread, the sender thread
    and the caller of ``publish_alert``); they must be quick and must not block.
    """

    def connection_changed(self, connected: bool) -> None: ...

    def published(self, topic: str) -> None: ...  # one alert confirmed by the broker

    def publish_failed(self, reason: str) -> None: ...  # an alert the broker rejected or paho refused

    def spool_size(self, n: int) -> None: ...  # messages now waiting in the spool

    def spool_dropped(self, n: int) -> None: ...  # n more oldest alerts discarded (spool full)

    # the spool's disk refused a write (False) / takes writes again (True)
    def spool_writable(self, ok: bool) -> None: ...

    def spool_bypassed(self) -> None: ...  # one alert handed to paho directly because the spool could not take it


class NullMqttEvents:
    """An :class:`MqttEvents` that ignores everything."""

    def connection_changed(self, connected: bool) -> None:
        pass

    def published(self, topic: str) -> None:
        pass

    def publish_failed(self, reason: str) -> None:
        pass

    def spool_size(self, n: int) -> None:
        pass

    def spool_dropped(self, n: int) -> None:
        pass

    def spool_writable(self, ok: bool) -> None:
        pass

    def spool_bypassed(self) -> None:
        pass


EVENT_NAMES = tuple(name for name in vars(NullMqttEvents) if not name.startswith("_"))


def _complete(events: object) -> MqttEvents:
    """``events`` itself, or, for an events object written before some event existed, one that
    ignores the events it lacks."""
    missing = [name for name in EVENT_NAMES if not callable(getattr(events, name, None))]
    if not missing:
        return cast(MqttEvents, events)
    null = NullMqttEvents()

    class _Completed:
        pass

    completed = _Completed()
    for name in EVENT_NAMES:
        setattr(completed, name, getattr(events, name) if name not in missing else getattr(null, name))
    return cast(MqttEvents, completed)


class GuardedEvents:
    """An :class:`MqttEvents` that forwards every event and logs (never raises) a handler's failure."""

    def __init__(self, events: object | None) -> None:
        self._events = _complete(events) if events is not None else NullMqttEvents()

    @staticmethod
    def _call(handler: Callable[..., None], *args: Any) -> None:
        try:
            handler(*args)
        except Exception:
            log.exception("MQTT: event handler %s failed", getattr(handler, "__name__", handler))

    def connection_changed(self, connected: bool) -> None:
        self._call(self._events.connection_changed, connected)

    def published(self, topic: str) -> None:
        self._call(self._events.published, topic)

    def publish_failed(self, reason: str) -> None:
        self._call(self._events.publish_failed, reason)

    def spool_size(self, n: int) -> None:
        self._call(self._events.spool_size, n)

    def spool_dropped(self, n: int) -> None:
        self._call(self._events.spool_dropped, n)

    def spool_writable(self, ok: bool) -> None:
        self._call(self._events.spool_writable, ok)

    def spool_bypassed(self) -> None:
        self._call(self._events.spool_bypassed)
