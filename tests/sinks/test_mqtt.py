"""MqttPublisher against a real mosquitto broker (no mocks of paho)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from surveil.config import MqttConfig
from surveil.sinks.mqtt.publisher import MqttPublisher
from surveil.sinks.spool import AlertSpool
from surveil.types import ALERT_SCHEMA_VERSION
from tests.support.alerts import make_alert
from tests.support.mqtt_broker import MosquittoBroker, Received
from tests.support.polling import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
FAST = {"reconnect_min_s": 0.05, "reconnect_max_s": 0.2}


class RecordingEvents:
    """An MqttEvents that records every call (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[tuple[str, object]] = []

    def _add(self, name: str, value: object) -> None:
        with self._lock:
            self.calls.append((name, value))

    def connection_changed(self, connected: bool) -> None:
        self._add("connection_changed", connected)

    def published(self, topic: str) -> None:
        self._add("published", topic)

    def publish_failed(self, reason: str) -> None:
        self._add("publish_failed", reason)

    def spool_size(self, n: int) -> None:
        self._add("spool_size", n)

    def spool_dropped(self, n: int) -> None:
        self._add("spool_dropped", n)

    def values(self, name: str) -> list[object]:
        with self._lock:
            return [v for n, v in self.calls if n == name]


def alert_ids(messages: list[Received], prefix: str) -> list[str]:
    """Alert ids in order of first arrival (duplicates from re-sends removed)."""
    ids = [json.loads(m.payload)["id"] for m in messages if m.topic.startswith(prefix) and "/alerts/" in m.topic]
    return list(dict.fromkeys(ids))


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_publisher(
    mosquitto_broker: MosquittoBroker, tmp_path: Path, prefix: str
) -> Iterator[Callable[..., tuple[MqttPublisher, RecordingEvents]]]:
    made: list[tuple[MqttPublisher, AlertSpool]] = []

    def make(qos: int = 1, spool_path: Path | None = None, max_items: int = 100_000, **kwargs: object):
        config = MqttConfig(
            host=mosquitto_broker.host,
            port=mosquitto_broker.port,
            client_id=f"pub-{uuid.uuid4().hex[:8]}",
            instance="unit",
            topic_prefix=prefix,
            qos=qos,
            keepalive_s=5,
        )
        spool = AlertSpool(spool_path or tmp_path / f"spool-{len(made)}.sqlite3", max_items=max_items)
        events = RecordingEvents()
        publisher = MqttPublisher(config, spool, events, **{**FAST, **kwargs})
        made.append((publisher, spool))
        return publisher, events

    yield make
    for publisher, spool in made:
        publisher.stop(timeout=2.0)
        spool.close()


def is_online(prefix: str) -> Callable[[list[Received]], bool]:
    return lambda ms: any(m.topic == f"{prefix}/unit/available" and m.payload == b"online" for m in ms)


def test_alert_json_arrives_on_topic(make_publisher, mqtt_collector, prefix: str) -> None:
    collector = mqtt_collector(f"{prefix}/#")
    publisher, events = make_publisher()
    publisher.start()
    alert = make_alert(7, camera="gate", rule="fence")
    publisher.publish_alert(alert)

    topic = f"{prefix}/gate/alerts/fence"
    messages = collector.wait_for(lambda ms: any(m.topic == topic for m in ms))
    body = json.loads(next(m for m in messages if m.topic == topic).payload)
    assert body["schema_version"] == ALERT_SCHEMA_VERSION
    assert body["id"] == alert.id
    assert (body["camera"], body["rule"], body["rule_type"], body["zone"]) == (
        "gate",
        "fence",
        "zone_intrusion",
        "door",
    )
    assert (body["incident_id"], body["phase"], body["frame_seq"]) == ("incident-gate-7", "start", 7)
    assert body["subjects"] == [{"track_id": 7, "class": "person", "score": 0.8765, "box": [1.0, 2.0, 30.0, 40.0]}]
    assert body["published_ts"] > 0
    assert wait_until(lambda: events.values("published") == [topic], 5)
    assert wait_until(lambda: len(publisher.spool) == 0, 5)
    assert events.values("connection_changed")[:2] == [False, True]


def test_available_online_while_running_offline_after_stop(make_publisher, mqtt_collector, prefix: str) -> None:
    live = mqtt_collector(f"{prefix}/unit/available")
    publisher, events = make_publisher()
    publisher.start()
    live.wait_for(is_online(prefix))

    fresh = mqtt_collector(f"{prefix}/unit/available")  # subscribes after the fact: sees the retained copy
    fresh.wait_for(lambda ms: [(m.payload, m.retain) for m in ms] == [(b"online", True)])

    publisher.stop(timeout=5.0)
    live.wait_for(lambda ms: ms[-1].payload == b"offline")
    after = mqtt_collector(f"{prefix}/unit/available")
    after.wait_for(lambda ms: [(m.payload, m.retain) for m in ms] == [(b"offline", True)])
    assert events.values("connection_changed")[-1] is False


CHILD = """
import sys, time
from surveil.config import MqttConfig
from surveil.sinks.mqtt.publisher import MqttPublisher
from surveil.sinks.spool import AlertSpool
host, port, client_id, prefix, spool = sys.argv[1:6]
config = MqttConfig(host=host, port=int(port), client_id=client_id, instance="unit", topic_prefix=prefix, keepalive_s=5)
MqttPublisher(config, AlertSpool(spool), reconnect_min_s=0.05, reconnect_max_s=0.2).start()
time.sleep(120)
"""


def test_last_will_offline_when_process_is_killed(
    mosquitto_broker, mqtt_collector, prefix: str, tmp_path: Path
) -> None:
    collector = mqtt_collector(f"{prefix}/unit/available")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    args = [mosquitto_broker.host, str(mosquitto_broker.port), f"child-{prefix}", prefix, str(tmp_path / "s.sqlite3")]
    child = subprocess.Popen([sys.executable, "-c", CHILD, *args], env=env)
    try:
        collector.wait_for(is_online(prefix), timeout=15)
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        collector.wait_for(lambda ms: ms[-1].payload == b"offline", timeout=5)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    fresh = mqtt_collector(f"{prefix}/unit/available")
    fresh.wait_for(lambda ms: [(m.payload, m.retain) for m in ms] == [(b"offline", True)])


def test_broker_down_at_start_then_everything_arrives_in_order(
    mosquitto_broker, make_publisher, mqtt_collector, prefix: str
) -> None:
    collector = mqtt_collector(f"{prefix}/#")  # persistent session: the broker queues for it
    mosquitto_broker.stop()
    publisher, events = make_publisher()
    publisher.start()  # must not raise or block
    alerts = [make_alert(i) for i in range(25)]
    for alert in alerts:
        publisher.publish_alert(alert)
    assert not publisher.connected
    assert len(publisher.spool) == 25
    assert events.values("spool_size")[-1] == 25

    mosquitto_broker.start()
    collector.wait_for(lambda ms: len(alert_ids(ms, prefix)) >= 25, timeout=10)
    assert alert_ids(collector.messages, prefix) == [a.id for a in alerts]
    assert wait_until(lambda: len(publisher.spool) == 0, 5)


def test_broker_stopped_mid_stream_loses_nothing(mosquitto_broker, make_publisher, mqtt_collector, prefix: str) -> None:
    collector = mqtt_collector(f"{prefix}/#")
    publisher, events = make_publisher()
    publisher.start()
    collector.wait_for(is_online(prefix))

    before = [make_alert(i) for i in range(200)]
    for alert in before:
        publisher.publish_alert(alert)
    mosquitto_broker.stop()  # some of `before` are typically still spooled or in flight
    assert wait_until(lambda: not publisher.connected, 5)
    during = [make_alert(1000 + i) for i in range(50)]
    for alert in during:
        publisher.publish_alert(alert)
    assert len(publisher.spool) >= 50

    mosquitto_broker.start()
    after = [make_alert(2000 + i) for i in range(50)]
    for alert in after:
        publisher.publish_alert(alert)

    expected = [a.id for a in before + during + after]
    collector.wait_for(lambda ms: set(expected) <= set(alert_ids(ms, prefix)), timeout=15)
    assert alert_ids(collector.messages, prefix) == expected
    assert wait_until(lambda: len(publisher.spool) == 0, 5)
    assert events.values("connection_changed")[-3:] == [True, False, True]


def test_spooled_alerts_sent_by_the_next_process(
    mosquitto_broker, make_publisher, mqtt_collector, prefix: str, tmp_path: Path
) -> None:
    collector = mqtt_collector(f"{prefix}/#")
    mosquitto_broker.stop()
    spool_path = tmp_path / "shared-spool.sqlite3"
    first, _ = make_publisher(spool_path=spool_path)
    first.start()
    alerts = [make_alert(i) for i in range(10)]
    for alert in alerts:
        first.publish_alert(alert)
    first.stop(timeout=1.0)
    first.spool.close()

    mosquitto_broker.start()
    second, _ = make_publisher(spool_path=spool_path)
    assert len(second.spool) == 10
    second.start()
    collector.wait_for(lambda ms: len(alert_ids(ms, prefix)) >= 10, timeout=10)
    assert alert_ids(collector.messages, prefix) == [a.id for a in alerts]


@pytest.mark.parametrize("qos", [0, 2])
def test_other_qos_levels_are_delivered_and_unspooled(make_publisher, mqtt_collector, prefix: str, qos: int) -> None:
    collector = mqtt_collector(f"{prefix}/#")
    publisher, _ = make_publisher(qos=qos)
    publisher.start()
    alerts = [make_alert(i) for i in range(30)]
    for alert in alerts:
        publisher.publish_alert(alert)
    collector.wait_for(lambda ms: len(alert_ids(ms, prefix)) >= 30)
    assert alert_ids(collector.messages, prefix) == [a.id for a in alerts]
    assert wait_until(lambda: len(publisher.spool) == 0, 5)


def test_qos0_alerts_spooled_during_outage_arrive_in_order(
    mosquitto_broker, make_publisher, mqtt_collector, prefix: str
) -> None:
    """QoS 0 is acked once written to the socket, so alerts written just before the broker
    died may be lost; the ones raised while it was down must all arrive, in order."""
    collector = mqtt_collector(f"{prefix}/#")
    publisher, _ = make_publisher(qos=0)
    publisher.start()
    collector.wait_for(is_online(prefix))
    before = [make_alert(i) for i in range(100)]
    for alert in before:
        publisher.publish_alert(alert)
    mosquitto_broker.stop()
    assert wait_until(lambda: not publisher.connected, 5)
    during = [make_alert(1000 + i) for i in range(30)]
    for alert in during:
        publisher.publish_alert(alert)
    mosquitto_broker.start()

    wanted = [a.id for a in during]
    collector.wait_for(lambda ms: set(wanted) <= set(alert_ids(ms, prefix)), timeout=10)
    received = alert_ids(collector.messages, prefix)
    order = {a.id: n for n, a in enumerate(before + during)}
    assert [order[i] for i in received] == sorted(order[i] for i in received)
    assert wait_until(lambda: len(publisher.spool) == 0, 5)


def test_spool_full_drops_oldest_and_reports(mosquitto_broker, make_publisher, prefix: str) -> None:
    mosquitto_broker.stop()
    publisher, events = make_publisher(max_items=100)
    publisher.start()
    for i in range(105):
        publisher.publish_alert(make_alert(i))
    assert len(publisher.spool) == 100
    assert sum(events.values("spool_dropped")) == 5
    assert publisher.spool.dropped == 5


def test_camera_status_retained_and_republished_after_reconnect(
    mosquitto_broker, make_publisher, mqtt_collector, prefix: str
) -> None:
    topic = f"{prefix}/cam1/status"
    live = mqtt_collector(f"{prefix}/#")
    publisher, _ = make_publisher()
    publisher.start()
    live.wait_for(is_online(prefix))
    publisher.publish_camera_status("cam1", up=True, reason="streaming")
    live.wait_for(lambda ms: any(m.topic == topic for m in ms))  # at the broker: a new subscriber gets it retained
    fresh = mqtt_collector(topic)
    messages = fresh.wait_for(lambda ms: len(ms) == 1)
    assert messages[0].retain
    assert json.loads(messages[0].payload)["state"] == "up"

    # The broker restarts with no memory of retained messages; the state changes meanwhile.
    mosquitto_broker.stop()
    assert wait_until(lambda: not publisher.connected, 5)
    mosquitto_broker.clear_state()
    publisher.publish_camera_status("cam1", up=False, reason="no frames for 10 s")
    mosquitto_broker.start()
    assert wait_until(lambda: publisher.connected, 10)

    def retained_status(ms: list[Received]) -> bool:
        return any(m.topic == topic and m.retain for m in ms) and any(m.topic == f"{prefix}/unit/available" for m in ms)

    # "connected" comes before the republish reaches the broker: a subscriber that came in between would
    # get the status live (retain flag clear). Wait until the broker has it, then subscribe late.
    republished = mqtt_collector(topic)
    republished.wait_for(lambda ms: len(ms) == 1)
    after = mqtt_collector(f"{prefix}/#")
    messages = after.wait_for(retained_status)
    status = [json.loads(m.payload) for m in messages if m.topic == topic]
    assert [(s["state"], s["reason"], s["camera"]) for s in status] == [("down", "no frames for 10 s", "cam1")]
    assert [m.payload for m in messages if m.topic == f"{prefix}/unit/available"] == [b"online"]


def test_counts_are_retained_latest_value_wins(make_publisher, mqtt_collector, prefix: str) -> None:
    live = mqtt_collector(f"{prefix}/#")
    publisher, _ = make_publisher()
    publisher.start()
    live.wait_for(is_online(prefix))
    publisher.publish_state("cam1", "lines", "gate", "gate-count", {"counts": {"in": 1, "out": 0}})
    publisher.publish_state("cam1", "lines", "gate", "gate-count", {"counts": {"in": 2, "out": 1}})
    publisher.publish_state("cam1", "zones", "lobby", "lobby-occupancy", {"counts": {"person": 3}})
    live.wait_for(lambda ms: sum("/lines/" in m.topic for m in ms) == 2 and any("/zones/" in m.topic for m in ms))
    fresh = mqtt_collector(f"{prefix}/cam1/+/+/+")  # a late subscriber gets only the latest of each
    messages = fresh.wait_for(lambda ms: len(ms) == 2)
    assert all(m.retain for m in messages)
    latest = {m.topic: json.loads(m.payload)["counts"] for m in messages}
    assert latest == {
        f"{prefix}/cam1/lines/gate/gate-count": {"in": 2, "out": 1},
        f"{prefix}/cam1/zones/lobby/lobby-occupancy": {"person": 3},
    }


def test_stop_returns_within_timeout_when_broker_is_down(mosquitto_broker, make_publisher) -> None:
    mosquitto_broker.stop()
    publisher, _ = make_publisher()
    publisher.start()
    publisher.publish_alert(make_alert(1))
    stop_returned = threading.Event()
    stopper = threading.Thread(target=lambda: (publisher.stop(timeout=1.0), stop_returned.set()), daemon=True)
    stopper.start()
    stopper.join(timeout=60)  # a hang guard, not a timing: stop() must return without the broker
    assert stop_returned.is_set(), "stop() did not return while the broker was unreachable"


def test_stop_returns_within_timeout_after_broker_went_away(
    mosquitto_broker, make_publisher, mqtt_collector, prefix
) -> None:
    collector = mqtt_collector(f"{prefix}/unit/available")
    publisher, _ = make_publisher()
    publisher.start()
    collector.wait_for(is_online(prefix))
    mosquitto_broker.kill()
    publisher.publish_alert(make_alert(1))
    stop_returned = threading.Event()
    stopper = threading.Thread(target=lambda: (publisher.stop(timeout=1.0), stop_returned.set()), daemon=True)
    stopper.start()
    stopper.join(timeout=60)  # a hang guard, not a timing: stop() must return without the broker
    assert stop_returned.is_set(), "stop() did not return while the broker was unreachable"
    assert len(publisher.spool) == 1  # kept for the next start


def test_outage_logged_once_not_per_retry(mosquitto_broker, make_publisher, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="surveil.sinks.mqtt.publisher")
    mosquitto_broker.stop()
    publisher, _events = make_publisher()
    publisher.start()

    def retries() -> int:
        return sum("still unavailable" in r.getMessage() for r in caplog.records)

    assert wait_until(lambda: retries() >= 3, 5)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == "surveil.sinks.mqtt.publisher"]
    assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage()

    mosquitto_broker.start()
    assert wait_until(lambda: publisher.connected, 10)
    assert any(
        "after" in r.getMessage() and "unavailable" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.INFO
    )


