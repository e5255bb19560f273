"""Issue 7 class 12: after the broker returns, alerts flow within 10 s, however long it was away.

The publisher runs with its production back-off (no test overrides); a real mosquitto is
stopped for a while, an alert is raised during the outage, and the time from the broker's
return to the alert's arrival at a subscriber is measured.
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

DELIVERY_LIMIT_S = 10.0


@pytest.mark.parametrize("outage_s", [2.0, pytest.param(20.0, marks=pytest.mark.slow)])
def test_alerts_flow_within_10_s_of_the_broker_returning(
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
        back = time.monotonic()
        assert wait_until(
            lambda: any(
                json.loads(m.payload).get("id") == alert.id for m in collector.messages if "/alerts/" in m.topic
            ),
            DELIVERY_LIMIT_S + 5,
        )
        took = time.monotonic() - back
    finally:
        publisher.stop(timeout=2.0)
        spool.close()
    assert took <= DELIVERY_LIMIT_S, f"the alert arrived {took:.1f} s after the broker returned"


def test_backoff_is_capped_and_jittered_per_publisher(tmp_path: Path) -> None:
    spool = AlertSpool(tmp_path / "spool.sqlite3")
    delays = {MqttPublisher(MqttConfig(), spool)._reconnect for _ in range(20)}
    spool.close()
    assert all(0.5 <= low <= 1.0 and 4.0 <= high <= 5.0 for low, high in delays), delays
    assert len(delays) > 1, "every publisher drew the same back-off: daemons would retry in lock-step"
