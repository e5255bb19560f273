"""Retained "latest value wins" state: camera status, fleet lists, counts and discovery configs.

None of it goes through the spool: the newest payload per topic is kept, published at once while
the connection is ready, and published again on every new connection (the broker may have lost
it, and a status sent while disconnected must still arrive). The payload builders here fix the
wire format that docs/mqtt.md documents.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from surveil.redact import redact_json
from surveil.rules.base import report_kind

STATUS_SCHEMA_VERSION = 1
COUNTS_SCHEMA_VERSION = 1


def encode(body: dict[str, Any]) -> bytes:
    """The wire form of every JSON body surveil retains: compact, keys sorted, UTF-8."""
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8")


def counts_payload(camera: str, kind: str, name: str, rule: str, counts: dict[str, int], ts: float) -> dict[str, Any]:
    """The retained body of a line's or zone's counts (``kind`` is ``lines`` or ``zones``)."""
    return {
        "schema_version": COUNTS_SCHEMA_VERSION,
        "camera": camera,
        "rule": rule,
        report_kind(kind).subject: name,
        "counts": dict(counts),
        "ts": ts,
    }


def status_payload(camera: str, up: bool, reason: str, ts: float) -> bytes:
    body = {
        "schema_version": STATUS_SCHEMA_VERSION,
        "camera": camera,
        "up": up,
        "state": "up" if up else "down",
        "reason": reason,
        "ts": ts,
    }
    return encode(body)


def fleet_payload(
    instance: str, cameras: list[str], index: int | str, instances: int, ts: float, started: float = 0.0
) -> bytes:
    """The retained body of ``<prefix>/fleet/<instance>``: the cameras this instance runs.

    ``started``: when this run of the instance started (Unix time); a list with an older one is stale."""
    return encode(
        {
            "instance": instance,
            "cameras": cameras,
            "shard": {"index": index, "instances": instances},
            "started": started,
            "ts": ts,
        }
    )


class RetainedState:
    """The newest retained payload per topic; ``publish`` (QoS 1, retained) is called with the lock held.

    ``ready`` says whether the connection takes publishes now; when it does not, the payload is
    only kept, and :meth:`republish` sends everything kept once the next connection is ready."""

    def __init__(self, publish: Callable[[str, bytes], object], ready: Callable[[], bool]) -> None:
        self._publish = publish
        self._ready = ready
        self._lock = threading.Lock()  # may be held while calling paho
        self._latest: dict[str, bytes] = {}  # retained topic -> latest payload

    def set(self, topic: str, payload: bytes) -> None:
        payload = redact_json(payload.decode("utf-8")).encode("utf-8")  # backstop: a camera status reason, counts
        with self._lock:
            self._latest[topic] = payload
            if self._ready():
                self._publish(topic, payload)

    def clear(self, topic: str) -> None:
        """Remove ``topic``'s retained message from the broker: an empty retained payload, sent now if
        the connection is ready and again after every reconnect (clearing twice is harmless)."""
        with self._lock:
            self._latest[topic] = b""
            if self._ready():
                self._publish(topic, b"")

    def latest(self, topic: str) -> bytes | None:
        """The payload last set for ``topic`` (as published), or None."""
        with self._lock:
            return self._latest.get(topic)

    def republish(self) -> None:
        with self._lock:
            for topic, payload in self._latest.items():
                self._publish(topic, payload)
