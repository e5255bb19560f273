"""MQTT alert publisher: paho-mqtt 2.x, a durable spool, retained availability and camera status.

Topics (``<prefix>`` = ``MqttConfig.topic_prefix``):

- ``<prefix>/<instance>/available``: retained ``online`` after every (re)connect; ``offline`` on
  a clean stop and, as the broker-held last will, when the process dies or the connection breaks
  (``<instance>``: the ``instance`` argument, which the daemon takes from ``sharding.instance_name``:
  ``mqtt.instance``, else ``<host>`` or ``<host>-shard<i>of<n>``; each daemon has its own).
- ``<prefix>/fleet/<instance>/probe`` -> ``.../alive``: the answer to a starting daemon that asks
  whether its name is taken (:mod:`surveil.sinks.mqtt.identity`).
- ``<prefix>/<camera>/alerts/<rule>``: one ``AlertUpdate.to_json`` per alert, at ``MqttConfig.qos``.
- ``<prefix>/<camera>/status``: retained JSON ``{"camera", "up", "state", "reason", "ts"}``.
- ``<prefix>/fleet/<instance>``: retained JSON ``{"instance", "cameras", "shard": {"index", "instances"}, "ts"}``,
  the cameras this instance runs (see :mod:`surveil.service.sharding`).
- ``<prefix>/<camera>/lines/<line>/<rule>`` and ``<prefix>/<camera>/zones/<zone>/<rule>``: retained counts.

Delivery guarantee for alerts: every alert is first appended to the :class:`AlertSpool`
(SQLite) and only deleted from it once the broker has confirmed it (PUBACK for QoS 1,
PUBCOMP for QoS 2; for QoS 0, once written to the socket). While the broker is unreachable
alerts accumulate in the spool (up to its ``max_items``; beyond that the oldest are dropped
and counted) and are sent in order after the connection returns, including after a restart
of this process. Delivery is *at least once*: a message whose acknowledgement was lost with
the connection is sent again (paho re-sends in-flight QoS>0 messages after a reconnect, and
a restarted process re-sends everything still spooled), so subscribers may see duplicates
and should de-duplicate on the alert's ``id``. ``published_ts`` in the JSON is the time the
alert was spooled, not the time it finally reached the broker.

A spool that cannot be written (disk full, read-only state directory) never holds an alert
back: ``publish_alert`` then hands the alert straight to paho (in memory: QoS>0 messages are
re-sent by paho after a reconnect, but are lost if the process ends first), counts it
(``spool_bypassed``) and logs the failure once per episode (``spool_writable(False)``). Rows
the broker confirmed but whose DELETE failed are kept as delivered in memory and deleted by
``AlertSpool.reconcile`` as soon as the disk takes writes again (tried every second), so the
spool size is right again and a restart re-sends nothing already confirmed.

Camera status and counts are "latest state wins": it goes straight to paho (not the spool), the last
status per camera is kept and re-published after every reconnect.

This module is the connection side (the paho client, outages, the fleet watch) and the public API;
beside it: ``delivery`` (spool cursor, in-flight window, acknowledgements), ``retained`` (status,
fleet and counts payloads, kept and re-published), ``home_assistant`` (discovery) and ``topics``.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from surveil.config import CameraConfig, MqttConfig
from surveil.redact import redact_json
from surveil.rules.base import StateReport
from surveil.sinks.mqtt.delivery import SpoolDelivery
from surveil.sinks.mqtt.events import GuardedEvents, MqttEvents, NullMqttEvents
from surveil.sinks.mqtt.fleet import FleetWatch, is_fleet_down, parse_fleet
from surveil.sinks.mqtt.home_assistant import home_assistant_entities
from surveil.sinks.mqtt.identity import ProbeResponder, alive_topic, probe_topic
from surveil.sinks.mqtt.retained import (
    COUNTS_SCHEMA_VERSION,
    STATUS_SCHEMA_VERSION,
    RetainedState,
    counts_payload,
    encode,
    fleet_payload,
    status_payload,
)
from surveil.sinks.mqtt.topics import alert_topic, availability_topic, fleet_topic, state_topic, status_topic
from surveil.sinks.spool import AlertSpool
from surveil.types import AlertUpdate

log = logging.getLogger(__name__)

__all__ = [  # the names this module has always offered; some now live in the modules beside it
    "COUNTS_SCHEMA_VERSION",
    "STATUS_SCHEMA_VERSION",
    "MqttEvents",
    "MqttPublisher",
    "MqttSetupError",
    "NullMqttEvents",
    "alert_topic",
    "availability_topic",
    "counts_payload",
    "default_client_id",
    "describe_connect_error",
    "fleet_topic",
    "home_assistant_entities",
    "state_topic",
    "status_payload",
    "status_topic",
    "tls_context",
]


class MqttSetupError(ValueError):
    """The MQTT client cannot be set up from this config (e.g. an unreadable CA or key file)."""


def default_client_id(instance: str) -> str:
    """Unique per process: two daemons (or a restarted one) never take each other's connection."""
    return f"surveil-{instance}-{uuid.uuid4().hex[:8]}"


