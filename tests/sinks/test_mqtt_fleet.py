"""Issue 9: the retained <prefix>/fleet/<instance> list, on a real mosquitto (fast; the three-daemon test is slow)."""

from __future__ import annotations

import json
import uuid

from surveil.config import MqttConfig
from surveil.sinks.mqtt.publisher import MqttPublisher, fleet_topic
from surveil.sinks.spool import AlertSpool
from tests.support.mqtt_broker import (  # noqa: F401  (fixtures)
    MqttCollector,
    mosquitto_broker,
    mosquitto_broker_factory,
    mqtt_collector,
)


def test_fleet_list_is_retained_and_republished_after_a_broker_restart(tmp_path, mosquitto_broker):
    prefix = f"fleet-{uuid.uuid4().hex[:6]}"
    config = MqttConfig(
        host=mosquitto_broker.host, port=mosquitto_broker.port, instance="surveil-2", topic_prefix=prefix, keepalive_s=5
    )
    spool = AlertSpool(tmp_path / "spool.sqlite3")
    publisher = MqttPublisher(config, spool, reconnect_min_s=0.1, reconnect_max_s=0.3)
    publisher.publish_fleet(["gate", "yard"], 2, 3)  # before the connection: sent once connected
    publisher.start()
    topic = fleet_topic(prefix, "surveil-2")
    assert topic == f"{prefix}/fleet/surveil-2"
    try:
        first = MqttCollector(
            mosquitto_broker.host, mosquitto_broker.port, f"{prefix}/#", persistent=False
        ).wait_subscribed()
        try:  # once one subscriber has it, it is at the broker: a later subscriber must get it retained
            first.wait_for(lambda ms: any(m.topic == topic for m in ms), 10)
        finally:
            first.close()
        late = MqttCollector(
            mosquitto_broker.host, mosquitto_broker.port, f"{prefix}/#", persistent=False
        ).wait_subscribed()
        try:
            late.wait_for(lambda ms: any(m.topic == topic for m in ms), 10)
            message = late.on_topic(topic)[-1]
            body = json.loads(message.payload)
            assert message.retain and body["instance"] == "surveil-2"
            assert body["cameras"] == ["gate", "yard"] and body["shard"] == {"index": 2, "instances": 3}
        finally:
            late.close()
        mosquitto_broker.stop()
        mosquitto_broker.clear_state()  # forgets every retained message
        mosquitto_broker.start()
        again = MqttCollector(mosquitto_broker.host, mosquitto_broker.port, f"{prefix}/#", persistent=False)
        try:
            again.wait_subscribed(15).wait_for(lambda ms: any(m.topic == topic for m in ms), 20)
        finally:
            again.close()
    finally:
        publisher.stop(timeout=3)
        spool.close()
