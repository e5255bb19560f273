"""`surveil run` as a real process: systemd notifications over a real socket, metrics over
HTTP, SIGHUP reload, SIGTERM stop with exit 0 within 10 s."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.support.models import random_checkpoint
from tests.support.polling import free_port, wait_until
from tests.support.scene import RIGHT_HALF, make_scene_clip


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A real (random-weight) Faster R-CNN checkpoint: the real model-loading and inference path, offline."""
    return random_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt", ["__background__", "person"])


class NotifyListener:
    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def wait_for(self, field: str, timeout: float, count: int = 1) -> bool:
        """Wait until ``field`` has arrived ``count`` times in all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count(field) >= count:
                return True
            with contextlib.suppress(TimeoutError):
                self.messages.append(self.sock.recv(4096).decode())
        return self.count(field) >= count

    def count(self, field: str) -> int:
        return sum(field in m.split("\n") for m in self.messages)


def write_config(path: Path, clip: Path, weights: Path, metrics_port: int, zones: list[dict]) -> None:
    rules = [
        {"id": f"{z['name']}-intrusion", "type": "zone_intrusion", "zone": z["name"], "classes": ["person"]}
        for z in zones
    ]
    config = {
        "cameras": [
            {"name": "scene", "url": str(clip), "realtime": True, "loop": True, "zones": zones, "rules": rules}
        ],
        "detector": {"weights": str(weights), "device": "cpu", "batch_size": 1, "threads": 1},
        "mqtt": {"enabled": False},
        "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
        "logging": {"level": "INFO"},
    }
    path.write_text(yaml.safe_dump(config))


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return response.read().decode()
    except OSError:
        return ""


def processed(port: int) -> float:
    for line in scrape(port).splitlines():
        if line.startswith('surveil_frames_processed_total{camera="scene"}'):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.slow
def test_run_notify_reload_and_sigterm(tmp_path, tiny_checkpoint):
    clip = make_scene_clip(tmp_path / "scene.mp4")
    config_path, port = tmp_path / "site.yaml", free_port()
    zone = {"name": "right", "polygon": RIGHT_HALF}
    write_config(config_path, clip.path, tiny_checkpoint, port, [zone])
    listener = NotifyListener(tmp_path / "notify.sock")
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000"}
    process = subprocess.Popen(
        [sys.executable, "-m", "surveil", "run", "-c", str(config_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert listener.wait_for("READY=1", 60), listener.messages
        assert wait_until(lambda: processed(port) >= 5, 60), "no frames processed"
        assert listener.wait_for("WATCHDOG=1", 5)

        # SIGHUP with an invalid file: rejected, the old config keeps running
        config_path.write_text("cameras: [{name: scene}]\n")
        listener.wait_for("(drain what is queued)", 0.3)
        pings = listener.count("WATCHDOG=1")
        process.send_signal(signal.SIGHUP)
        before = processed(port)
        # two watchdog pings later the supervisor has seen the signal (it checks for reloads before pinging):
        # without this a fast model processes the next frames before the bad file is read, and the valid
        # file written below would be the one read
        assert listener.wait_for("WATCHDOG=1", 10, count=pings + 2)
        assert wait_until(lambda: processed(port) > before + 3, 30), "stopped processing after a bad reload"
        assert listener.count("RELOADING=1") == 0

        # SIGHUP with a valid changed file: reloaded, processing goes on
        write_config(config_path, clip.path, tiny_checkpoint, port, [{**zone, "name": "renamed"}])
        process.send_signal(signal.SIGHUP)
        assert listener.wait_for("RELOADING=1", 30)
        assert listener.wait_for("READY=1", 30, count=2)
        before = processed(port)
        assert wait_until(lambda: processed(port) > before + 3, 30)

        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)  # systemd's TimeoutStopSec: a stop that takes longer is killed
        assert process.returncode == 0, output
        assert listener.wait_for("STOPPING=1", 1)
        assert "Traceback" not in output
        assert "reload rejected" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
