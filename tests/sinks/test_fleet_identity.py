"""Issue 18.5, fleet identity, on a real mosquitto: forged and stale fleet messages, probes for an instance name.

Publishers run in this process (each with its own spool and connection, as separate daemons
would); a plain paho client plays the forger. Every wait is a hang guard on a positive event.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from surveil.config import MqttConfig
from surveil.sinks.mqtt.identity import probe_instance
from surveil.sinks.mqtt.publisher import MqttPublisher
from surveil.sinks.spool import AlertSpool
from tests.support.mqtt_broker import (  # noqa: F401  (fixtures)
    MosquittoBroker,
    MqttCollector,
    find_mosquitto,
    mosquitto_broker,
    mosquitto_broker_factory,
    mqtt_collector,
)
from tests.support.polling import free_port

pytestmark = pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed")


class Forger:
    """Any broker client: publishes what it likes, retained, and waits for the broker to take it."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"forger-{uuid.uuid4().hex[:8]}")
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()

    def send(self, topic: str, payload: bytes | str, retain: bool = True) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        self._client.publish(topic, data, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class Daemons:
    """MqttPublishers as the daemons of a fleet: one spool and one connection each."""

    def __init__(self, broker: MosquittoBroker, root: Path, prefix: str) -> None:
        self.broker, self.root, self.prefix = broker, root, prefix
        self.running: list[tuple[MqttPublisher, AlertSpool]] = []

    def start(self, instance: str, cameras: list[str], up: bool = True, settle_s: float = 0.3) -> MqttPublisher:
        config = MqttConfig(
            host=self.broker.host, port=self.broker.port, instance=instance, topic_prefix=self.prefix, keepalive_s=5
        )
        spool = AlertSpool(self.root / f"{instance}-{uuid.uuid4().hex[:6]}.sqlite3")
        publisher = MqttPublisher(config, spool, reconnect_min_s=0.1, reconnect_max_s=0.3, fleet_settle_s=settle_s)
        publisher.publish_fleet(cameras, 0, 1)
        for camera in cameras:
            publisher.publish_camera_status(camera, up, "" if up else "no frame")
        publisher.start()
        self.running.append((publisher, spool))
        return publisher

    def stop_all(self) -> None:
        for publisher, spool in self.running:
            publisher.stop(timeout=3)
            spool.close()


@pytest.fixture
def prefix() -> str:
    return f"id-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def daemons(mosquitto_broker, tmp_path, prefix) -> Iterator[Daemons]:
    fleet = Daemons(mosquitto_broker, tmp_path, prefix)
    yield fleet
    fleet.stop_all()


@pytest.fixture
def forger(mosquitto_broker) -> Iterator[Forger]:
    client = Forger(mosquitto_broker)
    yield client
    client.close()


def statuses(messages, prefix: str, camera: str) -> list[dict]:
    return [json.loads(m.payload) for m in messages if m.topic == f"{prefix}/{camera}/status" and m.payload]


def retained_topics(broker: MosquittoBroker, prefix: str, until: str) -> set[str]:
    """Every retained topic under ``prefix``, read by a fresh subscriber (``until``: one that must be among them)."""
    late = MqttCollector(broker.host, broker.port, f"{prefix}/#", persistent=False).wait_subscribed()
    try:
        late.wait_for(lambda ms: any(m.topic == until for m in ms), 10)
        return {m.topic for m in late.messages if m.retain and m.payload}
    finally:
        late.close()


def last(messages, topic: str) -> bytes | None:
    payloads = [m.payload for m in messages if m.topic == topic]
    return payloads[-1] if payloads else None


def fleet_body(instance: str, cameras: list, started: float = 0.0) -> str:
    return json.dumps({"instance": instance, "cameras": cameras, "started": started})


# forged messages: (what the forger publishes, retained, before the sentinel), cameras that must never read down
FORGED = [
    pytest.param([("fleet/evil", fleet_body("evil", ["x/injected"])), ("evil/available", "offline")], id="x-injected"),
    pytest.param([("fleet/evil", fleet_body("evil", ["#"])), ("evil/available", "offline")], id="hash"),
    pytest.param([("fleet/evil", fleet_body("evil", ["+"])), ("evil/available", "offline")], id="plus"),
    pytest.param(
        [("fleet/evil", fleet_body("evil", ["gate", "yard/../status"])), ("evil/available", "offline")],
        id="a-good-name-beside-a-bad-one",
    ),
    pytest.param(
        [("fleet/evil", fleet_body("someone-else", ["gate"])), ("evil/available", "offline")],
        id="list-naming-another-instance",
    ),
    pytest.param([("fleet/ghost", fleet_body("ghost", ["ghostcam"]))], id="unknown-instance"),
    pytest.param(
        [("fleet/ghost", fleet_body("ghost", ["ghostcam"])), ("ghost/available", "gone")],
        id="unknown-instance-bad-availability",
    ),
    pytest.param(
        [("fleet/live", fleet_body("live", ["ghostcam"], started=1.0)), ("live/available", "offline")],
        id="stale-generation-of-a-live-instance",
    ),
    pytest.param([("fleet/evil", b"\xff\xfe not json"), ("evil/available", "offline")], id="not-json"),
]


@pytest.mark.parametrize("forged", FORGED)
def test_forged_fleet_messages_create_no_topic_and_no_false_down(mosquitto_broker, daemons, forger, prefix, forged):
    watch = MqttCollector(mosquitto_broker.host, mosquitto_broker.port, f"{prefix}/#", persistent=False)
    try:
        watch.wait_subscribed()
        live = daemons.start("live", ["gate"])
        daemons.start("watcher", ["yard"])
        watch.wait_for(lambda ms: any(m.topic == f"{prefix}/fleet/watcher" for m in ms), 10)
        for topic, payload in forged:
            forger.send(f"{prefix}/{topic}", payload)
        # the sentinel: a real dead instance whose camera nobody serves, marked down after the forged messages
        forger.send(f"{prefix}/fleet/dead", fleet_body("dead", ["lost"]))
        forger.send(f"{prefix}/dead/available", "offline")
        lost = f"{prefix}/lost/status"
        watch.wait_for(lambda ms: any(not s["up"] for s in statuses(ms, prefix, "lost")), 15)
        if any(topic == "live/available" for topic, _ in forged):
            # a forged offline on a live instance's availability is answered: it reads online again
            watch.wait_for(lambda ms: last(ms, f"{prefix}/live/available") == b"online", 10)
        topics = retained_topics(mosquitto_broker, prefix, lost)
        status_topics = {t for t in topics if t.endswith("/status")}
        assert status_topics == {f"{prefix}/gate/status", f"{prefix}/yard/status", lost}, topics
        assert not any(t.startswith(f"{prefix}/x/") or "#" in t or "+" in t for t in topics)
        for camera in ("gate", "yard", "ghostcam"):
            assert all(s["up"] for s in statuses(watch.messages, prefix, camera)), (camera, watch.messages[-10:])
        assert live.connected
    finally:
        watch.close()


def test_a_restart_that_reads_stale_retained_first_marks_no_live_camera_down(mosquitto_broker, daemons, forger, prefix):
    """A gone instance's retained offline + list (naming a camera that moved to a live instance) meet a restarting
    daemon before the live list does: only the camera nobody serves goes down; the live one's status stays up."""
    forger.send(f"{prefix}/old/available", "offline")
    forger.send(f"{prefix}/fleet/old", fleet_body("old", ["gate", "gone"], started=5.0))
    watch = MqttCollector(mosquitto_broker.host, mosquitto_broker.port, f"{prefix}/#", persistent=False)
    try:
        watch.wait_subscribed()
        daemons.start("live", ["gate"], settle_s=1.0)
        watch.wait_for(lambda ms: any(not s["up"] for s in statuses(ms, prefix, "gone")), 15)  # live's own watch
        restarted_at = len(watch.messages)
        daemons.start("restarted", ["yard"], settle_s=1.0)
        watch.wait_for(lambda ms: any(m.topic == f"{prefix}/fleet/restarted" for m in ms[restarted_at:]), 10)
        # the restarted daemon decides once the fleet settled; a sentinel dead instance tells us it has
        forger.send(f"{prefix}/fleet/dead", fleet_body("dead", ["lost"]))
        forger.send(f"{prefix}/dead/available", "offline")
        # one down for it from each of the two daemons: the restarted one has decided too
        watch.wait_for(lambda ms: len([s for s in statuses(ms[restarted_at:], prefix, "lost") if not s["up"]]) >= 2, 15)
        assert all(s["up"] for s in statuses(watch.messages, prefix, "gate")), statuses(watch.messages, prefix, "gate")
    finally:
        watch.close()


def test_a_down_published_for_a_live_camera_is_corrected_by_its_owner(mosquitto_broker, daemons, forger, prefix):
    """A down another daemon published from stale messages (here: forged) is replaced by the owner's own status."""
    watch = MqttCollector(mosquitto_broker.host, mosquitto_broker.port, f"{prefix}/#", persistent=False)
    try:
        watch.wait_subscribed()
        daemons.start("live", ["gate"])
        watch.wait_for(lambda ms: statuses(ms, prefix, "gate"), 10)
        watch.wait_for(lambda ms: any(m.topic == f"{prefix}/fleet/live" for m in ms), 10)
        down = {"schema_version": 1, "camera": "gate", "up": False, "state": "down", "ts": 1.0}
        forger.send(f"{prefix}/gate/status", json.dumps({**down, "reason": "its daemon (old) is offline"}))

        def corrected(ms) -> bool:
            states = [s["up"] for s in statuses(ms, prefix, "gate")]
            return False in states and states[-1] is True

        watch.wait_for(corrected, 10)
        late = MqttCollector(mosquitto_broker.host, mosquitto_broker.port, f"{prefix}/gate/status", persistent=False)
        try:
            late.wait_subscribed().wait_for(lambda ms: bool(ms), 10)
            assert json.loads(late.messages[-1].payload)["up"] is True  # what the broker retains now
        finally:
            late.close()
    finally:
        watch.close()


def test_a_forged_older_fleet_list_of_a_live_instance_is_replaced(mosquitto_broker, daemons, forger, prefix):
    watch = MqttCollector(mosquitto_broker.host, mosquitto_broker.port, f"{prefix}/#", persistent=False)
    try:
        watch.wait_subscribed()
        daemons.start("live", ["gate"])
        topic = f"{prefix}/fleet/live"
        watch.wait_for(lambda ms: any(m.topic == topic for m in ms), 10)
        forger.send(topic, fleet_body("live", ["elsewhere"], started=1.0))
        watch.wait_for(
            lambda ms: (
                len([m for m in ms if m.topic == topic]) >= 3
                and json.loads([m for m in ms if m.topic == topic][-1].payload)["cameras"] == ["gate"]
            ),
            10,
        )
    finally:
        watch.close()


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        pytest.param("live", "live", id="a-live-daemon-answers"),
        pytest.param("retained-online-nobody-answers", "stale", id="stale-retained-online"),
        pytest.param("retained-offline", "free", id="offline"),
        pytest.param("nothing", "free", id="never-seen"),
        pytest.param("no-broker", "unreachable", id="broker-down"),
    ],
)
def test_probe_an_instance_name(mosquitto_broker, daemons, forger, prefix, setup, expected):
    port = free_port() if setup == "no-broker" else mosquitto_broker.port
    if setup == "live":
        publisher = daemons.start("taken", ["gate"])
        seen = MqttCollector(mosquitto_broker.host, port, f"{prefix}/fleet/taken", persistent=False)
        try:
            seen.wait_subscribed().wait_for(lambda ms: bool(ms), 10)  # connected and subscribed to its probes
        finally:
            seen.close()
        assert publisher.connected
    elif setup == "retained-online-nobody-answers":
        forger.send(f"{prefix}/taken/available", "online")
    elif setup == "retained-offline":
        forger.send(f"{prefix}/taken/available", "offline")
    config = MqttConfig(host=mosquitto_broker.host, port=port, topic_prefix=prefix)
    result = probe_instance(config, "taken", connect_s=3.0, answer_s=3.0)
    assert result.state == expected, result
    if expected == "live":
        assert result.holder is not None and result.holder["pid"] == os.getpid()
