"""The publisher's events go through typed methods: each one reaches its handler, an older events
object without a newer event is tolerated, and a failing handler is logged, never raised."""

from __future__ import annotations

import logging

import pytest

from surveil.sinks.mqtt.events import EVENT_NAMES, GuardedEvents, MqttEvents, NullMqttEvents

ARGS = {
    "connection_changed": (True,),
    "published": ("site/gate/alerts/r",),
    "publish_failed": ("refused",),
    "spool_size": (3,),
    "spool_dropped": (2,),
    "spool_writable": (False,),
    "spool_bypassed": (),
}


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    def __getattr__(self, name: str):
        if name not in EVENT_NAMES:
            raise AttributeError(name)
        return lambda *args: self.calls.append((name, args))


def test_every_protocol_event_has_a_guarded_method() -> None:
    protocol = {n for n in vars(MqttEvents) if not n.startswith("_")}
    assert set(EVENT_NAMES) == protocol == set(ARGS)
    for name in EVENT_NAMES:
        assert callable(getattr(GuardedEvents, name)) and callable(getattr(NullMqttEvents, name))


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_each_event_reaches_its_handler(name: str) -> None:
    recorder = Recorder()
    getattr(GuardedEvents(recorder), name)(*ARGS[name])
    assert recorder.calls == [(name, ARGS[name])]


def test_an_older_events_object_is_completed() -> None:
    class Old:
        def __init__(self) -> None:
            self.sizes: list[int] = []

        def spool_size(self, n: int) -> None:
            self.sizes.append(n)

    old = Old()
    events = GuardedEvents(old)
    events.spool_bypassed()  # Old predates it: ignored
    events.spool_size(4)
    assert old.sizes == [4]


def test_a_failing_handler_is_logged(caplog) -> None:
    class Broken(NullMqttEvents):
        def published(self, topic: str) -> None:
            raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="surveil.sinks.mqtt.publisher"):
        GuardedEvents(Broken()).published("t")
    assert any("event handler published failed" in r.getMessage() for r in caplog.records)


def test_a_misspelt_event_is_an_error() -> None:
    with pytest.raises(AttributeError):
        GuardedEvents(None).publishd("t")  # type: ignore[attr-defined]  # the point: no silent no-op
