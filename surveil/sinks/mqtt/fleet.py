"""Camera status that follows a dead daemon: the survivors mark its cameras down.

MQTT gives each connection one last will, so a daemon killed outright can only say that *it*
is offline. Every daemon of a fleet therefore watches the others' retained availability and
fleet lists (``<prefix>/<instance>/available``, ``<prefix>/fleet/<instance>``); when an instance
goes offline, the others publish a retained ``down`` status for each camera it owned that no
instance still alive lists (after a reshard its cameras may have moved). When it comes back it
publishes its cameras' real status again. Pure logic: messages in, retained (topic, payload)
pairs to publish out.

Anyone who can publish under the prefix can send these messages, and a restarting daemon reads
the retained ones in no particular order, some of them left by instances long gone. Hence:

- Only well-formed messages count: availability is exactly ``online`` or ``offline``; a fleet
  list is a JSON object whose ``instance`` is the one in its topic and whose cameras all pass the
  config's own camera-name rule (``CameraConfig.name``), so no list can name a topic such as
  ``x/injected``, ``+`` or ``#``. A malformed message is dropped whole.
- Only an instance that announced itself ``offline`` can have its cameras marked down; a camera
  that any instance not known to be offline lists (ourselves included) is left alone: a false
  ``down`` is worse than a late one.
- A fleet list carries its instance's start time (``started``); a list older than the one held
  for that instance is stale and ignored, so a newer run's list is never undone.
- Downs wait until the fleet has been quiet for ``settle_s`` (retained messages arrive in a burst
  after every connect, in any order) and are decided then, from everything known at that moment.
  A down already published for a camera that a live instance lists later is corrected by that
  camera's owner, which re-publishes its own status (:func:`is_fleet_down` tells such a down).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError

from surveil.config import CameraConfig

DownStatus = Callable[[str, str, float], tuple[str, bytes]]  # (camera, reason, ts) -> retained (topic, payload)

MAX_FLEET_CAMERAS = 100_000  # a fleet list longer than this is not a real one
MAX_FLEET_INSTANCES = 10_000  # instances remembered at most: a flood of invented names cannot grow memory for ever
_DOWN_REASON = "its daemon ({}) is offline"
_DOWN_REASON_RE = re.compile(r"^its daemon \((.+)\) is offline$")

# The config's own rule for a camera name (pattern, length), taken from the field itself: never a copy.
_CAMERA_NAME: TypeAdapter[str] = TypeAdapter(
    Annotated.__class_getitem__((str, *CameraConfig.model_fields["name"].metadata))  # type: ignore[attr-defined]
)


def valid_camera_name(name: object) -> bool:
    """True when ``name`` would be accepted as a camera ``name`` in the config (so it is one safe topic level)."""
    if not isinstance(name, str):
        return False
    try:
        _CAMERA_NAME.validate_python(name)
    except ValidationError:
        return False
    return True


def down_reason(instance: str) -> str:
    """The ``reason`` of a down status published for a camera of a dead instance."""
    return _DOWN_REASON.format(instance)


def is_fleet_down(payload: bytes) -> bool:
    """True when a camera status payload is a down that a fleet watch published (not the owner's own status)."""
    try:
        body = json.loads(payload)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("up") is False and bool(_DOWN_REASON_RE.match(str(body.get("reason"))))


@dataclass(frozen=True)
class FleetList:
    """One instance's announced cameras and the start time of the run that announced them."""

    cameras: frozenset[str]
    started: float


def parse_fleet(instance: str, payload: bytes) -> FleetList | None:
    """The fleet list of ``<prefix>/fleet/<instance>``, or None when it is malformed in any way."""
    try:
        body: Any = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("instance") != instance:
        return None
    cameras, started = body.get("cameras"), body.get("started", 0.0)
    if not isinstance(cameras, list) or len(cameras) > MAX_FLEET_CAMERAS:
        return None
    if not all(valid_camera_name(c) for c in cameras):
        return None
    if isinstance(started, bool) or not isinstance(started, (int, float)) or not math.isfinite(started):
        return None
    return FleetList(frozenset(cameras), float(started))


class FleetWatch:
    """Messages of the fleet in (:meth:`observe`), the downs to publish out (:meth:`observe`, :meth:`flush`).

    With ``settle_s`` 0 every observation decides at once; otherwise :meth:`observe` returns only
    what is already due and the caller calls :meth:`flush` at :meth:`due_at` (monotonic)."""

    def __init__(
        self,
        prefix: str,
        instance: str,
        own_cameras: Callable[[], set[str]],
        down_status: DownStatus,
        clock: Callable[[], float] = time.time,
        *,
        settle_s: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._prefix = prefix.rstrip("/")
        self._instance = instance
        self._own = own_cameras
        self._down_status = down_status
        self._clock = clock
        self._settle_s = settle_s
        self._monotonic = monotonic
        self._fleets: dict[str, FleetList] = {}
        self._offline: set[str] = set()
        self._marked: dict[str, str] = {}  # camera -> the offline instance we published its down for
        self._quiet_since: float | None = None  # last change while something may be due
        self._pending_since: float | None = None

    @property
    def subscriptions(self) -> list[str]:
        return [f"{self._prefix}/+/available", f"{self._prefix}/fleet/+"]

    def observe(self, topic: str, payload: bytes) -> list[tuple[str, bytes]]:
        rest = topic[len(self._prefix) + 1 :] if topic.startswith(self._prefix + "/") else None
        if rest is None:
            return []
        parts = rest.split("/")
        if len(parts) == 2 and parts[0] == "fleet":
            changed = self._fleet(parts[1], payload)
        elif len(parts) == 2 and parts[1] == "available":
            changed = self._availability(parts[0], payload)
        else:
            return []
        if changed:
            now = self._monotonic()
            self._quiet_since = now
            self._pending_since = now if self._pending_since is None else self._pending_since
        return self.flush()

    def due_at(self) -> float | None:
        """When (monotonic) :meth:`flush` has something to decide; None when nothing waits.

        Debounced by ``settle_s``, but never later than 5 × ``settle_s`` after the first change
        (a stream of messages cannot hold downs back for ever)."""
        if self._quiet_since is None or self._pending_since is None:
            return None
        return min(self._quiet_since + self._settle_s, self._pending_since + 5 * self._settle_s)

    def flush(self) -> list[tuple[str, bytes]]:
        """The downs due now, decided from everything known now (see the module doc)."""
        due = self.due_at()
        if due is None or self._monotonic() < due:
            return []
        self._quiet_since = self._pending_since = None
        return self._decide()

    def _fleet(self, instance: str, payload: bytes) -> bool:
        if instance == self._instance:
            return False
        fleet = parse_fleet(instance, payload)
        held = self._fleets.get(instance)
        if fleet is None or (held is not None and fleet.started < held.started):
            return False  # malformed, forged or stale: what we hold stays
        if held is None and len(self._fleets) >= MAX_FLEET_INSTANCES:
            return False
        self._fleets[instance] = fleet
        return True

    def _availability(self, instance: str, payload: bytes) -> bool:
        state = payload.strip()
        if instance == self._instance or instance == "fleet" or state not in (b"online", b"offline"):
            return False
        if state == b"offline":
            if instance not in self._offline and len(self._offline) >= MAX_FLEET_INSTANCES:
                return False
            self._offline.add(instance)
        else:
            self._offline.discard(instance)
        return True

    def _decide(self) -> list[tuple[str, bytes]]:
        served = self._own() | {c for i, fleet in self._fleets.items() if i not in self._offline for c in fleet.cameras}
        for camera in [c for c in self._marked if c in served]:
            del self._marked[camera]  # its owner re-publishes its status (it corrects our down)
        now = self._clock()
        published = []
        for instance in sorted(self._offline):
            for camera in sorted(self._fleets.get(instance, FleetList(frozenset(), 0.0)).cameras - served):
                if camera not in self._marked:
                    self._marked[camera] = instance
                    published.append(self._down_status(camera, down_reason(instance), now))
        return published
