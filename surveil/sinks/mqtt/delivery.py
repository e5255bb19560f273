"""The alert delivery engine: spool cursor, in-flight window and broker acknowledgements.

Every alert is appended to the :class:`AlertSpool` and deleted only once the broker confirmed
it; one sender thread hands spooled alerts to paho in order, at most ``window`` unconfirmed at a
time, and applies the confirmations paho reports. A spool that refuses writes never holds an
alert back: it goes to paho directly (see ``surveil.sinks.mqtt.publisher`` for the guarantees).

The connection side (:class:`~surveil.sinks.mqtt.publisher.MqttPublisher`) owns the paho client
and tells the engine about the connection: :meth:`expect_online`, :meth:`acknowledged`,
:meth:`connection_lost`. The engine calls back ``on_session`` once per new ready connection,
from the sender thread, so retained state can be sent again after paho's re-sends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from surveil.sinks.mqtt.events import GuardedEvents
from surveil.sinks.spool import AlertSpool, SpooledMessage, SpoolWriteError

# the MQTT sink's one logger, as before the publisher was split (operators filter on it)
log = logging.getLogger("surveil.sinks.mqtt.publisher")


class SpoolDelivery:
    """Delivers spooled alerts through ``client`` (see the module doc); started and stopped once."""

    def __init__(
        self,
        client: mqtt.Client,
        spool: AlertSpool,
        events: GuardedEvents,
        *,
        qos: int,
        window: int,
        on_session: Callable[[], None],
    ) -> None:
        self._client = client
        self._spool = spool
        self._events = events
        self._qos = qos
        self._window = window
        self._on_session = on_session

        # Shared state, guarded by _cond. Rule: never call into paho while holding _cond
        # (paho calls on_publish while holding its own message lock).
        self._cond = threading.Condition()
        self._ready = False  # connected and our `online` confirmed: paho's re-sends are done
        self._session = 0  # +1 per ready connection
        self._online_mid: int | None = None
        self._acks: list[tuple[int, ReasonCode]] = []
        self._append_seq = 0
        self._seen_seq = -1
        self._stopping = False

        # Sender-thread-only state.
        self._inflight: dict[int, SpooledMessage] = {}  # paho mid -> spooled message
        self._inflight_ids: set[int] = set()
        self._cursor = 0  # highest spool id handed to paho (or skipped as in flight)
        self._seen_session = 0

        self._append_lock = threading.Lock()
        self._size_lock = threading.Lock()  # the spool size is read and reported as one step (see report_spool_size)
        self._direct_lock = threading.Lock()  # may be held while calling paho
        self._direct: dict[int, str] = {}  # paho mid -> topic of alerts sent around the spool
        self._spool_error: str | None = None  # set while the spool refuses writes
        self._spool_state_lock = threading.Lock()
        self._drop_warned = False
        self._sender: threading.Thread | None = None

    # ------------------------------------------------------------------ what the connection side calls

    @property
    def ready(self) -> bool:
        """Connected and our ``online`` confirmed (paho's re-sends of the last connection are on the wire)."""
        return self._ready

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def in_flight(self) -> int:
        """Spooled messages handed to paho and not yet confirmed (approximate, for tests/metrics)."""
        return len(self._inflight)

    def start(self) -> None:
        self._sender = threading.Thread(target=self._run_sender, name="mqtt-sender", daemon=True)
        self._sender.start()

    def expect_online(self, mid: int) -> None:
        """A new connection published ``online`` as ``mid``: its confirmation makes the connection ready."""
        with self._cond:
            self._online_mid = mid

    def acknowledged(self, mid: int, reason: ReasonCode) -> None:
        """paho's on_publish: the broker confirmed (or, with a failure ``reason``, rejected) ``mid``."""
        with self._cond:
            if mid == self._online_mid and not self._ready:
                self._ready = True
                self._session += 1
            else:
                self._acks.append((mid, reason))
            self._cond.notify_all()

    def connection_lost(self) -> None:
        with self._cond:
            self._ready = False
            self._online_mid = None
            self._cond.notify_all()

    def connected(self) -> None:
        """A new connection: the next spool overflow is news again."""
        self._drop_warned = False

    def drain(self, timeout: float) -> None:
        """While connected, wait up to ``timeout`` for the spool and the direct sends to be confirmed."""
        with self._cond:
            self._cond.wait_for(
                lambda: not self._ready or (len(self._spool) == 0 and not self._direct), timeout=timeout
            )

    def stop(self, timeout: float) -> None:
        """Stop the sender thread (it applies the confirmations that arrived first)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._sender is not None:
            self._sender.join(timeout)

    def append(self, topic: str, payload: bytes) -> None:
        """Spool the alert durably; the sender thread delivers it when the broker is reachable."""
        with self._append_lock:
            before = self._spool.dropped
            try:
                self._spool.append(topic, payload, self._qos)
            except SpoolWriteError as exc:
                self._note_spool_error(str(exc))
                self._publish_direct(topic, payload)
                return
            dropped = self._spool.dropped - before
        self._note_spool_ok()
        if dropped:
            self._note_dropped(dropped)
        self.report_spool_size()
        with self._cond:
            self._append_seq += 1
            self._cond.notify_all()

    def report_spool_size(self) -> None:
        """Report how many alerts wait in the spool. The append and sender threads both report it; reading
        and reporting under one lock keeps a size read before the other thread's change from landing after
        that thread's report (a stale 1 left on the gauge once the spool had emptied)."""
        with self._size_lock:
            self._events.spool_size(len(self._spool))

    # ------------------------------------------------------------------ around the spool

    def _publish_direct(self, topic: str, payload: bytes) -> None:
        """Deliver an alert the spool could not take: straight to paho, confirmed like the others."""
        self._events.spool_bypassed()
        with self._direct_lock:
            info = self._client.publish(topic, payload, qos=self._qos)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN) or (
                info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and self._qos == 0
            ):
                reason = mqtt.error_string(info.rc)
                log.error("MQTT: alert on %s lost: the spool cannot take it and paho refused it (%s)", topic, reason)
                self._events.publish_failed(reason)
                return
            if self._qos == 0 and info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._events.published(topic)  # written to the socket: QoS 0 is done
                return
            self._direct[info.mid] = topic

    # ------------------------------------------------------------------ sender thread

    def _has_work(self) -> bool:
        if self._stopping or self._acks:
            return True
        if not self._ready:
            return False
        if self._session != self._seen_session:
            return True
        return len(self._inflight) < self._window and self._append_seq != self._seen_seq

    def _run_sender(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(self._has_work, timeout=1.0)
                acks, self._acks = self._acks, []
                stopping = self._stopping
                session = self._session if self._ready else None
                seq = self._append_seq
            try:
                self._apply_acks(acks)
                self._reconcile_spool()
                if stopping:
                    return
                if session is not None:
                    self._send_some(session, seq)
            except Exception:
                log.exception("MQTT: sender error; retrying in 1 s")
                with self._cond:
                    self._cond.wait_for(lambda: self._stopping, timeout=1.0)

    def _reconcile_spool(self) -> None:
        """While the spool refuses writes: delete what was delivered as soon as the disk allows."""
        if self._spool_error is None or not self._spool.undeleted:
            return
        try:
            removed = self._spool.reconcile()
        except SpoolWriteError:
            return  # still full; logged once already
        self._note_spool_ok()
        log.info("MQTT: alert spool reconciled: %d delivered alert(s) deleted, %d waiting", removed, len(self._spool))
        self.report_spool_size()

    def _send_some(self, session: int, seq: int) -> None:
        if session != self._seen_session:
            self._seen_session = session
            self._resume(session)
        self._fill_window(session, seq)

    def _resume(self, session: int) -> None:
        """A new connection is ready: re-queue lost QoS 0 sends, re-publish the retained state."""
        lost = [m for m in self._inflight.values() if m.qos == 0]  # never written: paho drops them
        if lost:
            for mid in [mid for mid, m in self._inflight.items() if m.qos == 0]:
                self._inflight_ids.discard(self._inflight.pop(mid).id)
            self._cursor = min(self._cursor, min(m.id for m in lost) - 1)
        self._on_session()
        log.debug("MQTT: session %d ready; %d in flight, %d spooled", session, len(self._inflight), len(self._spool))

    def _fill_window(self, session: int, seq: int) -> None:
        room = self._window - len(self._inflight)
        if room <= 0:
            return
        want = room + len(self._inflight_ids)
        rows = self._spool.peek(want, after=self._cursor)
        exhausted = len(rows) < want
        sent = 0
        for row in rows:
            if row.id in self._inflight_ids:
                self._cursor = row.id  # paho holds it and re-sends it itself
                continue
            if sent >= room or not (self._ready and self._session == session):
                return
            if not self._send(row):
                exhausted = True  # try again on the next connection
                break
            self._cursor = row.id
            sent += 1
        if exhausted:
            with self._cond:
                self._seen_seq = seq

    def _send(self, row: SpooledMessage) -> bool:
        try:
            info = self._client.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
        except ValueError as exc:  # can never be sent (e.g. payload too large): drop it
            log.error("MQTT: dropping spooled message %d on %s: %s", row.id, row.topic, exc)
            self._spool.ack(row.id)
            self._events.publish_failed(str(exc))
            return True
        if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and row.qos == 0:
            return False  # connection just dropped; sent again after the reconnect
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            # (QoS>0 with NO_CONN is queued inside paho and sent after the reconnect.)
            reason = mqtt.error_string(info.rc)
            log.warning("MQTT: paho refused spooled message %d on %s: %s", row.id, row.topic, reason)
            self._events.publish_failed(reason)
            return False
        self._inflight[info.mid] = row
        self._inflight_ids.add(row.id)
        return True

    def _apply_acks(self, acks: list[tuple[int, ReasonCode]]) -> None:
        done: list[SpooledMessage] = []
        direct: list[str] = []
        for mid, reason in acks:
            row = self._inflight.pop(mid, None)
            if row is None:
                with self._direct_lock:
                    topic = self._direct.pop(mid, None)
                if topic is not None:
                    direct.append(topic)
                continue  # status / availability messages, or a duplicate confirmation
            self._inflight_ids.discard(row.id)
            done.append(row)
            if reason.is_failure:
                log.warning("MQTT: broker rejected the message on %s: %s", row.topic, reason)
                self._events.publish_failed(str(reason))
        for topic in direct:
            self._events.published(topic)
        if not done:
            return
        try:
            self._spool.ack_many(m.id for m in done)
        except SpoolWriteError as exc:  # delivered all the same; reconcile() deletes them later
            self._note_spool_error(str(exc))
        with self._cond:
            self._cond.notify_all()  # stop() may be waiting for the spool to empty
        for m in done:
            self._events.published(m.topic)
        self.report_spool_size()

    # ------------------------------------------------------------------ spool state, logs, events

    def _note_spool_error(self, reason: str) -> None:
        with self._spool_state_lock:
            first, self._spool_error = self._spool_error is None, reason
        if first:
            log.error(
                "MQTT: %s; alerts go to the broker directly, not durably, until the disk takes writes again", reason
            )
            self._events.spool_writable(False)

    def _note_spool_ok(self) -> None:
        if self._spool_error is None:
            return
        if self._spool.undeleted:
            try:
                self._spool.reconcile()
            except SpoolWriteError:
                return
        with self._spool_state_lock:
            if self._spool_error is None:
                return
            self._spool_error = None
        log.warning("MQTT: alert spool %s takes writes again; alerts are spooled durably again", self._spool.path)
        self._events.spool_writable(True)
        self.report_spool_size()

    def _note_dropped(self, n: int) -> None:
        if not self._drop_warned:
            self._drop_warned = True
            log.warning(
                "MQTT: spool full (%d); dropping the oldest alerts (%d dropped so far)",
                self._spool.max_items,
                self._spool.dropped,
            )
        self._events.spool_dropped(n)
