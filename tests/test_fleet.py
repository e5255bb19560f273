"""Issue 9: three real `surveil run` processes share nine cameras through one mosquitto.

Every daemon runs the shipped pedestrian model on the shipped PETS 2009 clip (input 320, one
thread, 1 processed frame per second per camera) with a whole-frame intrusion rule, so each one
raises real alerts. One config file for all three, as in the StatefulSet: the shard comes from
``--shard i/3``, the instance name, metrics port and state folder from the environment.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from surveil.service.sharding import assign
from tests.support.mqtt_broker import (  # noqa: F401  (fixtures)
    MqttCollector,
    find_mosquitto,
    mosquitto_broker,
    mosquitto_broker_factory,
    mqtt_collector,
)
from tests.support.polling import free_port, wait_until
from tests.support.surveil_cli import REPO, SHIPPED_MODEL

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed"),
]

CLIP = REPO / "configs" / "media" / "pets2009-s2l1.mp4"
PREFIX = "fleet-test"
SHARDS = 3


def nine_cameras() -> list[str]:
    """Nine camera names that rendezvous hashing spreads 3/3/3 (the first such names, so always the same)."""
    chosen: dict[int, list[str]] = {i: [] for i in range(SHARDS)}
    for n in range(1000):
        name = f"plaza-{n:02d}"
        index = assign([name], SHARDS)
        shard = next(i for i, cameras in index.items() if cameras)
        if len(chosen[shard]) < 3:
            chosen[shard].append(name)
        if all(len(c) == 3 for c in chosen.values()):
            return [name for i in range(SHARDS) for name in chosen[i]]
    raise AssertionError("no 3/3/3 split among 1,000 names")


def write_config(path: Path, broker_port: int, cameras: list[str]) -> None:
    config = {
        "cameras": [
            {
                "name": name,
                "url": str(CLIP),
                "realtime": True,
                "loop": True,
                "fps_limit": 1,
                "zones": [{"name": "all", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
                "rules": [
                    {"id": "walk", "type": "zone_intrusion", "zone": "all", "classes": ["pedestrian"], "min_frames": 2}
                ],
            }
            for name in cameras
        ],
        "detector": {
            "weights": str(SHIPPED_MODEL),
            "device": "cpu",
            "backend": "torch",
            "threads": 1,
            "min_size": 320,
            "batch_size": 3,
            "max_wait_ms": 50,
        },
        "mqtt": {"host": "127.0.0.1", "port": broker_port, "topic_prefix": PREFIX, "instance": "${INSTANCE}"},
        "metrics": {"listen": "127.0.0.1:${METRICS_PORT}"},
        "web": {"enabled": False},
        "sharding": {"instances": SHARDS},
        "state_dir": "${STATE}",
    }
    path.write_text(yaml.safe_dump(config))


class Fleet:
    def __init__(self, config: Path, root: Path):
        self.config, self.root = config, root
        self.ports = {i: free_port() for i in range(SHARDS)}
        self.procs: dict[int, subprocess.Popen] = {}

    def start(self, index: int) -> None:
        state = self.root / f"state-{index}"
        state.mkdir(exist_ok=True)
        env = {
            "PATH": "/usr/bin:/bin",
            "INSTANCE": f"shard-{index}",
            "METRICS_PORT": str(self.ports[index]),
            "STATE": str(state),
            "OMP_NUM_THREADS": "1",
        }
        log = open(self.root / f"shard-{index}.log", "a")  # noqa: SIM115 (the Popen owns it)
        self.procs[index] = subprocess.Popen(
            [sys.executable, "-m", "surveil", "run", "-c", str(self.config), "--shard", f"{index}/{SHARDS}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    def processed(self, index: int) -> dict[str, float]:
        """camera -> surveil_frames_processed_total, scraped from the daemon's /metrics ({} if not serving)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[index]}/metrics", timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return {}
        pattern = re.compile(r'^surveil_frames_processed_total\{camera="([^"]+)"\} (\S+)$', re.M)
        return {camera: float(value) for camera, value in pattern.findall(text)}

    def log(self, index: int) -> str:
        return (self.root / f"shard-{index}.log").read_text(errors="replace")[-3000:]

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def alert_cameras(messages, since: int = 0) -> set[str]:
    return {m.topic.split("/")[1] for m in messages[since:] if "/alerts/" in m.topic}


