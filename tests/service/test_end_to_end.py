"""The whole path on real parts: H.264 clip → capture → batch → detect → track → zone rule →
MQTT (real mosquitto) and JSON lines; metrics scraped over HTTP."""

from __future__ import annotations

import json
import re
import threading
import urllib.request

import pytest

from surveil.config import Config
from surveil.service.daemon import Daemon
from surveil.service.metrics import Metrics
from tests.support.polling import wait_until
from tests.support.scene import RIGHT_HALF, BlobDetector, make_scene_clip

RULE = "right_half_intrusion"
ALERTS = f"site/scene/alerts/{RULE}"


def starts(subscriber) -> list[dict]:
    return [a for a in (json.loads(m.payload) for m in subscriber.on_topic(ALERTS)) if a["phase"] == "start"]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def sample(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape('{' + labels + '}') if labels else ''}\s+(\S+)$"
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else 0.0


def scene_config(url: str, broker, tmp_path, **camera) -> Config:
    return Config.model_validate(
        {
            "cameras": [
                {
                    "name": "scene",
                    "url": url,
                    "realtime": True,
                    "loop": False,
                    "stall_timeout_s": 3,
                    "reconnect_min_s": 0.2,
                    "reconnect_max_s": 1.0,
                    "zones": [{"name": "right_half", "polygon": RIGHT_HALF}],
                    "rules": [
                        {
                            "id": RULE,
                            "type": "zone_intrusion",
                            "zone": "right_half",
                            "classes": ["person"],
                            "min_frames": 3,
                        }
                    ],
                    **camera,
                }
            ],
            "detector": {"batch_size": 4, "max_wait_ms": 10},
            "tracker": {"min_hits": 2, "lost_after_s": 1.0},
            "mqtt": {
                "host": "127.0.0.1",
                "port": broker.port,
                "client_id": "surveil-e2e",
                "instance": "e2e",
                "topic_prefix": "site",
                "spool_path": str(tmp_path / "spool.sqlite3"),
            },
            "alerts": {"jsonl_path": str(tmp_path / "alerts.jsonl")},
            "metrics": {"listen": "127.0.0.1:0"},
        }
    )


class RunningDaemon:
    """Daemon.run() in a thread, the way `surveil run` runs it (minus signal handlers)."""

    def __init__(self, config: Config, detector):
        self.daemon = Daemon("unused.yaml", config, metrics=Metrics(), detector=detector)
        self.status: list[int] = []
        self.thread = threading.Thread(target=lambda: self.status.append(self.daemon.run()), daemon=True)

    def __enter__(self) -> RunningDaemon:
        self.thread.start()
        assert wait_until(lambda: self.daemon.metrics_port is not None, 30)
        return self

    def __exit__(self, *exc) -> None:
        self.daemon.stop_requested.set()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "daemon did not stop within 15 s"

    def metrics(self) -> str:
        return scrape(self.daemon.metrics_port)


def test_one_alert_per_object_entering_a_zone(tmp_path, mosquitto_broker, mqtt_collector):
    clip = make_scene_clip(tmp_path / "scene.mp4")
    subscriber = mqtt_collector("site/#")
    config = scene_config(str(clip.path), mosquitto_broker, tmp_path)
    with RunningDaemon(config, BlobDetector()) as running:
        # loop: false → the camera goes down with "end of file" once the clip has played
        assert wait_until(
            lambda: sample(running.metrics(), "surveil_frames_captured_total", 'camera="scene"') >= clip.frames, 30
        )
        assert wait_until(lambda: len(starts(subscriber)) >= clip.objects, 10)
        metrics = running.metrics()
    alerts = starts(subscriber)
    assert len(alerts) == clip.objects, alerts
    assert len({a["subjects"][0]["track_id"] for a in alerts}) == clip.objects
    for alert in alerts:
        assert alert["schema_version"] == 3
        assert (alert["camera"], alert["rule"], alert["rule_type"], alert["zone"]) == (
            "scene",
            RULE,
            "zone_intrusion",
            "right_half",
        )
        (subject,) = alert["subjects"]
        assert subject["class"] == "person" and subject["score"] == pytest.approx(0.99)
        x1, _y1, x2, _y2 = subject["box"]
        assert (x1 + x2) / 2 >= 160, "the box's anchor must be in the right half"
        assert alert["published_ts"] >= alert["ts"]
    # the clean stop ends every incident it started, with the same incident ids
    everything = [json.loads(m.payload) for m in subscriber.on_topic(ALERTS)]
    ends = [a for a in everything if a["phase"] == "end"]
    assert sorted(a["incident_id"] for a in ends) == sorted(a["incident_id"] for a in alerts)
    # the same messages, with the same ids, went to the JSON-lines sink
    lines = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert sorted(a["id"] for a in lines) == sorted(a["id"] for a in everything)
    # metrics, scraped over HTTP
    assert sample(metrics, "surveil_frames_processed_total", 'camera="scene"') > clip.frames / 2
    assert sample(metrics, "surveil_alerts_total", f'camera="scene",rule="{RULE}"') == clip.objects
    assert sample(metrics, "surveil_alert_latency_seconds_count") == clip.objects
    assert sample(metrics, "surveil_inference_seconds_count") > 0
    assert sample(metrics, "surveil_detections_total", 'camera="scene",class="person"') > clip.frames
    assert sample(metrics, "surveil_mqtt_connected") == 1
    # retained availability flips to offline on a clean stop
    assert wait_until(lambda: any(m.payload == b"offline" for m in subscriber.on_topic("site/e2e/available")), 5)
