"""Small immutable values passed between pipeline stages.

Every stage receives these and returns new ones; none is mutated after construction.
Arrays inside are numpy; boxes are ``xyxy`` in the frame's own pixel coordinates.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ALERT_SCHEMA_VERSION = 3  # 3: snapshot_url and clip_url (incident review)


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded image from one camera."""

    camera: str
    seq: int  # per-camera count of frames read (gaps: fps_limit skips or drops)
    ts_mono: float  # time.monotonic() when the frame was read
    ts_wall: float  # time.time() when the frame was read
    image: np.ndarray  # H x W x 3, uint8, BGR (OpenCV order)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


def _rows(array: np.ndarray, n: int) -> np.ndarray:
    return array.reshape(n, array.shape[-1] if array.ndim else 0)


@dataclass(frozen=True, eq=False)
class Detections:
    """Detections of one frame: N boxes with score and class, and optionally an appearance embedding.

    ``embedding`` (N, D) float32, rows of unit L2 norm, says what each detection looks like (for
    re-identification by the tracker); None when the detector gives none. Index with a boolean mask
    or an index array to get a new ``Detections``.
    """

    xyxy: np.ndarray  # (N, 4) float32
    confidence: np.ndarray  # (N,) float32
    class_id: np.ndarray  # (N,) int64
    embedding: np.ndarray | None = None  # (N, D) float32, unit rows, or None

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.shape != (n, 4) or self.confidence.shape != (n,) or self.class_id.shape != (n,):
            raise ValueError(
                f"Detections arrays disagree: xyxy {self.xyxy.shape}, "
                f"confidence {self.confidence.shape}, class_id {self.class_id.shape}"
            )
        if self.embedding is not None and (self.embedding.ndim != 2 or len(self.embedding) != n):
            raise ValueError(f"Detections embedding has shape {self.embedding.shape}, expected ({n}, D)")

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros((0,), np.float32),
            class_id=np.zeros((0,), np.int64),
        )

    @classmethod
    def from_arrays(cls, xyxy: Any, confidence: Any, class_id: Any, embedding: Any = None) -> Detections:
        boxes = np.asarray(xyxy, np.float32).reshape(-1, 4)
        return cls(
            xyxy=boxes,
            confidence=np.asarray(confidence, np.float32).reshape(-1),
            class_id=np.asarray(class_id, np.int64).reshape(-1),
            embedding=None if embedding is None else _rows(np.asarray(embedding, np.float32), len(boxes)),
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        boxes = self.xyxy[index].reshape(-1, 4)
        return Detections(
            xyxy=boxes,
            confidence=np.atleast_1d(self.confidence[index]),
            class_id=np.atleast_1d(self.class_id[index]),
            embedding=None
            if self.embedding is None
            else self.embedding[index].reshape(len(boxes), self.embedding.shape[1]),
        )


@dataclass(frozen=True, eq=False)
class DetectedFrame:
    """A frame together with what the detector found in it."""

    frame: Frame
    detections: Detections
    ts_detected: float  # time.monotonic() when inference finished


@dataclass(frozen=True)
class Track:
    """A tracked object on one camera, as of its latest update."""

    track_id: int
    camera: str
    class_id: int
    xyxy: tuple[float, float, float, float]
    confidence: float
    first_seen: float  # tracker clock (monotonic or media seconds)
    last_seen: float  # tracker clock (monotonic or media seconds)
    hits: int  # frames in which it was matched to a detection
    missed: int  # consecutive frames without a match (0 = seen in this frame)
    history: tuple[tuple[float, float], ...] = ()  # recent bottom-centre anchors, oldest first
    embedding: np.ndarray | None = field(default=None, compare=False)  # (D,) unit appearance, or None


@dataclass(frozen=True)
class Subject:
    """An object an incident is about, as of the frame that produced the update."""

    track_id: int
    class_name: str
    score: float
    xyxy: tuple[float, float, float, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "class": self.class_name,
            "score": round(float(self.score), 4),
            "box": [round(float(v), 1) for v in self.xyxy],
        }


PHASES = ("start", "update", "end")


@dataclass(frozen=True)
class AlertUpdate:
    """One step of an incident's life (start, update or end), ready to leave the process.

    ``id`` is unique per message (subscribers de-duplicate on it: delivery is at-least-once);
    ``incident_id`` is shared by the start, the updates and the end of one incident.
    """

    id: str
    incident_id: str
    phase: str  # start | update | end
    camera: str
    rule: str  # the rule's id from the config
    rule_type: str  # zone_intrusion, loitering, ...
    severity: str
    ts: float  # wall-clock time of the frame (or check) behind this update
    ts_mono: float  # monotonic capture time of that frame, for end-to-end latency
    started_ts: float  # wall-clock time the incident started
    frame_seq: int | None = None
    zone: str | None = None
    line: str | None = None
    subjects: tuple[Subject, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    snapshot_jpeg: bytes | None = None
    snapshot_url: str | None = None  # the incident's best snapshot (review.enabled), else None
    clip_url: str | None = None  # its clip: answers 404 until written, a few seconds after the end

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {self.phase!r}")

    @staticmethod
    def new_id() -> str:
        return str(uuid.uuid4())

    def to_dict(self, published_at: float) -> dict[str, Any]:
        snapshot = base64.b64encode(self.snapshot_jpeg).decode("ascii") if self.snapshot_jpeg else None
        return {
            "schema_version": ALERT_SCHEMA_VERSION,
            "id": self.id,
            "incident_id": self.incident_id,
            "phase": self.phase,
            "camera": self.camera,
            "rule": self.rule,
            "rule_type": self.rule_type,
            "severity": self.severity,
            "started_ts": self.started_ts,
            "ts": self.ts,
            "duration_s": round(max(0.0, self.ts - self.started_ts), 3),
            "frame_seq": self.frame_seq,
            "zone": self.zone,
            "line": self.line,
            "subjects": [s.to_dict() for s in self.subjects],
            "details": self.details,
            "published_ts": published_at,
            "snapshot_jpeg_b64": snapshot,
            "snapshot_url": self.snapshot_url,
            "clip_url": self.clip_url,
        }

    def to_json(self, published_at: float) -> str:
        """The alert as strict JSON; ValueError (naming the alert) if a number in it is NaN or infinite."""
        try:
            return json.dumps(self.to_dict(published_at), separators=(",", ":"), sort_keys=True, allow_nan=False)
        except ValueError:
            raise ValueError(
                f"alert {self.rule} ({self.phase}) on camera {self.camera} has a NaN or infinite number; "
                "it is not valid JSON and was not written"
            ) from None
