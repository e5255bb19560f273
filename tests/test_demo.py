"""Must-show 2: `surveil run -c configs/demo.yaml` starts, processes frames, serves metrics,
and stops cleanly on SIGTERM with exit 0 — offline, with the shipped model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.alert_schema import validate_alert
from tests.support.polling import free_port, wait_until
from tests.support.scene import make_scene_clip

REPO = Path(__file__).resolve().parents[1]
PETS_VIDEO = REPO.parent / "shared/data/video/vtest_pets2009-s2l1-view001_480x360.avi"

pytestmark = pytest.mark.slow


def metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + "{") or line.startswith(name + " "))


def starts(subscriber) -> list[dict]:
    messages = [json.loads(m.payload) for m in subscriber.messages if "/alerts/" in m.topic]
    return [m for m in messages if m["phase"] == "start"]


def test_demo_config_runs_and_stops_cleanly(tmp_path, mosquitto_broker, mqtt_collector):
    video = PETS_VIDEO if PETS_VIDEO.is_file() else make_scene_clip(tmp_path / "scene.mp4").path
    port = free_port()
    subscriber = mqtt_collector("surveil/#")
    env = {
        **os.environ,
        "SURVEIL_DEMO_VIDEO": str(video),
        "MQTT_HOST": "127.0.0.1",
        "MQTT_PORT": str(mosquitto_broker.port),
        "SURVEIL_METRICS_LISTEN": f"127.0.0.1:{port}",
        "TORCH_HOME": str(tmp_path / "torch"),  # nothing cached: the demo must not need a download
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "surveil", "run", "-c", str(REPO / "configs/demo.yaml")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert wait_until(lambda: metric(port, "surveil_frames_processed_total") >= 10, 120), "no frames processed"
        assert metric(port, "surveil_detector_ready") == 1
        assert wait_until(lambda: any(m.payload == b"online" for m in subscriber.on_topic("surveil/available")), 10)
        if video == PETS_VIDEO:  # must-show: real alerts on the real surveillance video, offline
            assert wait_until(lambda: starts(subscriber), 120), "no alert from the demo"
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
        elapsed = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert elapsed < 10, f"stop took {elapsed:.1f} s"
    assert "Traceback" not in output, output
    assert wait_until(lambda: subscriber.on_topic("surveil/available")[-1].payload == b"offline", 5)
    alerts = [json.loads(m.payload) for m in subscriber.messages if "/alerts/" in m.topic]
    for alert in alerts:  # what went over the wire, from another process
        validate_alert(alert)
    if video == PETS_VIDEO:  # every incident the demo started ended, at the latest when it stopped
        assert {a["incident_id"] for a in alerts if a["phase"] == "end"} == {a["incident_id"] for a in alerts if a["phase"] == "start"}
