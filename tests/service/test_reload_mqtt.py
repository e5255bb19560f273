"""Issue 7 class 9: a reload disturbs nothing that did not change — here the MQTT connection.

A real daemon (scripted detector, real clip, real mosquitto) is reloaded three ways; a subscriber
watches its availability topic. An unchanged config, or one where only a camera changed, keeps the
same MQTT client and spool (no ``offline`` then ``online``); a changed ``mqtt`` section replaces
them (``offline`` from the old client, ``online`` from the new one, a new client id)."""

from __future__ import annotations

import threading

import pytest
import yaml

from surveil.config import load_config
from surveil.service.daemon import Daemon
from surveil.service.metrics import Metrics
from tests.support.polling import wait_until
from tests.support.scene import RIGHT_HALF, BlobDetector, make_scene_clip

LEFT_HALF = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]


def write_config(path, clip, state, broker, polygon=RIGHT_HALF, keepalive_s=30):
    config = {
        "cameras": [
            {
                "name": "a",
                "url": str(clip),
                "realtime": True,
                "loop": True,
                "zones": [{"name": "zone", "polygon": polygon}],
                "rules": [{"id": "intrusion", "type": "zone_intrusion", "zone": "zone", "classes": ["person"]}],
            }
        ],
        "detector": {"batch_size": 2, "max_wait_ms": 10},
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "instance": "reload",
            "topic_prefix": "rl",
            "keepalive_s": keepalive_s,
            "spool_path": str(state / "spool.sqlite3"),
        },
        "metrics": {"listen": "127.0.0.1:0"},
    }
    path.write_text(yaml.safe_dump(config))


# what changes in the file, and whether the MQTT client must be replaced
CASES = [
    ("nothing", {}, False),
    ("a camera's zone", {"polygon": LEFT_HALF}, False),
    ("the mqtt section", {"keepalive_s": 31}, True),
]


@pytest.mark.parametrize(("change", "edit", "replaced"), CASES, ids=[c[0] for c in CASES])
def test_reload_keeps_the_mqtt_client_unless_its_config_changed(
    tmp_path, mosquitto_broker, mqtt_collector, change, edit, replaced
):
    clip = make_scene_clip(tmp_path / "scene.mp4")
    path = tmp_path / "site.yaml"
    write_config(path, clip.path, tmp_path, mosquitto_broker)
    subscriber = mqtt_collector("rl/reload/available")
    daemon = Daemon(path, load_config(path), metrics=Metrics(), detector=BlobDetector())
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: [m.payload for m in subscriber.messages] == [b"online"], 15)
        old_pipeline = daemon.pipeline
        old_client, old_spool = old_pipeline.outputs.mqtt, old_pipeline.outputs.spool
        old_id = old_client.client_id

        write_config(path, clip.path, tmp_path, mosquitto_broker, **edit)
        daemon._reload_requested.set()
        assert wait_until(lambda: daemon.pipeline is not old_pipeline, 30)
        assert wait_until(lambda: daemon.metrics.registry.get_sample_value("surveil_mqtt_connected") == 1, 10)
        new_client = daemon.pipeline.outputs.mqtt
        if replaced:
            expected = [b"online", b"offline", b"online"]
            assert wait_until(lambda: [m.payload for m in subscriber.messages] == expected, 10), subscriber.messages
            assert new_client is not old_client and new_client.client_id != old_id
            assert daemon.pipeline.outputs.spool is not old_spool
        else:
            assert not wait_until(lambda: len(subscriber.messages) > 1, 2), (
                f"reload disturbed MQTT: {subscriber.messages}"
            )
            assert new_client is old_client and daemon.pipeline.outputs.spool is old_spool
            assert new_client.connected
    finally:
        daemon.stop_requested.set()
        thread.join(timeout=15)
    assert not thread.is_alive()
    assert wait_until(lambda: subscriber.messages[-1].payload == b"offline", 5), "the final stop publishes offline"
