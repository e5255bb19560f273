"""Incidents on disk: ``<root>/<incident id>/`` holds ``incident.json``, ``snapshot.jpg`` and
``clip.mp4``. Bounded by age and by total size (the oldest incidents go first). Every write is
atomic (a temporary file, then a rename) and never raises: a full or read-only disk is logged,
counted (``ReviewEvents.write_failed``) and costs only the review, never an alert."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

RECORD, SNAPSHOT, CLIP = "incident.json", "snapshot.jpg", "clip.mp4"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class ReviewEvents(Protocol):
    """What the review reports (surveil.service.review_metrics turns it into Prometheus metrics)."""

    def usage(self, total_bytes: int, incidents: int, oldest_age_s: float) -> None: ...

    def deleted(self, reason: str, count: int) -> None: ...

    def write_failed(self, what: str) -> None: ...

    def clip(self, result: str, clip_s: float = 0.0, cpu_s: float = 0.0) -> None: ...

    def buffered(self, camera: str, total_bytes: int) -> None: ...


def safe_id(incident_id: str) -> bool:
    """True for an id fit to be a folder name (no separators, no dot-dot)."""
    return bool(_SAFE_ID.match(incident_id)) and ".." not in incident_id


class ReviewStore:
    """The incidents under ``root``; safe to read from any thread while one thread writes."""

    def __init__(self, root: Path, max_age_s: float, max_bytes: int, events: ReviewEvents):
        self.root, self.max_age_s, self.max_bytes, self._events = root, max_age_s, max_bytes, events
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Any]] = {}
        self._sizes: dict[str, int] = {}
        self._writable = self._mkdir(root)
        self._load()

    # ------------------------------------------------------------ reads (any thread)

    def get(self, incident_id: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._records.get(incident_id)
        return dict(record) if record is not None else None

    def incidents(
        self, camera: str | None = None, rule: str | None = None, phase: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The newest incidents first, those matching every filter given."""
        with self._lock:
            records = list(self._records.values())
        wanted = [
            r
            for r in records
            if (camera is None or r["camera"] == camera)
            and (rule is None or r["rule"] == rule)
            and (phase is None or r["phase"] == phase)
        ]
        wanted.sort(key=lambda r: r["started_ts"], reverse=True)
        return [dict(r) for r in wanted[: max(0, limit)]]

    def file(self, incident_id: str, name: str) -> Path | None:
        """The path of one of an incident's files when it exists, else None."""
        if name not in (SNAPSHOT, CLIP) or not safe_id(incident_id) or self.get(incident_id) is None:
            return None
        path = self.root / incident_id / name
        return path if path.is_file() else None

    # ------------------------------------------------------------ writes (one thread at a time)

    def put(self, record: dict[str, Any]) -> bool:
        """Save an incident's record (its ``incident_id`` names its folder); False if the disk refused it."""
        incident_id = record["incident_id"]
        data = json.dumps(record, sort_keys=True, allow_nan=False).encode()
        ok = self.write(incident_id, RECORD, data)
        with self._lock:
            self._records[incident_id] = dict(record)  # kept in memory even when the disk refused it
        return ok

    def write(self, incident_id: str, name: str, data: bytes) -> bool:
        if not safe_id(incident_id):
            log.warning("review: incident id %r is not fit for a folder name; not stored", incident_id[:40])
            return False
        folder = self.root / incident_id
        target = folder / name
        partial = folder / f".{name}.part"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(data)
            os.replace(partial, target)
        except OSError as exc:
            self._failed(name, exc)
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            return False
        self._account(incident_id)
        return True

    def path(self, incident_id: str, name: str) -> Path:
        return self.root / incident_id / name

    def clip_written(self, incident_id: str) -> None:
        self._account(incident_id)

    def retain(self, now: float | None = None) -> None:
        """Delete incidents without a message for ``max_age_s`` (ended ones, and any a crash left open),
        then the oldest ended ones until the total fits ``max_bytes``."""
        now = time.time() if now is None else now
        with self._lock:
            by_age = sorted(self._records.values(), key=lambda r: r.get("updated_ts", r["started_ts"]))
        old = [r for r in by_age if now - r.get("updated_ts", r["started_ts"]) > self.max_age_s]
        self._delete([r["incident_id"] for r in old], "age")
        total = self.total_bytes()
        gone = {r["incident_id"] for r in old}
        for record in (r for r in by_age if r["phase"] == "end" and r["incident_id"] not in gone):
            if total <= self.max_bytes:
                break
            total -= self._sizes.get(record["incident_id"], 0)
            self._delete([record["incident_id"]], "size")
        self._report(now)

    def total_bytes(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    # ------------------------------------------------------------ internals

    def _delete(self, ids: Iterable[str], reason: str) -> None:
        count = 0
        for incident_id in ids:
            shutil.rmtree(self.root / incident_id, ignore_errors=True)
            with self._lock:
                self._records.pop(incident_id, None)
                self._sizes.pop(incident_id, None)
            count += 1
        if count:
            self._events.deleted(reason, count)

    def _report(self, now: float) -> None:
        with self._lock:
            starts = [r["started_ts"] for r in self._records.values()]
            total = sum(self._sizes.values())
        self._events.usage(total, len(starts), max(0.0, now - min(starts)) if starts else 0.0)

    def _account(self, incident_id: str) -> None:
        folder = self.root / incident_id
        try:
            size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        except OSError:
            return
        with self._lock:
            self._sizes[incident_id] = size

    def _failed(self, what: str, exc: OSError) -> None:
        self._events.write_failed(what)
        log.warning("review: could not write %s under %s: %s", what, self.root, exc.strerror or exc)

    def _mkdir(self, root: Path) -> bool:
        try:
            root.mkdir(parents=True, exist_ok=True)
            return True
        except OSError as exc:
            self._failed("folder", exc)
            return False

    def _load(self) -> None:
        """Read back the incidents a previous run left (an unreadable one is skipped)."""
        if not self._writable:
            return
        for record_file in self.root.glob(f"*/{RECORD}"):
            try:
                record = json.loads(record_file.read_text())
                incident_id = record["incident_id"]
                _ = record["camera"], record["rule"], record["phase"], record["started_ts"]
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("review: skipping unreadable %s", record_file)
                continue
            if record_file.parent.name == incident_id:
                self._records[incident_id] = _settled(record, record_file.parent)
                self._account(incident_id)
        self._report(time.time())


def _settled(record: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A record as a previous run left it: a clip it was still waiting for or encoding is ``none``
    (or ``ready`` if its file is there); a half-written clip is removed."""
    for partial in folder.glob(".*.part"):
        with contextlib.suppress(OSError):
            partial.unlink()
    with contextlib.suppress(OSError):
        (folder / (CLIP + ".part")).unlink(missing_ok=True)
    if record.get("phase") == "end" and record.get("clip") in ("pending", "recording"):
        return {**record, "clip": "ready" if (folder / CLIP).is_file() else "none"}
    return record
