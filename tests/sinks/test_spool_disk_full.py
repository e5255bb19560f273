"""Issue 7 class 7: a full disk never blocks delivery, and the spool recovers.

Real mosquitto, real SQLite. The disk fills in two real ways: SQLite's own size cap
(``PRAGMA max_page_count``: appends fail, deletes still work) and a small tmpfs filled to the
last byte (every write fails, deletes after PUBACK included; needs root, skipped otherwise).
Each case checks: every alert reaches the subscriber (at least once), the spool gauge and the
writable gauge are right after recovery, the spool file holds nothing already confirmed, and a
restarted publisher re-sends nothing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from surveil.config import MqttConfig
from surveil.service.metrics import Metrics
from surveil.service.pipeline import _MqttEvents
from surveil.sinks.mqtt.publisher import MqttPublisher
from surveil.sinks.spool import AlertSpool
from tests.support.alerts import make_alert
from tests.support.polling import wait_until

FAST = {"reconnect_min_s": 0.05, "reconnect_max_s": 0.2}


class Disk:
    """Where the spool lives, and how that place runs out of space and gets it back."""

    def __init__(self, folder: Path, how: str) -> None:
        self.folder, self.how = folder, how
        self.spool_path = folder / "spool.sqlite3"
        self._filler = folder / "filler"
        self._spool: AlertSpool | None = None

    def fill(self, spool: AlertSpool) -> None:
        self._spool = spool
        if self.how == "max_page_count":  # SQLite's own cap: the file may not grow, and no free room is left in it
            with spool._lock:  # the spool's own connection: the cap is per connection
                db = spool._conn()
                db.execute("CREATE TABLE IF NOT EXISTS filler (b BLOB)")
                pages = db.execute("PRAGMA page_count").fetchone()[0]
                db.execute(f"PRAGMA max_page_count = {pages}")
                for size in (4096, 256, 16, 1):
                    try:
                        while True:
                            db.execute("INSERT INTO filler VALUES (zeroblob(?))", (size,))
                    except sqlite3.OperationalError:
                        pass
        else:  # tmpfs: take every free byte
            fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while True:
                    os.write(fd, b"\0" * 65536)
            except OSError:
                pass
            try:
                while True:
                    os.write(fd, b"\0")
            except OSError:
                pass
            os.close(fd)

    def free(self) -> None:
        if self.how == "max_page_count":
            with self._spool._lock:
                self._spool._conn().execute("PRAGMA max_page_count = 1073741823")
        else:
            self._filler.unlink()


@pytest.fixture
def make_disk(tmp_path: Path) -> Iterator[Callable[[str], Disk]]:
    """``make_disk("max_page_count" | "tmpfs")``: a folder for the spool that can be filled."""
    mounted: list[Path] = []

    def make(how: str) -> Disk:
        folder = tmp_path / f"state-{how}"
        folder.mkdir()
        if how == "tmpfs":
            if os.geteuid() != 0:
                pytest.skip("mounting a tmpfs needs root")
            done = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(folder)], capture_output=True
            )
            if done.returncode != 0:
                pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
            mounted.append(folder)
        return Disk(folder, how)

    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def prefix() -> str:
    return f"full-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_publisher(mosquitto_broker, prefix: str) -> Iterator[Callable[[Path], tuple[MqttPublisher, Metrics]]]:
    made: list[tuple[MqttPublisher, AlertSpool]] = []

    def make(spool_path: Path) -> tuple[MqttPublisher, Metrics]:
        config = MqttConfig(
            host=mosquitto_broker.host,
            port=mosquitto_broker.port,
            client_id=f"pub-{uuid.uuid4().hex[:8]}",
            topic_prefix=prefix,
            keepalive_s=5,
        )
        spool = AlertSpool(spool_path)
        metrics = Metrics()
        publisher = MqttPublisher(config, spool, _MqttEvents(metrics), **FAST)
        made.append((publisher, spool))
        publisher.start()
        return publisher, metrics

    yield make
    for publisher, spool in made:
        publisher.stop(timeout=2.0)
        spool.close()


def alert_ids(collector, prefix: str) -> list[str]:
    return [
        json.loads(m.payload)["id"]
        for m in collector.messages
        if m.topic.startswith(f"{prefix}/") and "/alerts/" in m.topic
    ]


def rows_on_disk(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])


def value(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


def publish(publisher: MqttPublisher, first: int, n: int) -> list[str]:
    alerts = [make_alert(first + i) for i in range(n)]
    for alert in alerts:
        publisher.publish_alert(alert)
    return [a.id for a in alerts]


# how: the way the disk fills. fills_at: "append" = the disk is full when alerts are raised (the broker
# connected, or, with SQLite's page cap whose freed rows would make room again at once, down);
# "delete_after_puback" = alerts spooled during an outage, the disk fills, the broker returns, so the
# DELETE after PUBACK is what fails.
CASES = [
    ("tmpfs", "append", True),
    ("max_page_count", "append", False),
    ("tmpfs", "delete_after_puback", False),
]


@pytest.mark.parametrize(("how", "fills_at", "broker_up"), CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_full_disk_never_blocks_delivery_and_the_spool_recovers(
    make_disk, how: str, fills_at: str, broker_up: bool, mosquitto_broker, mqtt_collector, make_publisher, prefix: str
) -> None:
    disk = make_disk(how)
    collector = mqtt_collector(f"{prefix}/#")
    publisher, metrics = make_publisher(disk.spool_path)
    assert wait_until(lambda: publisher.connected, 10)
    expected = publish(publisher, 0, 5)  # the spool works
    assert wait_until(lambda: set(expected) <= set(alert_ids(collector, prefix)), 10)
    assert wait_until(lambda: rows_on_disk(disk.spool_path) == 0, 5)

    redelivered_ok: set[str] = set()
    if not broker_up:
        # the broker may deliver what its subscriber got just before the stop once more after its
        # restart (its own QoS 1 leg to the subscriber); that is not ours to count
        redelivered_ok = set(expected)
        mosquitto_broker.stop()
        assert wait_until(lambda: not publisher.connected, 5)
    spooled = 0
    if fills_at == "delete_after_puback":
        spooled = 20
        expected += publish(publisher, 100, spooled)  # spooled durably during the outage
        assert len(publisher.spool) == spooled
    disk.fill(publisher.spool)
    expected += publish(publisher, 200, 40)  # cannot be spooled: go out directly (paho holds them while down)
    bypassed = value(metrics, "surveil_alert_spool_bypassed_total")
    assert value(metrics, "surveil_alert_spool_writable") == 0
    if how == "tmpfs":
        assert bypassed == 40
    else:  # the spool table's own page keeps room for a few rows
        assert bypassed >= 30
    if not broker_up:
        mosquitto_broker.start()

    assert wait_until(lambda: set(expected) <= set(alert_ids(collector, prefix)), 15), (
        "an alert was held back by the full disk"
    )
    assert wait_until(lambda: value(metrics, "surveil_alert_spool_size") == 0, 5), (
        "confirmed alerts still counted as waiting"
    )
    if fills_at == "delete_after_puback":
        assert rows_on_disk(disk.spool_path) == spooled, "the DELETEs were expected to fail on the full disk"
        assert value(metrics, "surveil_alert_spool_writable") == 0

    disk.free()
    expected += publish(publisher, 300, 5)  # spooled again
    assert wait_until(lambda: set(expected) <= set(alert_ids(collector, prefix)), 10)
    assert wait_until(lambda: rows_on_disk(disk.spool_path) == 0, 5), (
        "confirmed rows left in the spool after space returned"
    )
    assert value(metrics, "surveil_alert_spool_writable") == 1
    assert value(metrics, "surveil_alert_spool_size") == 0
    received = alert_ids(collector, prefix)
    duplicated = sorted(expected.index(i) for i in set(received) - redelivered_ok if received.count(i) > 1)
    assert sorted(set(received)) == sorted(expected) and not duplicated, (
        f"lost or duplicated alerts (positions {duplicated})"
    )

    # a restart sends nothing that was already confirmed
    publisher.stop(timeout=3.0)
    publisher.spool.close()
    again, metrics_again = make_publisher(disk.spool_path)
    assert wait_until(lambda: again.connected, 10)
    assert value(metrics_again, "surveil_alert_spool_size") == 0
    collector.wait_for(lambda ms: any(m.topic.endswith("/available") and m.payload == b"online" for m in ms[-5:]), 5)
    assert not wait_until(lambda: len(alert_ids(collector, prefix)) > len(received), 1.5), (
        "the restart re-sent confirmed alerts"
    )


@pytest.mark.parametrize("how", ["max_page_count", "tmpfs"])
def test_spool_write_failure_is_logged_once_and_recovery_once(
    make_disk, how: str, mosquitto_broker, make_publisher, caplog
) -> None:
    disk = make_disk(how)
    publisher, metrics = make_publisher(disk.spool_path)
    assert wait_until(lambda: publisher.connected, 10)
    mosquitto_broker.stop()  # no confirmation (and so no DELETE making room) while the disk is full
    assert wait_until(lambda: not publisher.connected, 5)
    disk.fill(publisher.spool)
    with caplog.at_level("WARNING", logger="surveil.sinks.mqtt.publisher"):
        publish(publisher, 0, 20)
        disk.free()
        publish(publisher, 20, 3)
    errors = [r for r in caplog.records if r.levelname == "ERROR" and "cannot append" in r.getMessage()]
    assert len(errors) == 1, [r.getMessage() for r in caplog.records]
    assert str(disk.spool_path) in errors[0].getMessage() and "full" in errors[0].getMessage()
    assert sum("spooled durably again" in r.getMessage() for r in caplog.records) == 1
    assert value(metrics, "surveil_alert_spool_bypassed_total") >= 10
    assert value(metrics, "surveil_alert_spool_writable") == 1
