"""What every rule sees and says.

A rule looks at one :class:`FrameContext` at a time and reports the *conditions* that are true
now (an object inside a zone, a crowd, a covered lens). It never decides when to alert: the
incident book (``surveil.analysis.incidents``) turns conditions that appear, persist and vanish into
``start`` / ``update`` / ``end`` messages. Geometry (``Zone``, ``Line``) is named and shared;
policy lives in the rule objects.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from surveil.geometry import Anchor, box_height, points_in_polygon, relative_anchors
from surveil.types import Detections, Subject, Track


@dataclass(frozen=True)
class StreamState:
    """What the capture stage last said about the camera."""

    up: bool
    reason: str
    since: float  # analyser clock time of the last change


@dataclass(frozen=True, eq=False)
class FrameContext:
    """One processed frame of one camera (or, with ``image`` None, a status tick without a frame)."""

    camera: str
    now: float  # monotonic or media seconds: every duration is measured on this clock
    ts_wall: float  # wall-clock time of the frame (alert timestamps, schedules)
    ts_mono: float  # monotonic capture time (end-to-end latency)
    seq: int | None
    width: int
    height: int
    image: np.ndarray | None  # H x W x 3 BGR, never modified; None on a tick
    detections: Detections  # raw, down to the detector's low score floor
    confident: np.ndarray  # (N,) bool: detections at or above the operating threshold
    tracks: tuple[Track, ...] | None = None  # filled by the analyser's tracker when None
    held: frozenset[int] = frozenset()  # ids the tracker no longer returns but may re-identify (HoldsIdentities)
    stream: StreamState | None = None

    @property
    def is_tick(self) -> bool:
        return self.image is None


@dataclass(frozen=True)
class Condition:
    """Something a rule finds true in this frame; ``key`` says which thing (stable while it lasts)."""

    key: Hashable
    subjects: tuple[Subject, ...] = ()
    seen: bool = True  # the subject was matched in this frame (False: the tracker only predicts it)
    position: tuple[float, float] | None = None  # pixels; where the subject is (for identity-swap folding)
    scale: float = 0.0  # pixels; the subject's box height (distance yardstick for folding)
    born: float | None = None  # when the tracker first saw the subject (a re-born identity is younger than the loss)
    details: dict[str, Any] = field(default_factory=dict)
    embedding: np.ndarray | None = field(default=None, compare=False)  # (D,) unit appearance of the subject, if known


@dataclass(frozen=True)
class ReportKind:
    """What a state report counts: its name (``StateReport.kind``, the MQTT topic level), the
    subject key of its retained payload, and whether its counts are totals that only grow
    (added up across recordings, a Prometheus counter) or a level now (a gauge)."""

    name: str
    subject: str
    cumulative: bool
    metric: str  # the Prometheus family the counts feed (labels: camera, subject name, rule, count key)


LINE_COUNTS = ReportKind("lines", "line", cumulative=True, metric="surveil_line_crossings_total")
ZONE_COUNTS = ReportKind("zones", "zone", cumulative=False, metric="surveil_zone_objects")
REPORT_KINDS: dict[str, ReportKind] = {k.name: k for k in (LINE_COUNTS, ZONE_COUNTS)}


def report_kind(name: str) -> ReportKind:
    """The :class:`ReportKind` of ``StateReport.kind`` (KeyError for an unknown one)."""
    return REPORT_KINDS[name]


@dataclass(frozen=True)
class StateReport:
    """A value for dashboards rather than an alert: counts per line or zone."""

    kind: str  # a ReportKind's name: "lines" or "zones"
    name: str
    values: dict[str, int]
    rule: str = ""  # the rule that counts (two rules may count one line with different class filters)


@dataclass(frozen=True)
class IncidentPolicy:
    """How the incident book treats one rule's conditions (from the rule's config)."""

    min_duration_s: float = 0.0  # a condition must last this long before `start`
    cooldown_s: float = 0.0  # after an end, the same (rule, key) cannot start again this soon
    max_starts_per_minute: int | None = None  # rate cap per rule; extra starts are suppressed
    update_interval_s: float = 0.0  # 0 = no `update` messages
    merge_window_s: float = 0.0  # identity-swap folding: how long a lost subject's incident waits
    merge_distance: float = 0.0  # ... and how near (in box heights, capped by the scene) the new subject must appear


class Rule(Protocol):
    id: str
    type: str
    severity: str
    policy: IncidentPolicy
    handles_ticks: bool  # evaluated on status ticks without a frame (stream health)

    @property
    def zone(self) -> str | None: ...  # the zone it watches, if any

    @property
    def line(self) -> str | None: ...  # the line it watches, if any

    def evaluate(self, ctx: FrameContext) -> list[Condition]: ...

    def state(self) -> list[StateReport]: ...


@dataclass(frozen=True, eq=False)
class Zone:
    """A named polygon in relative (0-1) image coordinates."""

    name: str
    polygon: np.ndarray  # (K, 2)

    def contains(self, boxes: Sequence[Sequence[float]], anchor: Anchor, width: int, height: int) -> np.ndarray:
        return points_in_polygon(relative_anchors(boxes, anchor, width, height), self.polygon)


@dataclass(frozen=True, eq=False)
class Line:
    """A named directed line a -> b in relative coordinates; crossings are named by direction."""

    name: str
    a: tuple[float, float]
    b: tuple[float, float]
    forward: str  # crossing from the left of a->b to its right, as drawn on the image
    backward: str


class RuleBase:
    """Shared plumbing: identity, severity, policy and class names for subjects."""

    type = "rule"
    handles_ticks = False
    zone: str | None = None
    line: str | None = None

    def __init__(self, rule_id: str, severity: str, policy: IncidentPolicy, class_names: Sequence[str]):
        self.id = rule_id
        self.severity = severity
        self.policy = policy
        self.class_names = list(class_names)

    def state(self) -> list[StateReport]:
        return []

    def class_name(self, class_id: int) -> str:
        return self.class_names[class_id] if 0 <= class_id < len(self.class_names) else str(class_id)

    def subject(self, track: Track) -> Subject:
        return Subject(track.track_id, self.class_name(track.class_id), track.confidence, track.xyxy)

    def track_condition(self, track: Track, anchor: Anchor, details: dict[str, Any]) -> Condition:
        x1, y1, x2, y2 = track.xyxy
        position = ((x1 + x2) / 2.0, y2) if anchor == "bottom_center" else ((x1 + x2) / 2.0, (y1 + y2) / 2.0)
        return Condition(
            key=("track", track.track_id),
            subjects=(self.subject(track),),
            seen=track.missed == 0,
            position=position,
            scale=box_height(track.xyxy),
            born=track.first_seen,
            details=details,
            embedding=track.embedding,
        )


def class_filter(tracks: Sequence[Track], class_ids: frozenset[int]) -> list[Track]:
    """Tracks of the given classes (every class when the set is empty)."""
    return [t for t in tracks if not class_ids or t.class_id in class_ids]
