"""Home Assistant MQTT discovery (off by default): a real daemon announces a binary sensor per camera
and per alerting rule and a sensor per zone count, retained, with availability wired to its own
availability topic; the state topics they name are the ones the daemon really publishes."""

from __future__ import annotations

import json
import threading

import yaml

from surveil.config import MqttConfig, load_config
from surveil.service.daemon import Daemon
from surveil.service.metrics import Metrics
from tests.support.polling import wait_until
from tests.support.scene import RIGHT_HALF, BlobDetector, make_scene_clip


def test_discovery_is_off_by_default() -> None:
    assert MqttConfig().home_assistant.enabled is False


def test_daemon_announces_entities_wired_to_its_topics(tmp_path, mosquitto_broker, mqtt_collector) -> None:
    clip = make_scene_clip(tmp_path / "scene.mp4")
    path = tmp_path / "site.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "cameras": [
                    {
                        "name": "gate",
                        "url": str(clip.path),
                        "realtime": True,
                        "loop": True,
                        "zones": [{"name": "right", "polygon": RIGHT_HALF}],
                        "rules": [
                            {"id": "intrusion", "type": "zone_intrusion", "zone": "right", "classes": ["person"]},
                            {"id": "count", "type": "zone_occupancy", "zone": "right"},
                        ],
                    }
                ],
                "detector": {"batch_size": 2, "max_wait_ms": 10},
                "mqtt": {
                    "host": mosquitto_broker.host,
                    "port": mosquitto_broker.port,
                    "instance": "ha",
                    "topic_prefix": "site",
                    "spool_path": str(tmp_path / "spool.sqlite3"),
                    "home_assistant": {"enabled": True, "discovery_prefix": "hass"},
                },
                "metrics": {"listen": "127.0.0.1:0"},
            }
        )
    )
    daemon = Daemon(path, load_config(path), metrics=Metrics(), detector=BlobDetector())
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        everything = mqtt_collector("#")
        configs = {}

        def announced() -> bool:
            configs.update({m.topic: json.loads(m.payload) for m in everything.messages if m.topic.startswith("hass/")})
            return len(configs) == 3

        assert wait_until(announced, 15), everything.messages
        topics = {m.topic for m in everything.messages}
        assert wait_until(
            lambda: {"site/gate/status", "site/gate/zones/right/count"} <= {m.topic for m in everything.messages}, 15
        )
        assert wait_until(lambda: "site/gate/alerts/intrusion" in {m.topic for m in everything.messages}, 30)
        topics = {m.topic for m in everything.messages}
    finally:
        daemon.stop_requested.set()
        thread.join(timeout=15)
    kinds = sorted(topic.split("/")[1] for topic in configs)
    assert kinds == ["binary_sensor", "binary_sensor", "sensor"]
    for body in configs.values():
        assert body["availability_topic"] == "site/ha/available" and body["unique_id"].startswith("surveil_ha_")
        assert body["state_topic"] in topics, body["state_topic"]
