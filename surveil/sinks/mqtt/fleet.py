"""Camera status that follows a dead daemon: the survivors mark its cameras down.

MQTT gives each connection one last will, so a daemon killed outright can only say that *it*
is offline. Every daemon of a fleet therefore watches the others' retained availability and
fleet lists (``<prefix>/<instance>/available``, ``<prefix>/fleet/<instance>``); when an instance
goes offline, the others publish a retained ``down`` status for each camera it owned that no live
instance lists (after a reshard its cameras may have moved). When it comes back it publishes its cameras' real status again.
Pure logic: messages in, retained (topic, payload) pairs to publish out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

DownStatus = Callable[[str, str, float], tuple[str, bytes]]  # (camera, reason, ts) -> retained (topic, payload)


class FleetWatch:
    def __init__(
        self,
        prefix: str,
        instance: str,
        own_cameras: Callable[[], set[str]],
        down_status: DownStatus,
        clock: Callable[[], float] = time.time,
    ):
        self._prefix = prefix.rstrip("/")
        self._instance = instance
        self._own = own_cameras
        self._down_status = down_status
        self._clock = clock
        self._fleets: dict[str, list[str]] = {}
        self._offline: set[str] = set()

    @property
    def subscriptions(self) -> list[str]:
        return [f"{self._prefix}/+/available", f"{self._prefix}/fleet/+"]

    def observe(self, topic: str, payload: bytes) -> list[tuple[str, bytes]]:
        rest = topic[len(self._prefix) + 1 :] if topic.startswith(self._prefix + "/") else None
        if rest is None:
            return []
        parts = rest.split("/")
        if len(parts) == 2 and parts[0] == "fleet":
            return self._fleet(parts[1], payload)
        if len(parts) == 2 and parts[1] == "available":
            return self._availability(parts[0], payload)
        return []

    def _fleet(self, instance: str, payload: bytes) -> list[tuple[str, bytes]]:
        try:
            cameras = json.loads(payload)["cameras"]
        except (ValueError, KeyError, TypeError):
            return []
        if not isinstance(cameras, list):
            return []
        self._fleets[instance] = [str(c) for c in cameras]
        return self._mark_down(instance) if instance in self._offline else []

    def _availability(self, instance: str, payload: bytes) -> list[tuple[str, bytes]]:
        if instance == self._instance:
            return []
        if payload.strip() == b"offline":
            self._offline.add(instance)
            return self._mark_down(instance)
        self._offline.discard(instance)
        return []

    def _mark_down(self, instance: str) -> list[tuple[str, bytes]]:
        # A camera another live instance lists (after a reshard, say) is served: leave it alone.
        own = self._own() | {c for i, cameras in self._fleets.items() if i not in self._offline for c in cameras}
        reason = f"its daemon ({instance}) is offline"
        now = self._clock()
        return [
            self._down_status(camera, reason, now) for camera in self._fleets.get(instance, []) if camera not in own
        ]
