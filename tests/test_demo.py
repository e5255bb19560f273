"""Must-show: from a bare clone (the tracked files only, nothing beside them), `surveil run -c
configs/demo.yaml` starts, raises real alerts on the shipped PETS clip over MQTT, serves metrics,
and stops cleanly on SIGTERM with exit 0 — offline, with the shipped model."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from surveil.config import MqttConfig
from tests.support.alert_schema import validate_alert
from tests.support.polling import free_port, wait_until
from tests.support.polling import scraped_metric as metric

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow
AVAILABLE = f"surveil/{MqttConfig().instance_name}/available"  # the demo names no instance: the host name


def starts(subscriber) -> list[dict]:
    messages = [json.loads(m.payload) for m in subscriber.messages if "/alerts/" in m.topic]
    return [m for m in messages if m["phase"] == "start"]


def bare_clone(dest: Path) -> Path:
    """The repository's tracked files as a fresh clone has them (working-tree contents), in ``dest``."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():  # a file deleted in the working tree is not copied
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def test_demo_from_a_bare_clone_alerts_and_stops_cleanly(tmp_path, mosquitto_broker, mqtt_collector):
    clone = bare_clone(tmp_path / "clone")
    assert not (clone.parent / "shared").exists()
    port = free_port()
    subscriber = mqtt_collector("surveil/#")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SURVEIL_")},
        "MQTT_HOST": "127.0.0.1",
        "MQTT_PORT": str(mosquitto_broker.port),
        "SURVEIL_METRICS_LISTEN": f"127.0.0.1:{port}",
        "TORCH_HOME": str(tmp_path / "torch"),  # nothing cached: the demo must not need a download
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "surveil", "run", "-c", "configs/demo.yaml"],  # the clone's own package and files
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_until(lambda: metric(port, "surveil_frames_processed_total") >= 10, 120), "no frames processed"
        assert metric(port, "surveil_detector_ready") == 1
        assert wait_until(lambda: any(m.payload == b"online" for m in subscriber.on_topic(AVAILABLE)), 10)
        assert wait_until(lambda: starts(subscriber), 120), "no alert from the demo"  # real alerts, offline
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:  # the live view
            assert 'data-camera="plaza"' in response.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/cameras/plaza/latest.jpg", timeout=5) as response:
            assert response.headers["Content-Type"] == "image/jpeg" and response.read()[:2] == b"\xff\xd8"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)  # systemd's TimeoutStopSec: a stop that takes longer is killed
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "Traceback" not in output, output
    assert wait_until(lambda: subscriber.on_topic(AVAILABLE)[-1].payload == b"offline", 5)
    alerts = [json.loads(m.payload) for m in subscriber.messages if "/alerts/" in m.topic]
    for alert in alerts:  # what went over the wire, from another process
        validate_alert(alert)
    assert "alert start" in output, output  # the alerts are in the log too
    # every incident the demo started ended, at the latest when it stopped
    assert {a["incident_id"] for a in alerts if a["phase"] == "end"} == {
        a["incident_id"] for a in alerts if a["phase"] == "start"
    }
