"""A durable, ordered on-disk queue of outgoing MQTT messages (SQLite, WAL mode).

Messages are appended before any attempt to send them and deleted (acked) only once the
broker has confirmed them, so alerts raised while the broker is unreachable, or while the
process restarts, are kept and replayed oldest first.

A spool that cannot be written (disk full, I/O error) raises :class:`SpoolWriteError` from
``append``; the caller then delivers without it (see ``MqttPublisher``). Rows whose delivery
could not be recorded (the DELETE after the broker's confirmation failed) are remembered in
memory as delivered: ``peek`` and ``len`` leave them out, and :meth:`reconcile` (called again
and again by the publisher, and by ``close``) deletes them once the disk takes writes again.
Only if the process ends before that are they sent once more (at-least-once).

One process at a time: opening a spool takes an exclusive ``fcntl.flock`` on ``<spool>.lock``
beside it (:class:`SpoolLock`), kept until the spool is closed. A second daemon pointed at the
same file (two shards started from one config and one state folder, say) gets
:class:`SpoolLockedError` naming the file and the process that holds it, instead of
interleaving sends and acknowledgements with the first (duplicates, foreign acks). Within one
process the lock is re-entrant (counted), so the daemon's start-up check and its spool share it.

Durability: the database runs in WAL mode with ``synchronous=NORMAL`` by default, which
survives a crash of this process (every append is committed before it returns) but may
lose the last few commits on power loss; pass ``synchronous="FULL"`` to fsync every commit.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL
)
"""
# AUTOINCREMENT: ids are never reused, even after the newest row is deleted, so a reader
# that remembers "everything up to id N was handed on" stays correct.


class SpoolWriteError(Exception):
    """The spool could not be written (disk full, read-only, I/O error); the message says which file and why."""


def _write_error(path: Path, action: str, exc: sqlite3.Error) -> SpoolWriteError:
    return SpoolWriteError(f"alert spool {path}: cannot {action}: {exc}")


class SpoolLockedError(Exception):
    """Another process holds the spool's lock; the message names the spool, the lock file and the holder."""


