"""One camera's reasoning: a frame with its raw detections in, alert updates out.

    FrameContext -> tracker -> rules -> incident book -> [AlertUpdate]

The pipeline routes each camera's frames to its :class:`CameraAnalyzer`; benches, tests and
``surveil analyse`` call :meth:`CameraAnalyzer.process` directly, so there is one copy of this
wiring. Counts for dashboards (line crossings, zone occupancy) leave through ``on_state``; a bench or
test that needs to see each step (the tracks, the alert updates) sets ``on_step`` instead of
replacing ``process`` or the tracker's ``update``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from surveil.analysis.incidents import IncidentBook
from surveil.analysis.render import TRAIL_POINTS, Overlay, draw, encode_jpeg
from surveil.config import CameraConfig, TrackerConfig
from surveil.rules import build_geometry, build_rules
from surveil.rules.base import FrameContext, Line, Rule, StateReport, StreamState, Zone
from surveil.tracking import HoldsIdentities, SeesFrameEdges, Tracker, make_tracker
from surveil.types import AlertUpdate, Detections, Frame

StateCallback = Callable[[str, StateReport, dict[str, int]], None]  # (camera, report, previously reported values)
StepObserver = Callable[[FrameContext, list[AlertUpdate]], None]  # (the context with its tracks, the step's updates)

TRAIL_S = 3.0  # seconds of path drawn behind each track: short enough to stay readable at any frame rate


class CameraAnalyzer:
    def __init__(
        self,
        camera: str,
        tracker: Tracker,
        rules: Sequence[Rule],
        class_names: Sequence[str],
        *,
        zones: Sequence[Zone] = (),
        lines: Sequence[Line] = (),
        operating_thresholds: np.ndarray | None = None,
        snapshots: bool = False,
        book: IncidentBook | None = None,
        on_state: StateCallback = lambda camera, report, previous: None,
        on_step: StepObserver | None = None,
    ):
        self.camera = camera
        self.tracker = tracker
        self.rules = list(rules)
        self.class_names = list(class_names)
        self.zones, self.lines = list(zones), list(lines)
        self.book = book or IncidentBook(camera)
        self.snapshots = snapshots
        self._thresholds = operating_thresholds
        self.on_state = on_state  # the pipeline that owns the analyser right now sets this
        self.on_step = on_step  # sees every step, frames and ticks alike; must not modify what it is given
        self._published_state: dict[tuple[str, str, str], dict[str, int]] = {}  # (rule, kind, name) -> values
        self._stream = StreamState(up=True, reason="", since=0.0)
        self._last: tuple[np.ndarray, Overlay] | None = None
        self._frame_interval: float | None = None  # smoothed seconds between analysed frames (trail length)
        self._last_now: float | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ inputs

    def context(self, frame: Frame, detections: Detections, now: float | None = None) -> FrameContext:
        """The context of a live or recorded frame; ``now`` defaults to the frame's monotonic time."""
        return FrameContext(
            camera=self.camera,
            now=frame.ts_mono if now is None else now,
            ts_wall=frame.ts_wall,
            ts_mono=frame.ts_mono,
            seq=frame.seq,
            width=frame.width,
            height=frame.height,
            image=frame.image,
            detections=detections,
            confident=self.confident(detections),
            stream=self._stream,
        )

    def confident(self, detections: Detections) -> np.ndarray:
        """Which detections reach the detector's per-class operating threshold."""
        if self._thresholds is None or len(detections) == 0:
            return np.ones(len(detections), bool)
        ids = np.clip(detections.class_id, 0, len(self._thresholds) - 1)
        return detections.confidence >= self._thresholds[ids]

    def stream_changed(self, up: bool, reason: str, now: float, ts_wall: float) -> list[AlertUpdate]:
        """The capture stage says the camera went up or down; rules that watch the stream hear it."""
        self._stream = StreamState(up=up, reason=reason, since=now)
        return self.tick(now, ts_wall)

    def tick(self, now: float, ts_wall: float) -> list[AlertUpdate]:
        """A status check without a frame (about once a second): time-based conditions advance."""
        return self.process(self._no_frame(now, ts_wall))

    # ------------------------------------------------------------------ the step

    def process(self, ctx: FrameContext) -> list[AlertUpdate]:
        with self._lock:
            if ctx.tracks is None and not ctx.is_tick:
                if isinstance(self.tracker, SeesFrameEdges):
                    self.tracker.set_frame_size(ctx.width, ctx.height)
                tracks = self.tracker.update(ctx.detections, ctx.now, ctx.confident)
                held = self.tracker.held_ids() if isinstance(self.tracker, HoldsIdentities) else frozenset()
                ctx = dataclasses.replace(ctx, tracks=tuple(tracks), held=held)
            updates: list[AlertUpdate] = []
            for rule in self.rules:
                if ctx.is_tick and not rule.handles_ticks:
                    continue
                updates += self.book.observe(rule, rule.evaluate(ctx), ctx)
            if not ctx.is_tick:
                updates = self._with_snapshots(ctx, updates)
            self._report_state()
            if self.on_step is not None:
                self.on_step(ctx, updates)
            return updates

    def close(self, now: float, ts_wall: float, reason: str = "stopped") -> list[AlertUpdate]:
        """End every open incident (the recording ended, the camera was removed)."""
        with self._lock:
            return self.book.close_all(self._no_frame(now, ts_wall), reason)

    def _no_frame(self, now: float, ts_wall: float) -> FrameContext:
        return FrameContext(
            camera=self.camera,
            now=now,
            ts_wall=ts_wall,
            ts_mono=now,
            seq=None,
            width=0,
            height=0,
            image=None,
            detections=Detections.empty(),
            confident=np.zeros(0, bool),
            tracks=(),
            stream=self._stream,
        )

    # ------------------------------------------------------------------ outputs

    def overlay(self, ctx: FrameContext) -> Overlay:
        open_rules = {rule_id for _, rule_id, _ in self.book.open_incidents}
        active_tracks = {s.track_id for _, _, subjects in self.book.open_incidents for s in subjects}
        labels = {
            name: " ".join(f"{k}:{v}" for k, v in values.items())
            for (_, _, name), values in self._published_state.items()
        }
        return Overlay(
            zones=self.zones,
            lines=self.lines,
            detections=ctx.detections,
            tracks=ctx.tracks or (),
            class_names=self.class_names,
            active_zones=frozenset(r.zone for r in self.rules if r.id in open_rules and r.zone),
            active_lines=frozenset(r.line for r in self.rules if r.id in open_rules and r.line),
            active_tracks=frozenset(active_tracks),
            labels=labels,
            trail_points=self._trail_points(),
            timestamp=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ctx.ts_wall)) if ctx.ts_wall else None,
        )

    def _trail_points(self) -> int:
        """How many of a track's newest anchor points span about TRAIL_S seconds at this camera's frame rate."""
        if not self._frame_interval:
            return TRAIL_POINTS
        return max(2, min(64, round(TRAIL_S / self._frame_interval) + 1))

    def _observe_interval(self, now: float) -> None:
        if self._last_now is not None and now > self._last_now:
            step = now - self._last_now
            self._frame_interval = step if self._frame_interval is None else 0.8 * self._frame_interval + 0.2 * step
        self._last_now = now

    def annotated_latest(self) -> np.ndarray | None:
        """The newest processed frame with everything drawn on it (None before the first frame)."""
        with self._lock:
            last = self._last
        return None if last is None else draw(*last)

    def _with_snapshots(self, ctx: FrameContext, updates: list[AlertUpdate]) -> list[AlertUpdate]:
        image = ctx.image
        if image is None:  # a tick (``is_tick``): no picture to keep or draw on
            return updates
        self._observe_interval(ctx.now)
        overlay = self.overlay(ctx)
        self._last = (image, overlay)
        if not self.snapshots or not updates:
            return updates
        jpeg = encode_jpeg(draw(image, overlay))
        return [dataclasses.replace(u, snapshot_jpeg=jpeg) if u.phase != "end" else u for u in updates]

    def _report_state(self) -> None:
        for rule in self.rules:
            for report in rule.state():
                key = (report.rule, report.kind, report.name)
                previous = self._published_state.get(key)
                if previous != report.values:
                    self._published_state[key] = dict(report.values)
                    self.on_state(self.camera, report, previous or {})


def build_analyzer(
    camera: CameraConfig,
    tracker_config: TrackerConfig,
    class_names: Sequence[str],
    *,
    operating_thresholds: np.ndarray | None = None,
    snapshots: bool = False,
    on_state: StateCallback = lambda camera, report, previous: None,
    on_suppressed: Callable[[str, str, str], None] = lambda camera, rule, reason: None,
) -> CameraAnalyzer:
    """The analyser of one configured camera (raises RuleBuildError for rules the model cannot serve)."""
    zones, lines = build_geometry(camera)
    book = IncidentBook(camera.name, on_suppressed=lambda rule, reason: on_suppressed(camera.name, rule, reason))
    return CameraAnalyzer(
        camera.name,
        make_tracker(tracker_config, camera.name),
        build_rules(camera, class_names),
        class_names,
        zones=list(zones.values()),
        lines=list(lines.values()),
        operating_thresholds=operating_thresholds,
        snapshots=snapshots,
        book=book,
        on_state=on_state,
    )
