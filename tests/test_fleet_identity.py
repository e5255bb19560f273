"""Issue 18.5, fleet identity, with real `surveil run` processes and one mosquitto.

Two shards of one config on one host get distinct default instance names (``<host>-shard<i>of2``),
so killing one leaves the other's availability ``online`` and its cameras in the fleet list. A
second daemon on a spool that is in use, or under a name a live daemon answers to, stops with exit
2 and a message naming the spool or the name; the first daemon's alerts carry no duplicate.
Every daemon runs the shipped model on the PETS clip (input 320, one thread, 1 fps per camera).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from surveil.service.sharding import Shard, assign, default_instance_name
from tests.support.mqtt_broker import (  # noqa: F401  (fixtures)
    MqttCollector,
    find_mosquitto,
    mosquitto_broker,
    mosquitto_broker_factory,
    mqtt_collector,
)
from tests.support.surveil_cli import REPO, SHIPPED_MODEL

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed"),
]

CLIP = REPO / "configs" / "media" / "pets2009-s2l1.mp4"
PREFIX = "identity-test"
SHARDS = 2


def two_cameras() -> list[str]:
    """Two camera names that rendezvous hashing splits 1/1 over two instances (the first such, so always the same)."""
    names = [f"door-{n:02d}" for n in range(100)]
    first = next(n for n in names if assign([n], SHARDS)[0])
    second = next(n for n in names if assign([n], SHARDS)[1])
    return [first, second]


def write_config(path: Path, broker_port: int, cameras: list[str], instance: str | None = None) -> None:
    mqtt: dict[str, object] = {"host": "127.0.0.1", "port": broker_port, "topic_prefix": PREFIX}
    if instance is not None:
        mqtt["instance"] = instance
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
            "batch_size": 2,
            "max_wait_ms": 50,
        },
        "mqtt": mqtt,
        "metrics": {"listen": "127.0.0.1:0"},  # any free port: nothing here scrapes, and no race for a port
        "web": {"enabled": False},
        "sharding": {"instances": SHARDS},
        "state_dir": "${STATE}",
    }
    path.write_text(yaml.safe_dump(config))


class Daemons:
    def __init__(self, root: Path):
        self.root = root
        self.procs: list[subprocess.Popen] = []
        self.names: list[str] = []

    def start(self, config: Path, shard: int, state: str, name: str) -> subprocess.Popen:
        (self.root / state).mkdir(exist_ok=True)
        env = {"PATH": "/usr/bin:/bin", "STATE": str(self.root / state)}
        env["OMP_NUM_THREADS"] = "1"
        log = open(self.root / f"{name}.log", "a")  # noqa: SIM115 (the Popen owns it)
        proc = subprocess.Popen(
            [sys.executable, "-m", "surveil", "run", "-c", str(config), "--shard", f"{shard}/{SHARDS}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        self.procs.append(proc)
        self.names.append(name)
        return proc

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")[-3000:]

    def wait_for(self, subscriber: MqttCollector, predicate, timeout: float, *alive: str) -> None:
        """``subscriber.wait_for``, failing at once with the log of a daemon in ``alive`` that exited, and
        with every one of their logs on timeout: a silent 180-s wait says nothing of why."""
        deadline = time.monotonic() + timeout
        while True:
            for name in alive:
                proc = self.procs[self.names.index(name)]
                if proc.poll() is not None:
                    raise AssertionError(f"daemon {name!r} exited with {proc.returncode}:\n{self.log(name)}")
            try:
                subscriber.wait_for(predicate, min(1.0, max(0.0, deadline - time.monotonic())))
                return
            except AssertionError:
                if time.monotonic() >= deadline:
                    logs = "\n".join(f"--- {name}:\n{self.log(name)}" for name in alive)
                    raise AssertionError(f"condition not met within {timeout} s\n{logs}") from None

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def last(messages, topic: str) -> bytes | None:
    payloads = [m.payload for m in messages if m.topic == topic]
    return payloads[-1] if payloads else None


def instance(index: int) -> str:
    return default_instance_name(socket.gethostname(), Shard(index, SHARDS))


@pytest.fixture
def site(tmp_path, mosquitto_broker):
    cameras = two_cameras()
    config = tmp_path / "site.yaml"
    write_config(config, mosquitto_broker.port, cameras)
    daemons = Daemons(tmp_path)
    yield config, cameras, daemons
    daemons.stop_all()


def test_two_shards_on_one_host_have_their_own_identity(site, mosquitto_broker, mqtt_collector):
    config, cameras, daemons = site
    subscriber: MqttCollector = mqtt_collector(f"{PREFIX}/#")
    names = [instance(i) for i in range(SHARDS)]
    assert len(set(names)) == SHARDS
    owned = {names[i]: assign(cameras, SHARDS)[i] for i in range(SHARDS)}
    for i in range(SHARDS):
        daemons.start(config, i, f"state-{i}", f"shard-{i}")

    def announced(ms) -> bool:
        return all(
            last(ms, f"{PREFIX}/{n}/available") == b"online" and last(ms, f"{PREFIX}/fleet/{n}") is not None
            for n in names
        )

    daemons.wait_for(subscriber, announced, 120, "shard-0", "shard-1")
    for name in names:
        body = json.loads(last(subscriber.messages, f"{PREFIX}/fleet/{name}") or b"{}")
        assert body["instance"] == name and body["cameras"] == owned[name] and body["started"] > 0

    killed_at = len(subscriber.messages)
    daemons.procs[1].kill()
    daemons.procs[1].wait()
    subscriber.wait_for(lambda ms: last(ms[killed_at:], f"{PREFIX}/{names[1]}/available") == b"offline", 15)
    (dead_camera,) = owned[names[1]]
    subscriber.wait_for(
        lambda ms: any(
            m.topic == f"{PREFIX}/{dead_camera}/status" and names[1] in json.loads(m.payload)["reason"]
            for m in ms[killed_at:]
        ),
        30,
    )
    late = MqttCollector(mosquitto_broker.host, mosquitto_broker.port, f"{PREFIX}/#", persistent=False)
    try:
        late.wait_subscribed().wait_for(  # every retained message the checks below read has arrived
            lambda ms: all(
                last(ms, topic) is not None
                for topic in (f"{PREFIX}/fleet/{names[0]}", *(f"{PREFIX}/{n}/available" for n in names))
            ),
            10,
        )
        assert last(late.messages, f"{PREFIX}/{names[0]}/available") == b"online"  # the survivor is still online
        assert last(late.messages, f"{PREFIX}/{names[1]}/available") == b"offline"
        survivor = json.loads(last(late.messages, f"{PREFIX}/fleet/{names[0]}") or b"{}")
        assert survivor["cameras"] == owned[names[0]]  # its cameras are still in the fleet list
        (live_camera,) = owned[names[0]]
        assert all(
            "is offline" not in json.loads(m.payload)["reason"]
            for m in subscriber.messages
            if m.topic == f"{PREFIX}/{live_camera}/status"
        )
    finally:
        late.close()
    assert daemons.procs[0].poll() is None, daemons.log("shard-0")


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param("same-spool", "spool", id="same-config-same-spool"),
        pytest.param("same-instance", "instance", id="own-spool-but-a-live-daemon-has-the-name"),
    ],
)
def test_a_second_daemon_refuses_to_start(site, mosquitto_broker, mqtt_collector, tmp_path, case, expected):
    config, cameras, daemons = site
    subscriber: MqttCollector = mqtt_collector(f"{PREFIX}/#")
    first = daemons.start(config, 0, "state-0", "first")
    name = instance(0)
    # the first is up and alerting before the second tries
    daemons.wait_for(subscriber, lambda ms: any("/alerts/" in m.topic for m in ms), 180, "first")
    if case == "same-spool":
        second = daemons.start(config, 0, "state-0", "second")
    else:
        other = tmp_path / "other.yaml"
        write_config(other, mosquitto_broker.port, cameras, instance=name)
        second = daemons.start(other, 1, "state-1", "second")
    assert second.wait(timeout=120) == 2, daemons.log("second")
    message = daemons.log("second")
    if expected == "spool":
        assert str(tmp_path / "state-0" / "surveil-spool.sqlite3") in message and "in use" in message, message
    else:
        assert f"already runs as {name!r}" in message and f"pid {first.pid}" in message, message
    # the first carries on: online, alerting, and no alert arrived twice
    seen = len(subscriber.messages)
    daemons.wait_for(subscriber, lambda ms: any("/alerts/" in m.topic for m in ms[seen:]), 60, "first")
    assert last(subscriber.messages, f"{PREFIX}/{name}/available") == b"online"
    assert first.poll() is None, daemons.log("first")
    ids = [json.loads(m.payload)["id"] for m in subscriber.messages if "/alerts/" in m.topic]
    assert len(ids) == len(set(ids)), "an alert arrived twice"
