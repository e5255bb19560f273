"""A real mosquitto broker for tests, and a subscriber that records what it receives.

Import the fixtures into a test module (or re-export them from ``tests/conftest.py``)::

    from tests.support.mqtt_broker import (  # noqa: F401
        MqttCollector, mosquitto_broker, mosquitto_broker_factory, mqtt_collector,
    )

The broker runs with persistence on, so a collector's QoS 1 subscription (clean_session
False) survives a broker restart and the broker queues messages for it meanwhile; retained
messages survive too unless ``clear_state()`` is called while the broker is stopped.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.polling import free_port, wait_until  # noqa: F401  (re-exported)

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto() -> str | None:
    for candidate in MOSQUITTO_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    return shutil.which("mosquitto")


class MosquittoBroker:
    """One mosquitto process on 127.0.0.1:port; ``stop()``/``start()`` keep the same port."""

    host = "127.0.0.1"

    def __init__(
        self, executable: str, workdir: Path, port: int | None = None, users: dict[str, str] | None = None
    ) -> None:
        """``users``: name -> password; when given, anonymous clients are refused."""
        self.executable = executable
        self.workdir = workdir
        self.port = port or free_port()
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "mosquitto.log"
        self.conf_path = workdir / "mosquitto.conf"
        self.conf_path.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"{self._auth_conf(users)}"
            # As root, mosquitto would switch to user `mosquitto` and then could not write its
            # log and persistence files in our temporary folder; stay the user we are.
            f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
            "persistence true\n"
            f"persistence_location {self.data_dir}/\n"
            "max_queued_messages 100000\n"
            "queue_qos0_messages true\n"
            f"log_dest file {self.log_path}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "connection_messages true\n"
        )
        self._proc: subprocess.Popen[bytes] | None = None

    def _auth_conf(self, users: dict[str, str] | None) -> str:
        if not users:
            return "allow_anonymous true\n"
        passwd = shutil.which("mosquitto_passwd")
        if passwd is None:
            pytest.skip("mosquitto_passwd is not installed")
        password_file = self.workdir / "passwords"
        password_file.touch(mode=0o600)
        for name, password in users.items():
            subprocess.run([passwd, "-b", str(password_file), name, password], check=True, capture_output=True)
        return f"allow_anonymous false\npassword_file {password_file}\n"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        self._proc = subprocess.Popen(
            [self.executable, "-c", str(self.conf_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while not self._accepts_connections():
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise RuntimeError(f"mosquitto exited with {self._proc.returncode}: {err}\n{self.log_text()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"mosquitto did not listen on port {self.port} within {timeout} s\n{self.log_text()}"
                )
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM: clients see the connection close, state is saved)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._close()

    def kill(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._close()

    def clear_state(self) -> None:
        """Forget retained messages and sessions (only while stopped)."""
        if self.running:
            raise RuntimeError("stop the broker before clearing its state")
        for path in self.data_dir.iterdir():
            path.unlink()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _close(self) -> None:
        if self._proc is not None and self._proc.stderr is not None:
            self._proc.stderr.close()
        self._proc = None

    def _accepts_connections(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2):
                return True
        except OSError:
            return False


@pytest.fixture
def mosquitto_broker_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., MosquittoBroker]]:
    """Factory: ``mosquitto_broker_factory(users={"alice": "pw"})`` -> a started broker; all killed at teardown."""
    executable = find_mosquitto()
    if executable is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    made: list[MosquittoBroker] = []

    def make(users: dict[str, str] | None = None) -> MosquittoBroker:
        broker = MosquittoBroker(executable, tmp_path_factory.mktemp("mosquitto"), users=users)
        made.append(broker)
        broker.start()
        return broker

    yield make
    for broker in made:
        broker.kill()


@pytest.fixture
def mosquitto_broker(mosquitto_broker_factory: Callable[..., MosquittoBroker]) -> MosquittoBroker:
    """A started mosquitto (anonymous access) on a free loopback port, killed at teardown.

    ``stop()`` / ``start()`` take it down and bring it back on the same port; ``kill()``
    stops it abruptly; ``clear_state()`` (while stopped) forgets retained messages and sessions.
    """
    return mosquitto_broker_factory()


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class MqttCollector:
    """A paho subscriber recording (topic, payload, retain) of every message it gets.

    Reconnects by itself (fast back-off) and, with ``persistent=True`` (clean_session False,
    QoS 1), the broker keeps its subscription and queues messages for it while it is away.
    """

    def __init__(
        self,
        host: str,
        port: int,
        topic: str = "#",
        persistent: bool = True,
        client_id: str | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.topic = topic
        self.persistent = persistent
        self._lock = threading.Lock()
        self._messages: list[Received] = []
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"collector-{uuid.uuid4().hex[:12]}",
            clean_session=not persistent,
        )
        self._client.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]
        if auth is not None:
            self._client.username_pw_set(*auth)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.connect_async(host, port, keepalive=10)
        self._client.loop_start()

    # paho callbacks (VERSION2 signatures)
    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        client.subscribe(self.topic, qos=1)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        self._subscribed.clear()

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reasons: object, props: object) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._messages.append(Received(message.topic, bytes(message.payload), bool(message.retain)))

    def wait_subscribed(self, timeout: float = 5.0) -> MqttCollector:
        if not self._subscribed.wait(timeout):
            raise AssertionError(f"collector did not subscribe to {self.topic!r} within {timeout} s")
        return self

    @property
    def messages(self) -> list[Received]:
        with self._lock:
            return list(self._messages)

    def on_topic(self, topic: str) -> list[Received]:
        return [m for m in self.messages if m.topic == topic]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 5.0) -> list[Received]:
        """Poll until ``predicate(messages)`` holds; returns the messages, or fails with them."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.messages
            if predicate(messages):
                return messages
            if time.monotonic() >= deadline:
                shown = [(m.topic, m.payload[:80], m.retain) for m in messages[-20:]]
                raise AssertionError(f"condition not met within {timeout} s; last messages: {shown}")
            time.sleep(0.01)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def mqtt_collector(mosquitto_broker: MosquittoBroker) -> Iterator[Callable[..., MqttCollector]]:
    """Factory: ``mqtt_collector(topic="prefix/#")`` -> a subscribed collector, closed at teardown."""
    made: list[MqttCollector] = []

    def make(topic: str = "#", persistent: bool = True, wait: bool = True) -> MqttCollector:
        collector = MqttCollector(mosquitto_broker.host, mosquitto_broker.port, topic, persistent)
        made.append(collector)
        return collector.wait_subscribed() if wait else collector

    yield make
    for collector in made:
        collector.close()