def test_username_password_and_refused_login(mosquitto_broker_factory, tmp_path: Path, caplog, prefix: str) -> None:
    caplog.set_level(logging.DEBUG, logger="surveil.sinks.mqtt.publisher")
    broker = mosquitto_broker_factory(users={"alice": "s3cret"})

    def publisher_for(password: str, name: str) -> MqttPublisher:
        config = MqttConfig(
            host=broker.host,
            port=broker.port,
            client_id=f"{name}-{prefix}",
            topic_prefix=prefix,
            username="alice",
            password=password,
            keepalive_s=5,
        )
        return MqttPublisher(config, AlertSpool(tmp_path / f"{name}.sqlite3"), **FAST)

    wrong = publisher_for("wrong", "wrong")
    wrong.start()
    try:
        assert wait_until(lambda: sum("still unavailable" in r.getMessage() for r in caplog.records) >= 3, 5)
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and "refused" in warnings[0], warnings
        assert not wrong.connected
    finally:
        wrong.stop(timeout=2.0)
        wrong.spool.close()

    right = publisher_for("s3cret", "right")
    right.start()
    try:
        alert = make_alert(1)
        right.publish_alert(alert)
        assert wait_until(lambda: len(right.spool) == 0, 5)
    finally:
        right.stop(timeout=2.0)
        right.spool.close()


def test_stop_flushes_spooled_alerts_first(make_publisher, mqtt_collector, prefix: str) -> None:
    collector = mqtt_collector(f"{prefix}/#")
    publisher, _ = make_publisher()
    publisher.start()
    collector.wait_for(is_online(prefix))
    alerts = [make_alert(i) for i in range(100)]
    for alert in alerts:
        publisher.publish_alert(alert)
    publisher.stop(timeout=5.0)
    assert len(publisher.spool) == 0
    messages = collector.wait_for(lambda ms: ms[-1].payload == b"offline")
    assert alert_ids(messages, prefix) == [a.id for a in alerts]
