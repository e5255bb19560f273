"""Issue 7 class 12: after the broker returns, alerts flow again, however long it was away.

The publisher runs with its production back-off (no test overrides); a real mosquitto is
stopped for a while, an alert is raised during the outage, and it must reach a subscriber after
the broker's return. How soon is set by the back-off cap (at most 5 s), which
test_backoff_is_capped_and_jittered_per_publisher checks without a clock: no test here times it.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from surveil.config import MqttConfig
from surveil.sinks.mqtt.publisher import MqttPublisher
from surveil.sinks.spool import AlertSpool
from tests.support.alerts import make_alert
from tests.support.polling import wait_until

BACKOFF_CAP_S = 5.0  # the most a reconnect waits (test_backoff_is_capped_and_jittered_per_publisher)


@pytest.mark.parametrize("outage_s", [2.0, pytest.param(20.0, marks=pytest.mark.slow)])
def test_alerts_flow_after_the_broker_returns(
    mosquitto_broker, mqtt_collector, tmp_path: Path, outage_s: float
) -> None:
    prefix = f"back-{uuid.uuid4().hex[:6]}"
    collector = mqtt_collector(f"{prefix}/#")
    config = MqttConfig(
        host=mosquitto_broker.host, port=mosquitto_broker.port, instance="rc", topic_prefix=prefix, keepalive_s=5
    )
    spool = AlertSpool(tmp_path / "spool.sqlite3")
    publisher = MqttPublisher(config, spool)  # the daemon's own back-off
    publisher.start()
    try:
        assert wait_until(lambda: publisher.connected, 10)
        mosquitto_broker.stop()
        assert wait_until(lambda: not publisher.connected, 5)
        alert = make_alert(1)
        publisher.publish_alert(alert)
        time.sleep(outage_s)  # long outages grow the back-off to its cap
        mosquitto_broker.start()
        assert wait_until(  # a hang guard: six back-off caps
            lambda: any(
                json.loads(m.payload).get("id") == alert.id for m in collector.messages if "/alerts/" in m.topic
            ),
            6 * BACKOFF_CAP_S,
        ), "the alert never arrived after the broker returned"
    finally:
        publisher.stop(timeout=2.0)
        spool.close()


def test_backoff_is_capped_and_jittered_per_publisher(tmp_path: Path) -> None:
    spool = AlertSpool(tmp_path / "spool.sqlite3")
    delays = {MqttPublisher(MqttConfig(), spool)._reconnect for _ in range(20)}
    spool.close()
    assert all(0.5 <= low <= 1.0 and 4.0 <= high <= 5.0 for low, high in delays), delays
    assert len(delays) > 1, "every publisher drew the same back-off: daemons would retry in lock-step"