def tls_context(config: MqttConfig) -> ssl.SSLContext:
    """Verification on: the broker's certificate must chain to ``ca_file`` (else the system's CAs) and,
    unless ``tls_insecure``, name the host; a client certificate when ``cert_file`` is set."""
    try:
        context = ssl.create_default_context(cafile=config.ca_file)
        if config.cert_file is not None:
            context.load_cert_chain(config.cert_file, config.key_file)
    except (OSError, ssl.SSLError, ValueError) as exc:
        files = ", ".join(f"{k}={v}" for k in ("ca_file", "cert_file", "key_file") if (v := getattr(config, k)))
        raise MqttSetupError(
            f"mqtt: cannot load the TLS files ({files}): {getattr(exc, 'strerror', None) or exc}"
        ) from None
    if config.tls_insecure:
        context.check_hostname = False  # the chain is still verified (CERT_REQUIRED)
    return context


def describe_connect_error(exc: BaseException | None) -> str:
    """Why a connection attempt failed, in words an operator can act on (TLS reasons included)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message or exc.reason or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name: {exc.strerror or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the broker running on that port?)"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "connection timed out"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the broker (TLS expected, or the broker refused us?)"
    if exc is None:
        return "cannot connect"
    return f"cannot connect: {getattr(exc, 'strerror', None) or exc}"


class MqttPublisher:
    """Publishes alerts (through the spool) and status to one MQTT broker; see the module doc.

    ``max_inflight``: spooled messages handed to paho and not yet confirmed, at most.
    ``reconnect_min_s`` / ``reconnect_max_s``: paho's reconnect back-off (doubles per failure). Each
    publisher draws its own jitter once (min × 0.5-1, max × 0.8-1), so daemons that lost the same
    broker do not come back in lock-step; with the default 5 s cap, alerts flow again within about
    5 s of the broker's return.

    ``instance``: this daemon's name on the broker (default ``config.instance_name``; the daemon passes
    :func:`surveil.service.sharding.instance_name`). ``fleet_settle_s``: how long the fleet's messages must
    be quiet before dead instances' cameras are marked down (:class:`~surveil.sinks.mqtt.fleet.FleetWatch`).

    ``start()`` never blocks on the broker: an unreachable broker is logged once per outage
    and retried forever. ``stop()`` returns within its timeout in every case. The spool is
    the caller's: ``stop()`` does not close it. A publisher is started at most once.
    """

    def __init__(
        self,
        config: MqttConfig,
        spool: AlertSpool,
        events: MqttEvents | None = None,
        *,
        max_inflight: int = 20,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 5.0,
        rng: random.Random | None = None,
        instance: str | None = None,
        fleet_settle_s: float = 2.0,
    ) -> None:
        if max_inflight < 1:
            raise ValueError("max_inflight must be at least 1")
        self._config = config
        self._spool = spool
        self._events = GuardedEvents(events)
        self._prefix = config.topic_prefix.rstrip("/")
        self.instance = instance or config.instance_name  # the daemon passes sharding.instance_name (shard-aware)
        self.started = time.time()  # this run's generation: in every fleet list and probe answer
        self._own_cameras: set[str] = set()
        self._fleet_watch = FleetWatch(
            self._prefix,
            self.instance,
            lambda: set(self._own_cameras),
            lambda camera, reason, ts: (status_topic(self._prefix, camera), status_payload(camera, False, reason, ts)),
            settle_s=fleet_settle_s,
        )
        self._fleet_lock = threading.Lock()  # serialises the watch (paho's thread, the flush timer)
        self._fleet_timer: threading.Timer | None = None
        self._probe = probe_topic(self._prefix, self.instance)
        self._responder = ProbeResponder(self.instance, self.started, socket.gethostname(), os.getpid())
        self.client_id = config.client_id or default_client_id(self.instance)
        self._available = availability_topic(self._prefix, self.instance)
        rng = rng or random.Random()
        low = reconnect_min_s * rng.uniform(0.5, 1.0)
        self._reconnect = (low, max(low, reconnect_max_s * rng.uniform(0.8, 1.0)))
        self._tls = tls_context(config) if config.uses_tls else None

        self._connected = False
        self._closing = False
        self._outage_since: float | None = None
        self._outage_reason = ""
        self._socket_error = ""  # paho's last error-level log line: why a connection broke
        self._started = False
        self._client = self._make_client()
        self._delivery = SpoolDelivery(
            self._client,
            spool,
            self._events,
            qos=config.qos,
            window=max_inflight,
            on_session=lambda: self._retained.republish(),
        )
        self._retained = RetainedState(
            lambda topic, payload: self._client.publish(topic, payload, qos=1, retain=True),
            lambda: self._delivery.ready,
        )
        self._discovered: set[str] = set()  # discovery topics announced, cleared when their entity goes

    # ------------------------------------------------------------------ public API

    def start(self) -> None:
        """Start connecting in the background and start the sender thread; returns at once."""
        if self._started or self._delivery.stopping:
            raise RuntimeError("MqttPublisher can be started once")
        self._started = True
        self._events.connection_changed(False)
        self._delivery.report_spool_size()
        log.info(
            "MQTT: connecting to %s:%d as %r (topics under %s/, %d alert(s) spooled)",
            self._config.host,
            self._config.port,
            self.client_id,
            self._prefix,
            len(self._spool),
        )
        self._client.connect_async(self._config.host, self._config.port, keepalive=self._config.keepalive_s)
        self._client.loop_start()
        self._delivery.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Flush, publish retained ``offline``, disconnect cleanly and stop the threads.

        While connected, spooled alerts keep going out for up to half of ``timeout``. Returns
        within ``timeout`` seconds even when the broker is down; alerts not confirmed by then
        stay in the spool for the next start.
        """
        deadline = time.monotonic() + timeout
        self._delivery.drain(timeout / 2)
        self._delivery.stop(_remaining(deadline))
        if not self._started:
            return
        self._started = False
        self._closing = True
        with self._fleet_lock:
            if self._fleet_timer is not None:
                self._fleet_timer.cancel()
        self._send_offline(deadline)
        self._client.disconnect()
        self._stop_network_thread(deadline)
        self._set_connected(False)
        log.info("MQTT: stopped; %d alert(s) left in the spool", len(self._spool))

    def publish_alert(self, alert: AlertUpdate) -> None:
        """Spool the alert durably; the sender thread delivers it when the broker is reachable."""
        topic = alert_topic(self._prefix, alert.camera, alert.rule)
        payload = redact_json(alert.to_json(published_at=time.time())).encode(
            "utf-8"
        )  # backstop: no config secret leaves
        self._delivery.append(topic, payload)

    def publish_camera_status(self, camera: str, up: bool, reason: str = "") -> None:
        """Publish the camera's state, retained; it is re-published after every reconnect."""
        self._retained.set(status_topic(self._prefix, camera), status_payload(camera, up, reason, time.time()))

    def publish_fleet(self, cameras: list[str], index: int | str, instances: int) -> None:
        """Retained ``<prefix>/fleet/<instance>``: the cameras this instance runs; re-published after every reconnect."""
        added = set(cameras) - self._own_cameras
        self._own_cameras = set(cameras)
        payload = fleet_payload(self.instance, cameras, index, instances, time.time(), self.started)
        self._retained.set(fleet_topic(self._prefix, self.instance), payload)
        if added and self._connected:  # watch their status: a fleet's down for them is corrected (see _on_message)
            self._client.subscribe([(status_topic(self._prefix, c), 1) for c in sorted(added)])

    def publish_state(self, camera: str, kind: str, name: str, rule: str, body: dict[str, Any]) -> None:
        """Retained "latest value wins" state, e.g. a line's counts: ``<prefix>/<camera>/<kind>/<name>/<rule>``."""
        self._retained.set(state_topic(self._prefix, camera, kind, name, rule), encode(body))

    def publish_counts(self, camera: str, report: StateReport, ts: float) -> None:
        """A rule's counts (a :class:`surveil.sinks.base.StateSink`), retained on their state topic."""
        body = counts_payload(camera, report.kind, report.name, report.rule, report.values, ts)
        self.publish_state(camera, report.kind, report.name, report.rule, body)

    def publish_discovery(self, cameras: Iterable[CameraConfig]) -> int:
        """Home Assistant MQTT discovery (retained, re-published after every reconnect): a binary sensor
        per camera (up) and per alerting rule (incident open), a sensor per zone count; each one's
        availability is this daemon's availability topic. Entities announced by an earlier call and
        gone now (a camera or rule removed by a reload) get an empty retained config, which removes
        them from Home Assistant. Returns how many entities were announced."""
        entities = home_assistant_entities(self._config, self._prefix, self.instance, self._available, cameras)
        for topic, body in entities:
            self._retained.set(topic, encode(body))
        announced = {topic for topic, _body in entities}
        for gone in sorted(self._discovered - announced):  # a camera or rule removed by a reload
            self._retained.clear(gone)
        self._discovered = announced
        return len(entities)

    def withdraw_discovery(self, keep: set[str]) -> int:
        """Clear (empty retained config) every discovery topic this publisher announced that is not in
        ``keep``: before it stops for a reload that changes the mqtt section (another discovery or topic
        prefix, another broker, discovery turned off), whose new publisher announces only ``keep``.
        Sent ahead of the ``offline`` and the disconnect. Returns how many were cleared."""
        gone = sorted(self._discovered - keep)
        for topic in gone:
            self._retained.clear(topic)
        self._discovered -= set(gone)
        return len(gone)

    def close(self) -> None:
        """An :class:`surveil.sinks.base.AlertSink`'s close: :meth:`stop` with its default timeout."""
        self.stop()

    @property
    def availability_topic(self) -> str:
        return self._available

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def spool(self) -> AlertSpool:
        return self._spool

    @property
    def connected(self) -> bool:
        """True while connected to the broker (our ``online`` may still be on its way)."""
        return self._connected

    @property
    def in_flight(self) -> int:
        """Spooled messages handed to paho and not yet confirmed (approximate, for tests/metrics)."""
        return self._delivery.in_flight

    # ------------------------------------------------------------------ paho client

    def _make_client(self) -> mqtt.Client:
        cfg = self._config
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True, protocol=mqtt.MQTTv311
        )
        if cfg.username:
            password = cfg.password.get_secret_value() if cfg.password is not None else None
            client.username_pw_set(cfg.username, password)
        if self._tls is not None:
            client.tls_set_context(self._tls)
        client.will_set(self._available, b"offline", qos=1, retain=True)
        # paho annotates the delays as int, but computes with floats; sub-second is fine.
        client.reconnect_delay_set(self._reconnect[0], self._reconnect[1])  # type: ignore[arg-type]
        client.max_inflight_messages_set(0)  # unlimited in paho; our sender bounds alerts itself
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_log = self._on_log
        return client

    def _on_log(self, client: mqtt.Client, userdata: Any, level: int, text: str) -> None:
        if (
            level == mqtt.MQTT_LOG_ERR
        ):  # e.g. "failed to receive on socket: [SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] ..."
            self._socket_error = text

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        try:
            if reason.is_failure:
                self._note_outage(f"the broker refused the connection: {reason}")
                return
            # Sent before paho re-sends the previous connection's unconfirmed messages; its
            # PUBACK therefore tells the sender that those re-sends are on the wire.
            info = client.publish(self._available, b"online", qos=1, retain=True)
            self._delivery.expect_online(info.mid)
            watched = [*self._fleet_watch.subscriptions, self._probe]
            watched += [status_topic(self._prefix, c) for c in sorted(self._own_cameras)]
            client.subscribe([(topic, 1) for topic in watched])
            self._note_connected()
        except Exception:
            log.exception("MQTT: error in on_connect")

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        """The fleet's availability and camera lists (mark a dead instance's unserved cameras down), probes
        for our name, our own availability and our cameras' status (both corrected when someone else's)."""
        try:
            topic, payload = message.topic, bytes(message.payload)
            if topic == self._probe:
                answer = self._responder.answer(payload)
                if answer is not None:
                    client.publish(alive_topic(self._prefix, self.instance), answer, qos=1, retain=False)
            elif topic == self._available:
                self._own_availability(payload)
            elif topic == fleet_topic(self._prefix, self.instance):
                self._own_fleet(payload)
            elif topic.endswith("/status") and topic[len(self._prefix) + 1 : -len("/status")] in self._own_cameras:
                self._own_status(topic, payload)
            else:
                with self._fleet_lock:
                    downs = self._fleet_watch.observe(topic, payload)
                    self._schedule_fleet_flush()
                self._publish_downs(downs)
        except Exception:
            log.exception("MQTT: error in on_message")

    def _own_availability(self, payload: bytes) -> None:
        """``offline`` on our topic while we run: a late last will of an earlier connection (a host that vanished,
        noticed by the broker only now) or a forgery. Either way we are online: say so again."""
        if payload.strip() == b"offline" and not self._closing and self._client.is_connected():
            log.warning("MQTT: %s reads offline while this daemon runs; publishing online again", self._available)
            self._client.publish(self._available, b"online", qos=1, retain=True)

    def _own_fleet(self, payload: bytes) -> None:
        """Our fleet list overwritten: by an older run or a forgery (``started`` older) we publish ours again; by a
        newer run of our name, a clash the start-up check could not see (both started at once): logged, left."""
        topic = fleet_topic(self._prefix, self.instance)
        ours = self._retained.latest(topic)
        if ours is None or payload == ours or self._closing:
            return
        theirs = parse_fleet(self.instance, payload)
        if theirs is not None and theirs.started > self.started:
            log.error(
                "MQTT: another daemon started later runs as %r too; give each its own mqtt.instance", self.instance
            )
            return
        log.warning("MQTT: %s was overwritten by an older or malformed list; publishing ours again", topic)
        self._client.publish(topic, ours, qos=1, retain=True)

    def _own_status(self, topic: str, payload: bytes) -> None:
        """A fleet watch's ``down`` for a camera we run (it read stale fleet messages): our own status wins."""
        ours = self._retained.latest(topic)
        if ours is not None and payload != ours and is_fleet_down(payload) and not self._closing:
            log.info("MQTT: %s was marked down by another instance; publishing our status again", topic)
            self._client.publish(topic, ours, qos=1, retain=True)

    def _schedule_fleet_flush(self) -> None:
        """Call with ``_fleet_lock`` held: one timer for the watch's next decision (downs wait for the fleet to settle)."""
        due = self._fleet_watch.due_at()
        if due is None or (self._fleet_timer is not None and self._fleet_timer.is_alive()) or self._closing:
            return
        self._fleet_timer = threading.Timer(max(0.0, due - time.monotonic()), self._flush_fleet)
        self._fleet_timer.daemon = True
        self._fleet_timer.start()

    def _flush_fleet(self) -> None:
        try:
            with self._fleet_lock:
                self._fleet_timer = None
                downs = self._fleet_watch.flush()
                self._schedule_fleet_flush()  # debounced again by newer messages: not due yet
            self._publish_downs(downs)
        except Exception:
            log.exception("MQTT: error deciding the fleet's down cameras")

    def _publish_downs(self, downs: list[tuple[str, bytes]]) -> None:
        for topic, payload in downs:
            if not self._closing:
                self._client.publish(topic, payload, qos=1, retain=True)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        try:  # paho calls this inside its `except OSError:` block: the exception says why
            self._note_outage(describe_connect_error(sys.exc_info()[1]))
        except Exception:
            log.exception("MQTT: error in on_connect_fail")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        try:
            self._delivery.connection_lost()
            if self._closing:
                pass
            elif self._outage_since is None:
                cause, self._socket_error = self._socket_error, ""
                self._note_outage(f"connection lost ({reason}{': ' + cause if cause else ''})")
            else:  # the broker closing a refused connection: the refusal is the reason
                log.debug("MQTT: disconnected during the outage (%s)", reason)
            self._set_connected(False)
        except Exception:
            log.exception("MQTT: error in on_disconnect")

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any) -> None:
        self._delivery.acknowledged(mid, reason)

    # ------------------------------------------------------------------ stopping

    def _send_offline(self, deadline: float) -> None:
        if not self._client.is_connected():
            return
        info = self._client.publish(self._available, b"offline", qos=1, retain=True)
        try:
            info.wait_for_publish(timeout=_remaining(deadline))
        except (RuntimeError, ValueError) as exc:
            log.warning("MQTT: could not publish offline: %s", exc)
            return
        if not info.is_published():
            log.warning("MQTT: the broker did not confirm offline in time")

    def _stop_network_thread(self, deadline: float) -> None:
        stopper = threading.Thread(target=self._client.loop_stop, name="mqtt-loop-stop", daemon=True)
        stopper.start()
        stopper.join(_remaining(deadline))
        if stopper.is_alive():
            log.warning("MQTT: network thread still busy (connecting?) at the stop deadline; leaving it")

    # ------------------------------------------------------------------ state, logs, events

    def _note_outage(self, reason: str) -> None:
        if self._outage_since is not None:
            if (
                reason != self._outage_reason
            ):  # a new cause is news (refused -> TLS error); the same one each retry is not
                self._outage_reason = reason
                log.warning("MQTT: broker %s:%d still unavailable: %s", self._config.host, self._config.port, reason)
            else:
                log.debug("MQTT: still unavailable: %s", reason)
            return
        self._outage_since = time.monotonic()
        self._outage_reason = reason
        log.warning(
            "MQTT: broker %s:%d unavailable: %s; spooling alerts and retrying (back-off %.2f-%.1f s)",
            self._config.host,
            self._config.port,
            reason,
            *self._reconnect,
        )

    def _note_connected(self) -> None:
        if self._outage_since is None:
            log.info("MQTT: connected to %s:%d", self._config.host, self._config.port)
        else:
            log.info(
                "MQTT: connected to %s:%d after %.1f s unavailable; %d alert(s) spooled to send",
                self._config.host,
                self._config.port,
                time.monotonic() - self._outage_since,
                len(self._spool),
            )
        self._outage_since = None
        self._socket_error = ""
        self._delivery.connected()
        self._set_connected(True)

    def _set_connected(self, connected: bool) -> None:
        if connected != self._connected:
            self._connected = connected
            self._events.connection_changed(connected)


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