def test_three_daemons_share_nine_cameras(tmp_path, mosquitto_broker, mqtt_collector):
    cameras = nine_cameras()
    owned = {i: set(cameras[3 * i : 3 * i + 3]) for i in range(SHARDS)}
    config = tmp_path / "site.yaml"
    write_config(config, mosquitto_broker.port, cameras)
    subscriber: MqttCollector = mqtt_collector(f"{PREFIX}/#")
    fleet = Fleet(config, tmp_path)
    try:
        for index in range(SHARDS):
            fleet.start(index)

        # every camera processed, each by exactly one daemon: the one its hash names
        def all_processing() -> bool:
            return all(
                fleet.processed(i).keys() == owned[i] and min(fleet.processed(i).values()) > 0 for i in range(SHARDS)
            )

        assert wait_until(all_processing, 90, interval=1), {
            i: (fleet.processed(i), fleet.log(i)) for i in range(SHARDS)
        }
        fleet_messages = {i: f"{PREFIX}/fleet/shard-{i}" for i in range(SHARDS)}
        subscriber.wait_for(lambda ms: all(any(m.topic == t for m in ms) for t in fleet_messages.values()), 10)
        for i, topic in fleet_messages.items():
            body = json.loads(subscriber.on_topic(topic)[-1].payload)
            assert set(body["cameras"]) == owned[i] and body["shard"] == {"index": i, "instances": SHARDS}

        # alerts from all three daemons reach the one subscriber
        subscriber.wait_for(lambda ms: all(alert_cameras(ms) & owned[i] for i in range(SHARDS)), 60)

        # SIGKILL shard 1: the broker publishes its last will; the other two keep processing and alerting
        killed_at = len(subscriber.messages)
        fleet.procs[1].kill()
        fleet.procs[1].wait()
        available = f"{PREFIX}/shard-1/available"
        messages = subscriber.wait_for(
            lambda ms: any(m.topic == available and m.payload == b"offline" for m in ms[killed_at:]), 10
        )
        will_at = next(n for n in range(killed_at, len(messages)) if messages[n].topic == available)
        before = {i: sum(fleet.processed(i).values()) for i in (0, 2)}
        subscriber.wait_for(
            lambda ms: alert_cameras(ms, killed_at) & owned[0] and alert_cameras(ms, killed_at) & owned[2], 60
        )
        # an alert published after the kill may come from a frame counted before it: wait for the counters
        assert wait_until(lambda: all(sum(fleet.processed(i).values()) > before[i] for i in (0, 2)), 30, interval=1), {
            i: fleet.processed(i) for i in (0, 2)
        }
        assert not alert_cameras(subscriber.messages, will_at) & owned[1], "a dead daemon's cameras alerted"

        # its cameras' status follows: the surviving daemons mark them down, naming the dead instance
        def status_after(ms, start, camera):
            return [json.loads(m.payload) for m in ms[start:] if m.topic == f"{PREFIX}/{camera}/status"]

        subscriber.wait_for(
            lambda ms: all(
                any(not s["up"] and "shard-1" in s["reason"] for s in status_after(ms, will_at, c)) for c in owned[1]
            ),
            15,
        )
        assert not any(not s["up"] for c in owned[0] | owned[2] for s in status_after(subscriber.messages, will_at, c))
        # a subscriber knows which cameras are unserved: the offline instance's retained fleet list
        late = MqttCollector(
            mosquitto_broker.host, mosquitto_broker.port, f"{PREFIX}/#", persistent=False
        ).wait_subscribed()
        try:
            late.wait_for(
                lambda ms: any(m.topic == available for m in ms) and any(m.topic == fleet_messages[1] for m in ms), 10
            )
            assert late.on_topic(available)[-1].payload == b"offline"
            assert set(json.loads(late.on_topic(fleet_messages[1])[-1].payload)["cameras"]) == owned[1]
        finally:
            late.close()

        # restart it: its cameras come back
        restarted_at = len(subscriber.messages)
        fleet.start(1)
        subscriber.wait_for(
            lambda ms: any(m.topic == available and m.payload == b"online" for m in ms[restarted_at:]), 60
        )
        assert wait_until(
            lambda: fleet.processed(1).keys() == owned[1] and min(fleet.processed(1).values()) > 0, 60, interval=1
        ), fleet.log(1)
        subscriber.wait_for(lambda ms: alert_cameras(ms, restarted_at) & owned[1], 60)
        subscriber.wait_for(
            lambda ms: all(
                status_after(ms, restarted_at, c)[-1:] and status_after(ms, restarted_at, c)[-1]["up"] for c in owned[1]
            ),
            30,
        )
    finally:
        fleet.stop_all()
    for i in range(SHARDS):
        assert fleet.procs[i].returncode == 0, fleet.log(i)
