"""Is another live daemon already using this instance name on the broker? Ask it.

A retained ``online`` on ``<prefix>/<instance>/available`` alone does not prove a live holder:
the broker publishes a dead client's last will only once it notices the death (up to 1.5 ×
keepalive after a host vanished), and a broker restarted without its clients' wills keeps the old
``online`` for ever. Refusing to start on that alone would keep a restarted daemon down (systemd
does not restart after exit 2). So a starting daemon that finds ``online`` retained sends a probe,
``<prefix>/fleet/<instance>/probe`` ``{"nonce"}``, and every running daemon answers the probes
for its own name on ``<prefix>/fleet/<instance>/alive`` with ``{"instance", "nonce", "started",
"host", "pid"}``. Only an answer proves a clash. The topics are fixed (no message names a topic
to answer on), answers are rate-limited, and neither is retained.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from surveil.config import MqttConfig
from surveil.sinks.mqtt.topics import availability_topic

log = logging.getLogger(__name__)

_NONCE = re.compile(r"^[0-9a-f]{8,64}$")


def probe_topic(prefix: str, instance: str) -> str:
    return f"{prefix}/fleet/{instance}/probe"


def alive_topic(prefix: str, instance: str) -> str:
    return f"{prefix}/fleet/{instance}/alive"


def probe_nonce(payload: bytes) -> str | None:
    """The nonce of a well-formed probe, else None."""
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    nonce = body.get("nonce") if isinstance(body, dict) else None
    return nonce if isinstance(nonce, str) and _NONCE.match(nonce) else None


@dataclass(frozen=True)
class ProbeResult:
    """What the broker said about an instance name: ``state`` is ``unreachable``, ``free``, ``stale`` or ``live``."""

    state: str
    holder: dict[str, Any] | None = None
    detail: str = ""


def probe_instance(
    config: MqttConfig, instance: str, *, connect_s: float = 3.0, retained_s: float = 0.5, answer_s: float = 2.0
) -> ProbeResult:
    """Ask the broker of ``config`` whether a live daemon already runs as ``instance`` (see the module doc).

    Never raises for broker trouble: an unreachable broker is ``unreachable`` (the daemon starts and
    spools, as it always did)."""
    from surveil.sinks.mqtt.publisher import MqttSetupError, tls_context  # the same TLS and credentials

    prefix = config.topic_prefix.rstrip("/")
    available, alive = availability_topic(prefix, instance), alive_topic(prefix, instance)
    nonce = uuid.uuid4().hex
    state: dict[str, Any] = {"available": None, "holder": None}
    connected, subscribed, answered, failed = (threading.Event() for _ in range(4))

    def on_connect(client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            failed.set()
        else:
            client.subscribe([(available, 1), (alive, 1)])
        connected.set()

    def on_connect_fail(_c: mqtt.Client, _u: Any) -> None:
        failed.set()
        connected.set()

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == available:
            state["available"] = bytes(message.payload).strip()
        elif message.topic == alive:
            try:
                body = json.loads(message.payload)
            except ValueError:
                return
            if isinstance(body, dict) and body.get("nonce") == nonce and body.get("instance") == instance:
                state["holder"] = body
                answered.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"surveil-probe-{nonce[:12]}", clean_session=True)
    if config.username:
        password = config.password.get_secret_value() if config.password is not None else None
        client.username_pw_set(config.username, password)
    if config.uses_tls:
        try:
            client.tls_set_context(tls_context(config))
        except MqttSetupError as exc:
            return ProbeResult("unreachable", detail=str(exc))
    client.connect_timeout = connect_s
    client.on_connect = on_connect
    client.on_message = on_message
    client.on_subscribe = lambda *_a: subscribed.set()
    client.on_connect_fail = on_connect_fail
    try:
        client.connect_async(config.host, config.port, keepalive=max(5, int(connect_s * 4)))
        client.loop_start()
        if not connected.wait(connect_s) or failed.is_set() or not subscribed.wait(connect_s):
            return ProbeResult("unreachable", detail=f"no answer from {config.host}:{config.port}")
        time.sleep(retained_s)  # the retained availability follows the SUBACK
        if state["available"] != b"online":
            return ProbeResult("free")
        client.publish(probe_topic(prefix, instance), json.dumps({"nonce": nonce}).encode(), qos=1)
        if answered.wait(answer_s):
            return ProbeResult("live", holder=state["holder"])
        return ProbeResult("stale", detail="retained `online` but no daemon answered")
    finally:
        client.disconnect()
        client.loop_stop()


class ProbeResponder:
    """A running daemon's side: the answer to a probe for its own name, at most one per ``min_interval_s``."""

    def __init__(self, instance: str, started: float, host: str, pid: int, min_interval_s: float = 0.2) -> None:
        self._identity = {"instance": instance, "started": started, "host": host, "pid": pid}
        self._min_interval_s = min_interval_s
        self._last = -float("inf")
        self._lock = threading.Lock()

    def answer(self, payload: bytes) -> bytes | None:
        nonce = probe_nonce(payload)
        if nonce is None:
            return None
        with self._lock:
            now = time.monotonic()
            if now - self._last < self._min_interval_s:
                return None
            self._last = now
        return json.dumps({**self._identity, "nonce": nonce}, sort_keys=True).encode()
