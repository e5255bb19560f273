"""Home Assistant MQTT discovery (off by default): a real daemon announces a binary sensor per camera
and per alerting rule and a sensor per zone count, retained, with availability wired to its own
availability topic; the state topics they name are the ones the daemon really publishes."""

from __future__ import annotations

import json
import threading

import pytest
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


def _site(tmp_path, broker, clip, cameras: list[str]) -> dict:
    camera = {
        "url": str(clip),
        "realtime": True,
        "loop": True,
        "zones": [{"name": "right", "polygon": RIGHT_HALF}],
        "rules": [{"id": "intrusion", "type": "zone_intrusion", "zone": "right", "classes": ["person"]}],
    }
    return {
        "cameras": [{"name": name, **camera} for name in cameras],
        "detector": {"batch_size": 2, "max_wait_ms": 10},
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "instance": "ha",
            "topic_prefix": "site",
            "spool_path": str(tmp_path / "spool.sqlite3"),
            "home_assistant": {"enabled": True, "discovery_prefix": "hass"},
        },
        "metrics": {"listen": "127.0.0.1:0"},
    }


@pytest.mark.slow
@pytest.mark.parametrize("removed", [["yard"], ["gate", "yard"]], ids=["one camera", "all but one"])
def test_a_camera_removed_by_reload_loses_its_discovery_entities(
    tmp_path, mosquitto_broker, mqtt_collector, removed
) -> None:
    """Issue 18, item 8: empty retained configs for the removed camera's entities (Home Assistant drops them)."""
    clip = make_scene_clip(tmp_path / "scene.mp4")
    names = ["gate", "yard", "dock"]
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(_site(tmp_path, mosquitto_broker, clip.path, names)))
    daemon = Daemon(path, load_config(path), metrics=Metrics(), detector=BlobDetector())
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        everything = mqtt_collector("hass/#")

        def latest() -> dict[str, bytes]:
            return {m.topic: m.payload for m in everything.messages}

        assert wait_until(lambda: len(latest()) == 2 * len(names), 15), latest()
        kept = [n for n in names if n not in removed]
        path.write_text(yaml.safe_dump(_site(tmp_path, mosquitto_broker, clip.path, kept)))
        old = daemon.pipeline
        daemon._reload_requested.set()  # what SIGHUP does
        assert wait_until(lambda: daemon.pipeline is not old, 30)

        def cleared() -> bool:
            now = latest()
            return all(payload == b"" for topic, payload in now.items() if any(f"/{n}_" in topic for n in removed))

        assert wait_until(cleared, 15), latest()
        now = latest()
        assert all(now[t] for t in now if any(f"/{n}_" in t for n in kept)), "a kept camera lost its entities"
    finally:
        daemon.stop_requested.set()
        thread.join(timeout=15)
    assert not thread.is_alive()


MQTT_CHANGES = [  # (what changes in the mqtt section, the change, discovery prefix announced after it or None)
    ("discovery prefix", {"home_assistant": {"enabled": True, "discovery_prefix": "homeassistant"}}, "homeassistant"),
    ("topic prefix", {"topic_prefix": "site2"}, "hass"),
    ("instance name", {"instance": "ha2"}, "hass"),
    ("discovery off", {"home_assistant": {"enabled": False, "discovery_prefix": "hass"}}, None),
]


@pytest.mark.slow
@pytest.mark.parametrize(("what", "change", "announced"), MQTT_CHANGES, ids=[c[0] for c in MQTT_CHANGES])
def test_a_reload_that_changes_the_mqtt_section_clears_the_old_discovery_entities(
    tmp_path, mosquitto_broker, mqtt_collector, what, change, announced
) -> None:
    """Issue 18: the old retained discovery configs are cleared; the new ones are announced, pointing at
    the new topics (each case changes one option, so a config still announced must have changed)."""
    clip = make_scene_clip(tmp_path / "scene.mp4")
    site = _site(tmp_path, mosquitto_broker, clip.path, ["gate"])
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site))
    daemon = Daemon(path, load_config(path), metrics=Metrics(), detector=BlobDetector())
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        everything = mqtt_collector("#")

        def latest() -> dict[str, bytes]:
            return {m.topic: m.payload for m in everything.messages if "/config" in m.topic}

        assert wait_until(lambda: len(latest()) == 2, 15), latest()
        before = dict(latest())
        site["mqtt"] = {**site["mqtt"], **change}
        path.write_text(yaml.safe_dump(site))
        old = daemon.pipeline
        daemon._reload_requested.set()  # what SIGHUP does
        assert wait_until(lambda: daemon.pipeline is not old, 30)

        def settled() -> bool:
            now = latest()
            fresh = {t: p for t, p in now.items() if t not in before or now[t] != before[t]}
            gone = all(now[t] == b"" for t in before if t not in fresh or not fresh[t])
            new = [t for t, p in fresh.items() if p]
            return gone and len(new) == (2 if announced else 0) and all(now[t] == b"" for t in before if t not in new)

        assert wait_until(settled, 15), latest()
        now = latest()
        for topic in before:
            if now[topic]:  # announced again: only if the new config (the same topic) has changed
                assert json.loads(now[topic]) != json.loads(before[topic]), topic
        current = {t: json.loads(p) for t, p in now.items() if p}
        assert all(t.startswith(f"{announced}/") for t in current), current
        if what == "topic prefix":
            assert all(body["state_topic"].startswith("site2/") for body in current.values())
    finally:
        daemon.stop_requested.set()
        thread.join(timeout=15)
    assert not thread.is_alive()
