"""What the pipeline calls: analysed frames go into per-camera rings; alerts pass through and come
back carrying their snapshot and clip URLs; ended incidents become clips once their post-roll
has been seen. Driven by the pipeline's analyse thread only; the store is read by the web server.

The open incidents are tracked whether or not review is enabled (the live view lists them)."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from surveil.config import ReviewConfig
from surveil.review.encoder import ClipEncoder, ClipJob, ClipResult
from surveil.review.ring import FrameRing
from surveil.review.store import CLIP, SNAPSHOT, ReviewEvents, ReviewStore
from surveil.types import AlertUpdate

log = logging.getLogger(__name__)

RETAIN_EVERY_S = 60.0
NO_FRAME_GRACE_S = 5.0  # a clip is cut without its full post-roll when no frame came for this long after it


def review_paths(incident_id: str, base: str = "") -> tuple[str, str]:
    """The snapshot and clip URLs of an incident (``base``: the public URL prefix, or "" for paths)."""
    root = f"{base.rstrip('/')}/review/incidents/{quote(incident_id, safe='')}"
    return f"{root}/{SNAPSHOT}", f"{root}/{CLIP}"


@dataclass(frozen=True)
class _Pending:
    incident_id: str
    camera: str
    start: float
    end: float


class Review:
    def __init__(
        self, config: ReviewConfig, state_dir: Path | None, events: ReviewEvents, encoder_ffmpeg: str | None = None
    ):
        self.config = config
        self._events = events
        self._open: dict[str, dict[str, Any]] = {}
        self._rings: dict[str, FrameRing] = {}
        self._pending: list[_Pending] = []
        self._retained_at = 0.0
        self.store: ReviewStore | None = None
        self._encoder: ClipEncoder | None = None
        if config.enabled:
            root = Path(config.dir) if state_dir is None else Path(state_dir) / config.dir
            self.store = ReviewStore(root, config.max_age_h * 3600, int(config.max_size_mb * 2**20), events)
            self._encoder = ClipEncoder(self._clip_done, config.encode_queue, encoder_ffmpeg)
            if not self._encoder.available:
                log.warning("review: no ffmpeg with libx264 on PATH; incidents keep snapshots but get no clips")

    @property
    def wants_frames(self) -> bool:
        return self.store is not None

    # ------------------------------------------------------------ the analyse thread

    def frame(self, camera: str, ts_wall: float, jpeg: bytes) -> None:
        """An analysed frame of ``camera``, annotated and JPEG-encoded."""
        ring = self._rings.get(camera)
        if ring is None:
            seconds = self.config.clip_max_s + self.config.pre_s
            ring = self._rings[camera] = FrameRing(seconds, int(self.config.buffer_mb * 2**20))
        ring.push(ts_wall, jpeg)
        self._events.buffered(camera, ring.bytes)
        self._cut_due(lambda p: p.camera == camera and p.end + self.config.post_s <= ts_wall)

    def alert(self, alert: AlertUpdate) -> AlertUpdate:
        """Record ``alert``; returns it with its snapshot and clip URLs when review is on."""
        record = self._record(alert)
        if alert.phase == "end":
            self._open.pop(alert.incident_id, None)
        else:
            self._open[alert.incident_id] = record
        if self.store is None:
            return alert
        self._snapshot(alert, record)
        if alert.phase == "end":
            record["clip"] = "pending"
            self._pending.append(_Pending(alert.incident_id, alert.camera, alert.started_ts, alert.ts))
        self.store.put(record)
        return dataclasses.replace(alert, snapshot_url=record["snapshot_url"], clip_url=record["clip_url"])

    def tick(self, now_wall: float | None = None) -> None:
        """About once a second: clips of cameras that stopped sending frames, and retention."""
        now = time.time() if now_wall is None else now_wall
        self._cut_due(lambda p: p.end + self.config.post_s + NO_FRAME_GRACE_S <= now)
        if self.store is not None and now - self._retained_at >= RETAIN_EVERY_S:
            self._retained_at = now
            self.store.retain(now)

    def open_incidents(self) -> list[dict[str, Any]]:
        """The incidents in progress, newest first (copies; any thread)."""
        records = [dict(r) for r in list(self._open.values())]
        return sorted(records, key=lambda r: r["started_ts"], reverse=True)

    def close(self, timeout: float = 10.0) -> None:
        """Cut every pending clip with the frames there are, then let the encoder finish within ``timeout``."""
        self._cut_due(lambda p: True)
        if self._encoder is not None:
            self._encoder.close(timeout)
        if self.store is not None:
            self.store.retain()

    # ------------------------------------------------------------ internals

    def _record(self, alert: AlertUpdate) -> dict[str, Any]:
        known = self._open.get(alert.incident_id)
        if known is None and self.store is not None:
            known = self.store.get(alert.incident_id)  # an incident carried across a reload
        record = dict(known or {})
        snapshot_url, clip_url = review_paths(alert.incident_id, self.config.public_url or "")
        subjects = {s["track_id"]: s for s in record.get("subjects", [])}
        subjects.update({s.track_id: s.to_dict() for s in alert.subjects})
        record.update(
            incident_id=alert.incident_id,
            camera=alert.camera,
            rule=alert.rule,
            rule_type=alert.rule_type,
            severity=alert.severity,
            zone=alert.zone,
            line=alert.line,
            phase=alert.phase,
            started_ts=alert.started_ts,
            updated_ts=alert.ts,
            ended_ts=alert.ts if alert.phase == "end" else None,
            duration_s=round(max(0.0, alert.ts - alert.started_ts), 3),
            subjects=sorted(subjects.values(), key=lambda s: s["track_id"]),
            details=alert.details,
            snapshot_url=snapshot_url if self.store is not None else None,
            clip_url=clip_url if self.store is not None else None,
        )
        record.setdefault("clip", "recording" if self.store is not None else "off")
        record.setdefault("snapshot_score", -1.0)
        return record

    def _snapshot(self, alert: AlertUpdate, record: dict[str, Any]) -> None:
        """Keep the best snapshot: the start's, replaced by an update whose best subject scores higher."""
        if alert.phase == "end" or self.store is None:
            return
        score = max((s.score for s in alert.subjects), default=0.0)
        if record.get("snapshot") and score <= record["snapshot_score"]:
            return
        jpeg = alert.snapshot_jpeg
        if jpeg is None and (ring := self._rings.get(alert.camera)) is not None and ring.newest is not None:
            jpeg = ring.newest.jpeg  # this alert's own frame: the pipeline adds a frame before its alerts
        if jpeg is not None and self.store.write(alert.incident_id, SNAPSHOT, jpeg):
            record.update(snapshot=True, snapshot_score=round(float(score), 4), snapshot_ts=alert.ts)

    def _cut_due(self, due) -> None:
        ready = [p for p in self._pending if due(p)]
        if not ready:
            return
        self._pending = [p for p in self._pending if p not in ready]
        for pending in ready:
            self._cut(pending)

    def _cut(self, pending: _Pending) -> None:
        assert self.store is not None and self._encoder is not None  # only pending when review is on
        ring = self._rings.get(pending.camera)
        end = pending.end + self.config.post_s
        start = max(pending.start - self.config.pre_s, end - self.config.clip_max_s)
        frames = ring.between(start, end) if ring is not None else ()
        if not frames:
            return self._clip_state(pending.incident_id, "none")
        job = ClipJob(pending.incident_id, frames, self.config.clip_fps, self.store.path(pending.incident_id, CLIP))
        if not self._encoder.submit(job):
            self._events.clip("dropped")
            self._clip_state(pending.incident_id, "dropped")

    def _clip_done(self, result: ClipResult) -> None:
        """From the encoder thread."""
        if result.ok:
            self._events.clip("written", result.clip_s, result.cpu_s)
            assert self.store is not None
            self.store.clip_written(result.incident_id)
        else:
            self._events.clip("failed")
        self._clip_state(result.incident_id, "ready" if result.ok else "failed", result.clip_s)

    def _clip_state(self, incident_id: str, state: str, clip_s: float = 0.0) -> None:
        if self.store is None or (record := self.store.get(incident_id)) is None:
            return
        record.update(clip=state, clip_s=round(clip_s, 2))
        self.store.put(record)