class SpoolLock:
    """An exclusive ``flock`` on ``<spool>.lock``, re-entrant within this process (see the module doc).

    :meth:`acquire` returns a handle; :meth:`release` it once. The lock file stays (it holds the
    holder's pid for the message); the kernel drops the lock when the process ends, however it ends."""

    _guard = threading.Lock()
    _held: ClassVar[dict[Path, tuple[int, int]]] = {}  # lock file -> (fd, holders in this process)

    def __init__(self, path: Path) -> None:
        self.path = path
        self._released = False

    @classmethod
    def lock_path(cls, spool_path: str | Path) -> Path:
        spool = Path(spool_path).absolute()
        return spool.with_name(spool.name + ".lock")

    @classmethod
    def acquire(cls, spool_path: str | Path) -> SpoolLock:
        """Take the lock of ``spool_path``; SpoolLockedError if another process has it, OSError if it cannot be made."""
        path = cls.lock_path(spool_path)
        with cls._guard:
            if path in cls._held:
                fd, count = cls._held[path]
                cls._held[path] = (fd, count + 1)
                return cls(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise SpoolLockedError(
                    f"alert spool {Path(spool_path)} is in use by another surveil process{holder} "
                    f"(lock {path}); each daemon needs its own spool: give it its own `state_dir` or "
                    "`mqtt.spool_path`, or stop the other one"
                ) from None
            except OSError:
                os.close(fd)
                raise
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            cls._held[path] = (fd, 1)
            return cls(path)

    def release(self) -> None:
        with self._guard:
            if self._released or self.path not in self._held:
                return
            self._released = True
            fd, count = self._held[self.path]
            if count > 1:
                self._held[self.path] = (fd, count - 1)
                return
            del self._held[self.path]
            os.close(fd)  # closing the only descriptor drops the flock


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


@dataclass(frozen=True)
class SpooledMessage:
    """One message waiting in the spool; ``id`` grows with insertion order."""

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float  # time.time() when appended


class AlertSpool:
    """Durable FIFO of (topic, payload, qos, retain), safe to use from several threads.

    When more than ``max_items`` messages are waiting, the oldest are deleted and counted
    in :attr:`dropped` (since this object was opened).
    """

    def __init__(self, path: str | Path, max_items: int = 100_000, synchronous: str = "NORMAL") -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"unknown SQLite synchronous mode {synchronous!r}")
        self.path = Path(path)
        self.max_items = max_items
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file_lock: SpoolLock | None = SpoolLock.acquire(self.path)  # SpoolLockedError: another process
        try:
            self._db: sqlite3.Connection | None = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None, timeout=10.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.execute(_SCHEMA)
        except BaseException:
            self._file_lock.release()
            raise
        self._count = int(self._db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])
        self._dropped = 0
        self._delivered: set[int] = set()  # confirmed by the broker, DELETE not yet written
        if self._count:
            log.info("alert spool %s holds %d unsent message(s) from before", self.path, self._count)

    # ------------------------------------------------------------------ writing

    def append(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> int:
        """Store one message durably and return its id (larger than every earlier id)."""
        if qos not in (0, 1, 2):
            raise ValueError(f"invalid QoS {qos!r}")
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _write_error(self.path, "append", exc) from None
            try:
                cursor = db.execute(
                    "INSERT INTO spool (topic, payload, qos, retain, created) VALUES (?, ?, ?, ?, ?)",
                    (topic, bytes(payload), qos, int(retain), time.time()),
                )
                excess = self._count + 1 - self.max_items
                if excess > 0:
                    db.execute("DELETE FROM spool WHERE id IN (SELECT id FROM spool ORDER BY id LIMIT ?)", (excess,))
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(db)
                raise _write_error(self.path, "append", exc) from None
            except BaseException:
                _rollback(db)
                raise
            self._count += 1
            if excess > 0:
                self._count -= excess
                self._dropped += excess
            row_id = cursor.lastrowid
            assert row_id is not None  # set by the INSERT just committed
            return row_id

    def ack(self, message_id: int) -> None:
        """Delete one delivered message; acking an id that is gone already does nothing."""
        self.ack_many((message_id,))

    def ack_many(self, message_ids: Iterable[int]) -> int:
        """Delete several delivered messages in one transaction; returns how many were there.

        If the DELETE cannot be written, the messages still count as delivered (``peek`` and
        ``len`` leave them out) and ``SpoolWriteError`` is raised; :meth:`reconcile` deletes them later.
        """
        ids = {int(i) for i in message_ids}
        if not ids:
            return 0
        with self._lock:
            self._delivered |= ids
            return self._delete_delivered()

    def reconcile(self) -> int:
        """Delete the delivered messages whose DELETE failed before; returns how many were removed.

        Raises ``SpoolWriteError`` while the disk still refuses the write."""
        with self._lock:
            return self._delete_delivered() if self._delivered else 0

    @property
    def undeleted(self) -> int:
        """Delivered messages still on disk because their DELETE failed (see :meth:`reconcile`)."""
        return len(self._delivered)

    def _delete_delivered(self) -> int:
        db = self._conn()
        ids = sorted(self._delivered)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                before = db.total_changes
                db.executemany("DELETE FROM spool WHERE id = ?", [(i,) for i in ids])
                deleted = db.total_changes - before
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise
        except sqlite3.Error as exc:
            raise _write_error(self.path, f"delete {len(ids)} delivered message(s)", exc) from None
        self._delivered.clear()
        self._count -= deleted
        return deleted

    # ------------------------------------------------------------------ reading

    def peek(self, limit: int, after: int = 0) -> list[SpooledMessage]:
        """Up to ``limit`` waiting messages with id > ``after``, oldest first; nothing is removed."""
        if limit <= 0:
            return []
        with self._lock:
            rows = (
                self._conn()
                .execute(
                    "SELECT id, topic, payload, qos, retain, created FROM spool WHERE id > ? ORDER BY id LIMIT ?",
                    (after, limit + len(self._delivered)),
                )
                .fetchall()
            )
            rows = [r for r in rows if r[0] not in self._delivered][:limit]
        return [
            SpooledMessage(id=r[0], topic=r[1], payload=bytes(r[2]), qos=r[3], retain=bool(r[4]), created=r[5])
            for r in rows
        ]

    def __len__(self) -> int:
        """Messages waiting for the broker (delivered ones whose DELETE failed are not counted)."""
        # never negative (len() raises ValueError on that): the count is this process's view of the file,
        # which the lock keeps to this process; a file changed behind its back must not stop the sender
        return max(0, self._count - len(self._delivered))

    @property
    def dropped(self) -> int:
        """Oldest messages discarded because more than ``max_items`` were waiting."""
        return self._dropped

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Close the database; unacked messages stay on disk for the next open.

        Delivered messages whose DELETE failed are deleted now if the disk allows; otherwise
        the next process sends them again (logged)."""
        with self._lock:
            if self._db is not None and self._delivered:
                try:
                    self._delete_delivered()
                except SpoolWriteError as exc:
                    log.warning("%s; the next start sends them again", exc)
            if self._db is not None:
                self._db.close()
                self._db = None
            if self._file_lock is not None:
                self._file_lock.release()
                self._file_lock = None

    def __enter__(self) -> AlertSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"alert spool {self.path} is closed")
        return self._db


def _rollback(db: sqlite3.Connection) -> None:
    # no transaction left (SQLite rolls back itself on some errors, e.g. SQLITE_FULL)
    with contextlib.suppress(sqlite3.Error):
        db.execute("ROLLBACK")
